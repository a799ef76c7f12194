"""Execution feedback that repairs: what the tools know about a failing or empty ExecuteSQL.

A failing query gets the engine's error plus the closest column or table names for an unknown one and the JOIN
for a column whose table the query never joined; an empty result on a literal filter gets a SearchValue for
that literal (its stored spelling). Every tool call made here is returned as a trajectory step.
"""

from __future__ import annotations

import difflib
import re

from tunelab.text2sql.actions import Action
from tunelab.text2sql.db import sql_literal
from tunelab.text2sql.join_path import PathError
from tunelab.text2sql.schema import Schema
from tunelab.text2sql.tools import Observation, Toolbox

UNKNOWN_COLUMN = [re.compile(p, re.IGNORECASE) for p in (
    r"no such column:\s*([\w.\"]+)",  # SQLite
    r"Referenced column \"?([\w.]+)\"? not found",  # DuckDB
    r"column \"?([\w.]+)\"? (?:does not exist|not found)",
)]
UNKNOWN_TABLE = [re.compile(p, re.IGNORECASE) for p in (
    r"no such table:\s*([\w.\"]+)",
    r"Table with name \"?(\w+)\"? does not exist",
    r"Referenced table \"?(\w+)\"? not found",
    r"missing FROM-clause entry for table \"?(\w+)\"?",
)]
MAX_SUGGESTIONS = 4


def closest_columns(schema: Schema, name: str) -> list[str]:
    """`table.column` names spelled like `name` (its column part), best first; containment counts as close."""
    wanted = name.strip('"').rpartition(".")[2].lower()
    every = [f"{t.name}.{c.name}" for t in schema.tables.values() for c in t.columns]
    contained = [n for n in every if wanted and (wanted in n.rpartition(".")[2].lower()
                                                 or n.rpartition(".")[2].lower() in wanted)]
    close = difflib.get_close_matches(wanted, [n.rpartition(".")[2].lower() for n in every], n=8, cutoff=0.6)
    similar = [n for n in every if n.rpartition(".")[2].lower() in close]
    return list(dict.fromkeys(contained + similar))[:MAX_SUGGESTIONS]


def closest_tables(schema: Schema, name: str) -> list[str]:
    wanted = name.strip('"').lower()
    names = list(schema.tables)
    contained = [t for t in names if wanted in t.lower() or t.lower() in wanted]
    close = difflib.get_close_matches(wanted, names, n=MAX_SUGGESTIONS, cutoff=0.5)
    return list(dict.fromkeys(contained + close))[:MAX_SUGGESTIONS]


def first_match(patterns, text: str) -> str | None:
    for pattern in patterns:
        found = pattern.search(text)
        if found:
            return found.group(1)
    return None


def sqlglot_dialect(dialect: str) -> str:
    """sqlglot's name for a schema's dialect."""
    return {"sqlite": "sqlite", "duckdb": "duckdb", "postgres": "postgres"}.get(dialect, dialect)


def parse(sql: str, dialect: str):
    import sqlglot

    try:
        return sqlglot.parse_one(sql, read=sqlglot_dialect(dialect))
    except Exception:  # noqa: BLE001 - sqlglot raises several error types; an unparsable query gets no hint
        return None


def missing_joins(toolbox: Toolbox, tree) -> list[tuple[Action, Observation]]:
    """Columns that exist only in tables the query does not use: the path from a used table to theirs."""
    from sqlglot import exp

    schema = toolbox.schema
    used = [schema.has_table(t.name) for t in tree.find_all(exp.Table)]
    used = [t for t in used if t]
    if not used:
        return []
    steps = []
    for column in {c.name for c in tree.find_all(exp.Column)}:
        owners = [t for t, _ in schema.find_column(column)]
        if not owners or any(t in used for t in owners):
            continue
        observation = toolbox.find_shortest_path(used[0], owners[0])
        if observation.ok:  # no path: nothing to suggest
            steps.append((Action("FindShortestPath", {"start": used[0], "end": owners[0]}), observation))
    return steps


def literal_filters(tree) -> list[tuple[str | None, str | None, str]]:
    """(table or alias, column, text) of every `column = 'text'` / LIKE / IN comparison."""
    from sqlglot import exp

    found = []
    for node in tree.find_all(exp.EQ, exp.Like, exp.ILike, exp.In):
        column = node.find(exp.Column)
        if column is None:
            continue
        for literal in node.find_all(exp.Literal):
            if literal.is_string:
                found.append((column.table or None, column.name, literal.this.strip("%")))
    return found


def diagnose_error(toolbox: Toolbox, sql: str, error: str) -> tuple[str, list[tuple[Action, Observation]]]:
    schema = toolbox.schema
    hints, steps = [], []
    column = first_match(UNKNOWN_COLUMN, error)
    if column:
        close = closest_columns(schema, column)
        if close:
            hints.append(f"There is no column {column}; columns with a similar name: {', '.join(close)}.")
    table = first_match(UNKNOWN_TABLE, error)
    if table and not schema.has_table(table):
        close = closest_tables(schema, table)
        if close:
            hints.append(f"There is no table {table}; tables with a similar name: {', '.join(close)}.")
    tree = parse(sql, schema.dialect)
    if tree is not None:
        steps = missing_joins(toolbox, tree)
        for action, observation in steps:
            if observation.ok:
                hints.append(f"Join {action.arguments['end']} with: {observation.text.splitlines()[0]}")
    return " ".join(hints), steps


def diagnose_empty(toolbox: Toolbox, sql: str) -> tuple[str, list[tuple[Action, Observation]]]:
    tree = parse(sql, toolbox.schema.dialect)
    filters = literal_filters(tree) if tree is not None else []
    hints, steps = [], []
    for _, column, text in filters:
        if not text.strip():
            continue
        observation = toolbox.search_value(text)
        steps.append((Action("SearchValue", {"query": text}), observation))
        hits = toolbox.value_index.search(text, k=5)
        same = [h for h in hits if h.value == text and h.column.lower() == column.lower()]
        if same:
            continue  # the literal is stored as written in that column: the filter is not the problem
        if hits:
            stored = ", ".join(f"{h.table}.{h.column} = {sql_literal(h.value)}" for h in hits[:3])
            hints.append(f"{sql_literal(text)} is not stored in {column}; stored values like it: {stored}.")
        else:
            hints.append(f"No stored value matches {sql_literal(text)}.")
    if not hints:
        hints.append("The result is empty: check the filters, the joins and the columns.")
    return " ".join(hints), steps


def outer_tables(tree, schema: Schema) -> dict[str, str]:
    """Alias (or name), lower-cased -> table, for the tables of the outermost SELECT (not its subqueries)."""
    from sqlglot import exp

    found = {}
    for table in tree.find_all(exp.Table):
        if table.find_ancestor(exp.Select) is tree and schema.has_table(table.name):
            found[table.alias_or_name.lower()] = schema.has_table(table.name)
    return found


def join_repair(toolbox: Toolbox, sql: str) -> str | None:
    """`sql` with JOINs added for the columns of its outer SELECT that live only in tables it never joined
    (`SELECT sum(o_totalprice) FROM orders WHERE c_mktsegment = ...` gets `JOIN customer ON ...`); None when
    nothing is missing or the owner is ambiguous."""
    from sqlglot import exp

    schema = toolbox.schema
    tree = parse(sql, schema.dialect)
    if not isinstance(tree, exp.Select):
        return None
    refs = outer_tables(tree, schema)
    if not refs:
        return None
    joined = set(refs.values())
    anchor_ref, anchor = next(iter(refs.items()))
    needed = []
    for column in tree.find_all(exp.Column):
        if column.find_ancestor(exp.Select) is not tree or (column.table and column.table.lower() in refs):
            continue
        if not column.table and any(schema.find_column(f"{t}.{column.name}") for t in joined):
            continue
        owners = [t for t, _ in schema.find_column(column.name) if not column.table or t.lower() == column.table.lower()]
        if len(owners) == 1:
            needed.append(owners[0])
    for owner in dict.fromkeys(needed):
        try:
            path = toolbox.join_path(anchor, owner)
        except PathError:
            return None
        for i, keys in enumerate(path.hops):
            left, right = path.tables[i], path.tables[i + 1]
            if right in joined:
                continue
            key = keys[0]
            left_col, right_col = (key.column, key.ref_column) if key.table == left else (key.ref_column, key.column)
            left_ref = anchor_ref if left == anchor else left
            tree = tree.join(right, on=f"{left_ref}.{left_col} = {right}.{right_col}")
            joined.add(right)
    repaired = tree.sql(dialect=sqlglot_dialect(schema.dialect))
    return repaired if needed else None


def literal_repair(toolbox: Toolbox, sql: str) -> str | None:
    """`sql` with each compared literal that is not stored replaced by its stored spelling, when that column
    stores exactly one value folding to it ('Lyon' -> 'Lyon '); None when there is nothing to replace."""
    from sqlglot import exp

    from tunelab.text2sql.value_index import fold

    tree = parse(sql, toolbox.schema.dialect)
    if tree is None:
        return None
    changed = False
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
                literal.replace(exp.Literal.string(stored.pop()))
                changed = True
    return tree.sql(dialect=sqlglot_dialect(toolbox.schema.dialect)) if changed else None
