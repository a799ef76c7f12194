"""Parsing the LLM's `Action:` line with `ast` against a whitelist of tool names: never `eval`.

Only a call of a whitelisted name whose arguments are literals (strings, lists of strings, numbers, None) is
accepted; anything else becomes an `ActionError` whose message tells the model how to write the action.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re

TOOL_SIGNATURES = {
    "SearchColumn": ("query",),
    "SearchValue": ("query", "table", "column"),
    "FindShortestPath": ("start", "end"),
    "ExecuteSQL": ("sql",),
    "Done": (),
}
ACTION_LINE = re.compile(r"Action\s*:\s*", re.IGNORECASE)


class ActionError(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class Action:
    name: str
    arguments: dict

    def key(self) -> str:
        """Identity for repetition detection."""
        return self.name + json.dumps(self.arguments, sort_keys=True)

    def render(self) -> str:
        return f"{self.name}(" + ", ".join(f"{k}={v!r}" for k, v in self.arguments.items()) + ")"


def extract_action_text(reply: str) -> str:
    """The text after the last `Action:` (a multi-line SQL string may follow it)."""
    found = list(ACTION_LINE.finditer(reply))
    if not found:
        raise ActionError('no "Action:" line; write e.g. Action: SearchColumn("customer city")')
    text = reply[found[-1].end():].strip()
    text = re.sub(r"^`+|`+$", "", text).strip()  # models sometimes wrap the call in backticks
    return text


def parse_action(reply: str) -> Action:
    text = extract_action_text(reply)
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        node = _first_call_prefix(text)
        if node is None:
            return _lenient_sql(text)
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ActionError(f"the action must be a single tool call such as ExecuteSQL(\"SELECT ...\"), got: {text[:80]}")
    return bind(node.func.id, [_literal(a) for a in node.args], {k.arg: _literal(k.value) for k in node.keywords})


def bind(name: str, args: list, kwargs: dict) -> Action:
    """Match positional and keyword arguments to a tool's signature."""
    if name not in TOOL_SIGNATURES:
        raise ActionError(f"unknown tool '{name}'; tools are {', '.join(TOOL_SIGNATURES)}")
    params = TOOL_SIGNATURES[name]
    if None in kwargs or any(k not in params for k in kwargs):
        raise ActionError(f"{name} takes ({', '.join(params)})")
    if len(args) > len(params):
        raise ActionError(f"{name} takes at most {len(params)} argument(s): ({', '.join(params)})")
    arguments = dict(zip(params, args))
    for k, v in kwargs.items():
        if k in arguments:
            raise ActionError(f"{name} got '{k}' twice")
        arguments[k] = v
    required = {"SearchColumn": ["query"], "SearchValue": ["query"], "FindShortestPath": ["start", "end"],
                "ExecuteSQL": ["sql"], "Done": []}[name]
    missing = [r for r in required if r not in arguments]
    if missing:
        raise ActionError(f"{name} needs {', '.join(missing)}")
    return Action(name, arguments)


def _literal(node: ast.AST):
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError) as err:
        raise ActionError("tool arguments must be quoted strings or lists of strings") from err
    if isinstance(value, tuple):
        value = list(value)
    if not (value is None or isinstance(value, (str, int, float)) or
            (isinstance(value, list) and all(isinstance(v, str) for v in value))):
        raise ActionError("tool arguments must be quoted strings or lists of strings")
    return value


def _first_call_prefix(text: str) -> ast.AST | None:
    """A valid call followed by trailing chatter (`ExecuteSQL("...") to count`): parse the longest valid prefix."""
    for end in range(len(text), 0, -1):
        if text[end - 1] != ")":
            continue
        try:
            return ast.parse(text[:end], mode="eval").body
        except SyntaxError:
            continue
    return None


def _lenient_sql(text: str) -> Action:
    """`ExecuteSQL(SELECT ...)` without quotes is common from small models: accept the raw SQL inside."""
    match = re.match(r"ExecuteSQL\s*\((.*)\)\s*$", text, re.DOTALL | re.IGNORECASE)
    if match and match.group(1).strip().lower().startswith(("select", "with")):
        return Action("ExecuteSQL", {"sql": match.group(1).strip()})
    raise ActionError(f"could not parse the action {text[:80]!r}; write e.g. ExecuteSQL(\"SELECT ...\") "
                      "with the SQL in quotes")


def parse_tool_call(name: str, arguments_json: str) -> Action:
    """A native tool call (JSON arguments), checked against the same whitelist."""
    try:
        kwargs = json.loads(arguments_json or "{}")
    except json.JSONDecodeError as err:
        raise ActionError(f"tool arguments are not valid JSON: {err.msg}") from err
    if not isinstance(kwargs, dict):
        raise ActionError("tool arguments must be a JSON object")
    for value in kwargs.values():
        if not (value is None or isinstance(value, (str, int, float)) or
                (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            raise ActionError("tool arguments must be strings or lists of strings")
    return bind(name, [], kwargs)


TAGGED_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def json_objects(text: str):
    """Every top-level JSON object in `text`, in order; text around and between them is skipped."""
    decoder = json.JSONDecoder()
    at = text.find("{")
    while at != -1:
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            at = text.find("{", at + 1)
            continue
        yield value
        at = text.find("{", end)


def as_call(value) -> tuple[str, dict] | None:
    """(name, arguments) of `{"name", "arguments" | "parameters"}` or `{"function": {...}}` naming one of our
    tools; arguments may come as a JSON string, as the OpenAI wire format sends them."""
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        value = value["function"]
    if not isinstance(value, dict) or value.get("name") not in TOOL_SIGNATURES:
        return None
    arguments = value.get("arguments", value.get("parameters")) or {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError:
            return None
    return (value["name"], arguments) if isinstance(arguments, dict) else None


def parse_json_call(reply: str) -> Action:
    """A tool call written as text in the native JSON form, as small models do when the server did not turn it into
    a tool call (Qwen2.5-Coder-0.5B never writes its `<tool_call>` tag): inside `<tool_call>` tags if any, else the
    first JSON object naming a tool (bare, in a ```json fence, or followed by more calls or chatter). Argument names
    the tool does not take are dropped (a small model adds SearchValue's `table` to SearchColumn)."""
    regions = [m.group(1) for m in TAGGED_CALL.finditer(reply)] or [reply]
    for region in regions:
        for value in json_objects(region):
            call = as_call(value)
            if call is not None:
                name, arguments = call
                kept = {k: v for k, v in arguments.items() if k in TOOL_SIGNATURES[name]}
                return parse_tool_call(name, json.dumps(kept))
    raise ActionError("no tool call in the reply")


def tool_schemas() -> list[dict]:
    """OpenAI function-calling schemas of the five tools."""
    string_or_list = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    specs = {  # ExecuteSQL first: a small model tends to call the first tool listed
        "ExecuteSQL": ("Run one read-only SQL query.", {"sql": {"type": "string"}}, ["sql"]),
        "SearchColumn": ("Columns matching a description, with statistics.", {"query": string_or_list}, ["query"]),
        "SearchValue": ("Stored cell values matching text, exactly as stored.",
                        {"query": string_or_list, "table": string_or_list, "column": string_or_list}, ["query"]),
        "FindShortestPath": ("JOIN clauses linking two tables or columns.",
                             {"start": {"type": "string"}, "end": {"type": "string"}}, ["start", "end"]),
        "Done": ("Finish after ExecuteSQL returned the answer.", {}, []),
    }
    return [{"type": "function", "function": {"name": n, "description": d,
                                              "parameters": {"type": "object", "properties": p, "required": r}}}
            for n, (d, p, r) in specs.items()]
