"""The action grammar: what one agent reply may be, as a Lark grammar for constrained decoding (llguidance).

A reply is one `Thought:` line and one `Action:` call of a tool the controller allows at this step, with typed
arguments: table names are the schema's own, SQL is one double-quoted line starting with SELECT or WITH. A reply
decoded under this grammar always parses with `actions.parse_action`, so a small model cannot send a malformed
action, an unknown tool, a keyword the tool does not take, or `Done()` before any SQL has run.
"""

from __future__ import annotations

import json

from tunelab.text2sql.schema import Schema

TOOLS = ("SearchColumn", "SearchValue", "FindShortestPath", "ExecuteSQL", "Done")
MAX_THOUGHT_CHARS = 160
MAX_QUERY_CHARS = 60


def lark_string(text: str) -> str:
    """A Lark literal for `text` (JSON string escapes are Lark's)."""
    return json.dumps(text)


def choice(names: list[str]) -> str:
    return " | ".join(lark_string(n) for n in names)


def action_grammar(schema: Schema, allowed: tuple[str, ...] | list[str], thought: bool = True,
                   thought_chars: int = MAX_THOUGHT_CHARS) -> str:
    """A Lark grammar accepting exactly one reply that calls one of `allowed` (a subset of TOOLS)."""
    unknown = [a for a in allowed if a not in TOOLS]
    if unknown or not allowed:
        raise ValueError(f"allowed tools must be a non-empty subset of {TOOLS}, got {list(allowed)}")
    tables = sorted(schema.tables)
    rules = {
        "SearchColumn": 'search_column: "SearchColumn(" query ")"',
        "SearchValue": 'search_value: "SearchValue(" query (", table=" table_literal)? ")"',
        "FindShortestPath": 'find_path: "FindShortestPath(" table_literal ", " table_literal ")"',
        "ExecuteSQL": 'execute_sql: "ExecuteSQL(\\"" SQL "\\")"',
        "Done": 'done: "Done()"',
    }
    names = {"SearchColumn": "search_column", "SearchValue": "search_value", "FindShortestPath": "find_path",
             "ExecuteSQL": "execute_sql", "Done": "done"}
    head = 'start: "Thought: " THOUGHT "\\nAction: " action' if thought else 'start: "Action: " action'
    lines = [head, "action: " + " | ".join(names[a] for a in allowed)]
    lines += [rules[a] for a in allowed]
    lines += [
        f"THOUGHT: /[^\\n]{{1,{thought_chars}}}/",
        'query: "\\"" QUERY_TEXT "\\""',
        f'QUERY_TEXT: /[^"\\\\\\n]{{1,{MAX_QUERY_CHARS}}}/',
        # SQL on one line inside double quotes; a double quote or backslash inside it is escaped
        'SQL: /(SELECT|WITH|select|with) ([^"\\\\\\n]|\\\\["\\\\])*/',
    ]
    if any(a in allowed for a in ("SearchValue", "FindShortestPath")):
        lines.append("table_literal: " + choice([json.dumps(t) for t in tables]))
    return "\n".join(lines) + "\n"
