"""Query rewrites that repair a failing or empty ExecuteSQL with what the schema and the tools know.

Each rewrite is a small function of the parsed query that changes it in place and says what it did (or returns
None when it does not apply). They fix the classes of mistakes a small model makes again and again: a function of
another dialect (`YEAR(d)` on SQLite), LIKE on a DATE, `= (SELECT ...)` returning several rows, a label left out
of GROUP BY, a column name two joined tables share, a literal compared with the wrong column, a column whose table
was never joined, a literal spelled otherwise than stored. `repair_query` chains the ones that apply.
"""

from __future__ import annotations

import dataclasses
import re

from tunelab.text2sql.db import sql_literal
from tunelab.text2sql.join_path import PathError
from tunelab.text2sql.schema import Schema
from tunelab.text2sql.tools import Toolbox

DIALECTS = ("sqlite", "duckdb", "postgres", "mysql")
TEXT_TYPES = ("CHAR", "TEXT", "STRING", "CLOB", "NAME", "UUID")
UNKNOWN_FUNCTION = re.compile(r"no such function|function .* does not exist|No function matches|"
                              r"Scalar Function with name|Catalog Error: .*function", re.IGNORECASE)
AMBIGUOUS = re.compile(r"ambiguous column name:\s*([\w.]+)|Ambiguous reference to column name \"([\w.]+)\"|"
                       r"column reference \"([\w.]+)\" is ambiguous", re.IGNORECASE)
NOT_GROUPED = re.compile(r"column \"?([\w.]+)\"? must appear in the GROUP BY clause", re.IGNORECASE)
SEVERAL_ROWS = re.compile(r"more than one row returned by a subquery", re.IGNORECASE)
NOT_CONVERTIBLE = re.compile(r"Conversion Error|Could not convert|invalid input syntax for type", re.IGNORECASE)
DATE_PARTS = {"Year": "%Y", "Month": "%m", "Day": "%d"}


@dataclasses.dataclass
class Rewrite:
    sql: str
    fixes: list[str]  # what was changed, in words, for the trajectory


def sqlglot_dialect(dialect: str) -> str:
    """sqlglot's name for a schema's dialect."""
    return {"sqlite": "sqlite", "duckdb": "duckdb", "postgres": "postgres"}.get(dialect, dialect)


def parse(sql: str, dialect: str):
    import sqlglot

    from tunelab.text2sql.db import DEFAULT_MAX_SQL_BYTES

    if len(sql) > DEFAULT_MAX_SQL_BYTES:  # refused by the engine anyway; sqlglot is super-linear on such input
        return None
    try:
        return sqlglot.parse_one(sql, read=sqlglot_dialect(dialect))
    except Exception:  # noqa: BLE001 - sqlglot raises several error types; an unparsable query gets no rewrite
        return None


def render(tree, dialect: str) -> str:
    return tree.sql(dialect=sqlglot_dialect(dialect))


def first_group(pattern: re.Pattern, text: str) -> str | None:
    found = pattern.search(text or "")
    return next((g for g in found.groups() if g), None) if found else None


# ------------------------------------------------------------------ scopes: each SELECT with its own tables

def scope_of(node):
    from sqlglot import exp

    return node.find_ancestor(exp.Select)


def scope_tables(select, schema: Schema) -> dict[str, str]:
    """Alias (or name), lower-cased -> stored table name, for the tables of this SELECT (not of its subqueries)."""
    from sqlglot import exp

    found = {}
    for table in select.find_all(exp.Table):
        if scope_of(table) is select and schema.has_table(table.name):
            found[table.alias_or_name.lower()] = schema.has_table(table.name)
    return found


def scope_columns(select):
    from sqlglot import exp

    return [c for c in select.find_all(exp.Column) if scope_of(c) is select]


def column_type(schema: Schema, tables: dict[str, str], column) -> str | None:
    """The declared type of a column reference, resolved among its scope's tables."""
    candidates = [tables[column.table.lower()]] if column.table and column.table.lower() in tables else \
        list(tables.values())
    for table in candidates:
        for info in schema.tables[table].columns:
            if info.name.lower() == column.name.lower():
                return info.type.upper()
    return None


# ------------------------------------------------------------------ rewrites for engine errors

def transpile_functions(sql: str, dialect: str, error: str) -> Rewrite | None:
    """An unknown function may be another dialect's spelling: the first other dialect whose reading of the query
    the engine's dialect writes differently (sqlite's `strftime('%Y', d)` -> DuckDB's `STRFTIME(d, '%Y')`)."""
    import sqlglot

    if not UNKNOWN_FUNCTION.search(error or ""):
        return None
    own = parse(sql, dialect)
    baseline = render(own, dialect) if own is not None else sql
    for other in DIALECTS:
        if other == dialect:
            continue
        try:
            written = sqlglot.transpile(sql, read=other, write=sqlglot_dialect(dialect))[0]
        except Exception:  # noqa: BLE001 - not that dialect
            continue
        if written != baseline:
            return Rewrite(written, [f"read the query as {other} SQL"])
    return None


def sqlite_date_parts(tree, dialect: str) -> str | None:
    """SQLite has no YEAR()/MONTH()/DAY()/EXTRACT(): strftime on the stored ISO text instead."""
    from sqlglot import exp

    if dialect != "sqlite":
        return None
    changed = 0
    for node in list(tree.find_all(exp.Year, exp.Month, exp.Day, exp.Extract)):
        if isinstance(node, exp.Extract):
            part = {"YEAR": "%Y", "MONTH": "%m", "DAY": "%d"}.get(node.this.name.upper())
            value = node.expression
        else:
            part, value = DATE_PARTS[type(node).__name__], node.this
        if part is None:
            continue
        node.replace(exp.cast(exp.Anonymous(this="strftime", expressions=[exp.Literal.string(part), value.copy()]),
                              "INTEGER"))
        changed += 1
    return "wrote the date parts with strftime" if changed else None


def cast_like_operands(tree, schema: Schema) -> str | None:
    """LIKE on a DATE or a number (`o_orderdate LIKE '1995%'`) compares its text: cast it (not needed in SQLite)."""
    from sqlglot import exp

    if schema.dialect == "sqlite":
        return None
    changed = 0
    for node in list(tree.find_all(exp.Like, exp.ILike)):
        column = node.this
        if not isinstance(column, exp.Column):
            continue
        kind = column_type(schema, scope_tables(scope_of(node), schema), column)
        if kind and not any(t in kind for t in TEXT_TYPES):
            column.replace(exp.cast(column.copy(), "VARCHAR"))
            changed += 1
    return "applied LIKE to the column's text" if changed else None


def subquery_in(tree, error: str) -> str | None:
    """`x = (SELECT ...)` that returns several rows means `x IN (SELECT ...)`."""
    from sqlglot import exp

    if not SEVERAL_ROWS.search(error or ""):
        return None
    changed = 0
    for node in list(tree.find_all(exp.EQ)):
        left, right = node.this, node.expression
        if isinstance(left, exp.Subquery):
            left, right = right, left
        if isinstance(right, exp.Subquery):
            node.replace(exp.In(this=left.copy(), query=right.copy()))
            changed += 1
    return "rewrote = (subquery) as IN (subquery)" if changed else None


def group_by_label(tree, error: str) -> str | None:
    """A selected label the engine wants grouped (`SELECT r_name ... GROUP BY r_regionkey`) joins the GROUP BY."""
    from sqlglot import exp

    name = first_group(NOT_GROUPED, error)
    if not name:
        return None
    wanted = name.rpartition(".")[2].lower()
    for select in tree.find_all(exp.Select):
        group = select.args.get("group")
        if group is None:
            continue
        hits = [c for c in scope_columns(select) if c.name.lower() == wanted and c.find_ancestor(exp.Group) is None]
        if hits:
            group.append("expressions", hits[0].copy())
            return f"added {hits[0].sql()} to GROUP BY"
    return None


def qualify_shared_names(tree, schema: Schema) -> str | None:
    """A bare column two tables of its SELECT both have (the join key `customer_id`) is qualified with the first
    of them: the join makes them equal, so either gives the same rows."""
    qualified = []
    for select in _selects(tree):
        tables = scope_tables(select, schema)
        for column in scope_columns(select):
            if column.table:
                continue
            owners = [ref for ref, table in tables.items()
                      if any(c.name.lower() == column.name.lower() for c in schema.tables[table].columns)]
            if len(owners) > 1:
                column.set("table", _identifier(_display_ref(select, owners[0])))
                qualified.append(column.name)
    return f"qualified {', '.join(dict.fromkeys(qualified))}" if qualified else None


# ------------------------------------------------------------------ rewrites from the tools (values, joins)

def stored_spellings(toolbox: Toolbox, tree) -> str | None:
    """Each compared literal that is not stored replaced by its stored spelling, when that column stores exactly
    one value folding to it ('Lyon' -> 'Lyon ')."""
    from sqlglot import exp

    from tunelab.text2sql.value_index import fold

    changed = []
    for node in tree.find_all(exp.EQ, exp.In):
        column = node.find(exp.Column)
        if column is None:
            continue
        for literal in node.find_all(exp.Literal):
            if not literal.is_string:
                continue
            hits = [h for h in toolbox.value_index.search(literal.this, k=10)
                    if h.column.lower() == column.name.lower() and fold(h.value).strip() == fold(literal.this).strip()]
            stored = {h.value for h in hits}
            if len(stored) == 1 and literal.this not in stored:
                value = stored.pop()
                literal.replace(exp.Literal.string(value))
                changed.append(value)
    return "used the stored spelling " + ", ".join(sql_literal(v) for v in changed) if changed else None


def relocate_literals(toolbox: Toolbox, tree) -> str | None:
    """A literal compared with a column that never stores it (`l_shipmode = 'DELIVER IN PERSON'`,
    `c_nationkey = 'FRANCE'`) is compared with the one column that does store it: one of the query's own tables
    if possible, otherwise the only column anywhere (`join_missing_tables` then joins its table)."""
    from sqlglot import exp

    from tunelab.text2sql.value_index import fold

    schema = toolbox.schema
    moved = []
    for node in list(tree.find_all(exp.EQ, exp.In)):
        column = node.this if isinstance(node.this, exp.Column) else None
        literals = [lit for lit in node.find_all(exp.Literal) if lit.is_string and scope_of(lit) is scope_of(node)]
        if column is None or not literals:
            continue
        text = fold(literals[0].this).strip()
        hits = [h for h in toolbox.value_index.search(literals[0].this, k=20) if fold(h.value).strip() == text]
        if not hits or any(h.column.lower() == column.name.lower() for h in hits):
            continue
        tables = scope_tables(scope_of(node), schema)
        local = [h for h in hits if h.table in tables.values()]
        owners = {(h.table, h.column) for h in (local or hits)}
        if len(owners) != 1:
            continue
        table, name = owners.pop()
        ref = next((r for r, t in tables.items() if t == table), table)
        new = exp.column(name, table=_display_ref(scope_of(node), ref) if local else table)
        column.replace(new)
        moved.append(f"{column.sql()} -> {new.sql()}")
    return "compared the value with the column that stores it: " + ", ".join(moved) if moved else None


def join_missing_tables(toolbox: Toolbox, tree) -> str | None:
    """JOINs added for the columns of each SELECT that live only in tables it never joined
    (`SELECT sum(o_totalprice) FROM orders WHERE c_mktsegment = ...` gets `JOIN customer ON ...`)."""
    schema = toolbox.schema
    added = []
    for select in _selects(tree):
        refs = scope_tables(select, schema)
        if not refs:
            continue
        joined = set(refs.values())
        needed = []
        for column in scope_columns(select):
            if column.table and column.table.lower() in refs:
                continue
            if not column.table and any(schema.find_column(f"{t}.{column.name}") for t in joined):
                continue
            owners = [t for t, _ in schema.find_column(column.name)
                      if not column.table or t.lower() == column.table.lower()]
            if len(owners) == 1:
                needed.append(owners[0])
        for owner in dict.fromkeys(needed):
            path = closest_path(toolbox, list(refs.values()), owner)
            if path is None:
                continue
            for i, keys in enumerate(path.hops):
                left, right = path.tables[i], path.tables[i + 1]
                if right in joined:
                    continue
                key = keys[0]
                left_col, right_col = (key.column, key.ref_column) if key.table == left else (key.ref_column, key.column)
                left_ref = _display_ref(select, _ref_of(refs, left))
                select.join(right, on=f"{left_ref}.{left_col} = {right}.{right_col}", copy=False)
                joined.add(right)
                added.append(right)
    return "joined " + ", ".join(added) if added else None


def closest_path(toolbox: Toolbox, sources: list[str], target: str):
    """The shortest join path from one of `sources` to `target`; between equally short ones, the path from the
    largest table (a fact table's own date or item key, not a dimension's `first_sales_date`)."""
    best, best_rank = None, None
    for source in dict.fromkeys(sources):
        try:
            path = toolbox.join_path(source, target)
        except PathError:
            continue
        rank = (len(path.tables), -toolbox.schema.tables[source].row_count)
        if best_rank is None or rank < best_rank:
            best, best_rank = path, rank
    return best


# ------------------------------------------------------------------ the chain

def repair_query(toolbox: Toolbox, sql: str, error: str | None) -> Rewrite | None:
    """The query with every rewrite that applies (`error`: the engine's message; None for an empty result);
    None when nothing applies."""
    schema = toolbox.schema
    tree = parse(sql, schema.dialect)
    if tree is None:
        return transpile_functions(sql, schema.dialect, error) if error else None
    if error:
        steps = [lambda t: sqlite_date_parts(t, schema.dialect), lambda t: cast_like_operands(t, schema),
                 lambda t: subquery_in(t, error), lambda t: group_by_label(t, error),
                 lambda t: relocate_literals(toolbox, t) if NOT_CONVERTIBLE.search(error) else None]
    else:
        steps = [lambda t: stored_spellings(toolbox, t), lambda t: relocate_literals(toolbox, t)]
    steps += [lambda t: join_missing_tables(toolbox, t), lambda t: qualify_shared_names(t, schema)]
    fixes = [fix for fix in (step(tree) for step in steps) if fix]
    repaired = render(tree, schema.dialect)
    if fixes and repaired.strip() != sql.strip():
        return Rewrite(repaired, fixes)
    return transpile_functions(sql, schema.dialect, error) if error else None


# ------------------------------------------------------------------ small helpers

def _selects(tree):
    from sqlglot import exp

    return list(tree.find_all(exp.Select))


def _identifier(name: str):
    from sqlglot import exp

    return exp.to_identifier(name)


def _ref_of(refs: dict[str, str], table: str) -> str:
    """How a SELECT refers to one of its tables (its alias, lower-cased), or the table's name for a new one."""
    return next((ref for ref, t in refs.items() if t == table), table)


def _display_ref(select, ref: str) -> str:
    """The alias or table name as written in this SELECT (scope_tables lower-cases them)."""
    from sqlglot import exp

    for table in select.find_all(exp.Table):
        if scope_of(table) is select and table.alias_or_name.lower() == ref:
            return table.alias_or_name
    return ref
