"""Execution feedback: what the tools know about a failing or empty ExecuteSQL, as hints for the model.

A failing query gets the engine's error plus the closest column or table names for an unknown one and the JOIN
for a column whose table the query never joined; an empty result on a literal filter gets a SearchValue for
that literal (its stored spelling). Every tool call made here is returned as a trajectory step. The controller's
own rewrites of the query are in `rewrites.py`.
"""

from __future__ import annotations

import difflib
import re

from tunelab.text2sql.actions import Action
from tunelab.text2sql.db import sql_literal
from tunelab.text2sql.rewrites import parse
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
