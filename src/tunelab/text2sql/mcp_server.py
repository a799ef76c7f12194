"""`tunelab sql mcp`: the agent's four tools as a Model Context Protocol server (the official `mcp` SDK).

Tools SearchColumn, SearchValue, FindShortestPath and ExecuteSQL are the `Toolbox`'s, over the same read-only
engine (`open_database`) with the same budgets (per-query timeout, row cap); each returns the observation text the
agent would read. A failing call (a refused or broken query, an unknown table) returns its error text as a tool
error (`isError`), never a protocol error, so the client's model can read it and correct itself. The agent's start
context, the table summary (tables, primary keys, foreign keys, row counts), is the resource `tunelab://schema`.

Transports: stdio (the client starts `tunelab sql mcp --db ...` itself) and streamable HTTP (`--transport http`,
served at `http://HOST:PORT/mcp`). Works with the SDK's 1.x `FastMCP` and its 2.x successor `MCPServer`.
"""

import contextlib
import inspect
import sys
import threading
from typing import Annotated, Any

from tunelab.errors import UserError

SERVER_NAME = "tunelab-sql"
SCHEMA_URI = "tunelab://schema"
TRANSPORTS = ("stdio", "http")
HTTP_PATH = "/mcp"


def _sdk():
    """(server class, ToolError, ToolAnnotations, major version) of the installed MCP SDK."""
    try:
        import mcp  # noqa: F401
    except ImportError as err:
        raise UserError("the MCP server needs the official MCP SDK: pip install 'mcp>=1.8'") from err
    from mcp.types import ToolAnnotations

    try:  # 2.x renamed FastMCP to MCPServer
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError

        return MCPServer, ToolError, ToolAnnotations, 2
    except ImportError:
        from mcp.server.fastmcp import FastMCP
        from mcp.server.fastmcp.exceptions import ToolError

        return FastMCP, ToolError, ToolAnnotations, 1


def _supported(func, kwargs: dict) -> dict:
    """The keyword arguments `func` accepts (older SDK releases lack title, annotations, structured_output)."""
    params = inspect.signature(func).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def _dialect(box) -> str:
    return {"sqlite": "SQLite", "duckdb": "DuckDB", "postgres": "PostgreSQL",
            "postgresql": "PostgreSQL"}.get(getattr(box.db, "dialect", ""), getattr(box.db, "dialect", "SQL"))


def build_server(box, name: str = SERVER_NAME, host: str = "127.0.0.1", port: int = 8000):
    """An MCP server (not yet running) exposing `box`'s tools and the schema summary.

    Returns (server, run keyword arguments for streamable HTTP)."""
    from pydantic import Field

    from tunelab.text2sql.prompts import table_summary

    server_class, tool_error, annotations_class, major = _sdk()
    dialect = _dialect(box)
    summary = table_summary(box.schema)
    instructions = (f"Read-only {dialect} database with {len(box.schema.tables)} tables; the resource {SCHEMA_URI} "
                    "lists them with their keys and row counts. Find columns with SearchColumn, stored values "
                    "(exact spelling) with SearchValue, JOIN clauses with FindShortestPath, then run one SELECT with "
                    "ExecuteSQL. Writes are refused.")
    settings: dict[str, Any] = {"instructions": instructions, "log_level": "WARNING"}
    run_kwargs: dict[str, Any] = {}
    if major == 1:  # FastMCP takes the HTTP settings at construction
        settings.update(host=host, port=port, streamable_http_path=HTTP_PATH)
    else:
        run_kwargs.update(host=host, port=port, streamable_http_path=HTTP_PATH)
    server = server_class(name, **_supported(server_class.__init__, settings))
    lock = threading.Lock()  # one call at a time: the toolbox's caches and connections are not shared safely

    def call(tool: str, method, **arguments) -> str:
        try:
            with lock:
                observation = method(**arguments)
        except Exception as err:  # the toolbox reports failures as observations; anything else still gets a text
            raise tool_error(f"{tool} failed: {' '.join(str(err).split()) or type(err).__name__}") from err
        if not observation.ok:
            raise tool_error(observation.text)
        return observation.text

    texts = Annotated[str | list[str], Field(description="A string, or a list of strings for several at once.")]
    optional = Annotated[str | list[str] | None, Field(description="Optional restriction (a name or a list).")]

    def search_column(query: texts) -> str:
        return call("SearchColumn", box.search_column, query=query)

    def search_value(query: texts, table: optional = None, column: optional = None) -> str:
        return call("SearchValue", box.search_value, query=query, table=table, column=column)

    def find_shortest_path(start: Annotated[str, Field(description="A table or table.column.")],
                           end: Annotated[str, Field(description="A table or table.column.")]) -> str:
        return call("FindShortestPath", box.find_shortest_path, start=start, end=end)

    def execute_sql(sql: Annotated[str, Field(description=f"One {dialect} SELECT (or WITH) query.")]) -> str:
        return call("ExecuteSQL", box.execute_sql, sql=sql)

    tools = [
        ("SearchColumn", search_column,
         "Columns matching a description (e.g. 'customer city'), as table.column (type), with statistics: "
         "distinct values, range or frequent values."),
        ("SearchValue", search_value,
         "Stored cell values matching text (case, accents and small typos tolerated), returned exactly as stored "
         "(spelling, case, trailing spaces) as table.column = 'literal', ready to paste into a WHERE clause. "
         "Optionally restricted to some tables or columns."),
        ("FindShortestPath", find_shortest_path,
         "The JOIN clauses linking two tables or columns along the foreign keys (declared or inferred)."),
        ("ExecuteSQL", execute_sql,
         f"Run one read-only {dialect} query: the columns, up to {box.max_rows} rows and the total row count. "
         f"Writes, pragmas that write and several statements are refused; a query is stopped after "
         f"{box.timeout_s:g} s."),
    ]
    for tool_name, fn, description in tools:
        fn.__name__ = fn.__qualname__ = tool_name  # the schema's title: SearchColumnArguments
        options = {"name": tool_name, "description": description, "structured_output": False,
                   "annotations": annotations_class(title=tool_name, readOnlyHint=True, destructiveHint=False,
                                                    idempotentHint=True, openWorldHint=False)}
        server.add_tool(fn, **_supported(server.add_tool, options))

    def schema_resource() -> str:
        return summary

    resource_options = {"name": "schema", "description": f"The {dialect} database's tables: primary keys, "
                        "foreign keys and row counts (the agent's start context).", "mime_type": "text/markdown"}
    server.resource(SCHEMA_URI, **_supported(server.resource, resource_options))(schema_resource)
    return server, run_kwargs


def serve(db: str, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8000,
          encoder: str | None = "all-minilm-l6-v2", timeout_s: float = 30.0, max_rows: int = 20) -> None:
    """Open `db` read-only, build the indexes, and serve until the client (stdio) or Ctrl+C (HTTP) ends it."""
    from tunelab.text2sql.db import open_database
    from tunelab.text2sql.tools import Toolbox

    if transport not in TRANSPORTS:
        raise UserError(f"unknown transport '{transport}': use {' or '.join(TRANSPORTS)}")
    if timeout_s <= 0:
        raise UserError("--timeout-s must be positive")
    if max_rows < 1:
        raise UserError("--max-rows must be at least 1")
    if not 0 < port < 65536:
        raise UserError(f"--port {port} is not a TCP port")
    _sdk()  # a missing SDK is reported before the database work
    # Over stdio, stdout carries the protocol: whatever setup prints goes to stderr instead.
    with contextlib.redirect_stdout(sys.stderr):
        database = open_database(db)
        try:
            box = Toolbox(database, encoder=encoder, timeout_s=timeout_s, max_rows=max_rows)
            box.column_search  # noqa: B018 -- built now, not during the first call (clients time requests out)
            box.value_index  # noqa: B018
            server, run_kwargs = build_server(box, host=host, port=port)
        except BaseException:
            database.close()
            raise
    try:
        if transport == "stdio":
            server.run("stdio")
        else:
            print(f"tunelab sql mcp: serving {len(box.schema.tables)} tables over streamable HTTP at "
                  f"http://{host}:{port}{HTTP_PATH} (Ctrl+C stops)", file=sys.stderr, flush=True)
            server.run("streamable-http", **run_kwargs)
    finally:
        box.close()
        database.close()
