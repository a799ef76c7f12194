"""`tunelab sql mcp`: the four tools and the schema summary over MCP, driven by the official SDK's own client."""

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import time

import pytest

from tunelab.cli import main

pytest.importorskip("mcp")

from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

TOOLS = {"SearchColumn", "SearchValue", "FindShortestPath", "ExecuteSQL"}


def _field(obj, snake: str, camel: str):
    """SDK 2.x names fields in snake case (is_error, input_schema), 1.x in camel case."""
    return getattr(obj, snake) if hasattr(obj, snake) else getattr(obj, camel)


def _server_env() -> dict:
    """The SDK's client passes only a minimal environment on: add the tests' (the value-index folder among them)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("TUNELAB_") or k == "PYTHONPATH"}
    return {**env, "OMP_NUM_THREADS": "1", "TUNELAB_QUIET": "1"}


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _text(result) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "type", "") == "text")


async def _exercise(session) -> dict:
    """List, call every tool, read the schema resource and try two attacks; returns what came back."""
    await session.initialize()
    listed = (await session.list_tools()).tools
    calls = {
        "SearchValue": {"query": "lyon"},
        "SearchColumn": {"query": ["customer city"]},
        "FindShortestPath": {"start": "orders", "end": "regions"},
        "ExecuteSQL": {"sql": "SELECT count(*) AS n FROM customers WHERE city = 'Lyon '"},
        "drop": {"sql": "DROP TABLE orders"},
        "delete": {"sql": "DELETE FROM customers"},
        "unknown table": {"query": "x", "table": "nope"},
    }
    results = {}
    for label, arguments in calls.items():
        tool = label if label in TOOLS else ("SearchValue" if "table" in arguments else "ExecuteSQL")
        result = await session.call_tool(tool, arguments)
        results[label] = (_text(result), bool(_field(result, "is_error", "isError")))
    resources = (await session.list_resources()).resources
    schema = await session.read_resource("tunelab://schema")
    return {"tools": listed, "results": results, "resources": [str(r.uri) for r in resources],
            "schema": schema.contents[0].text}


@pytest.mark.timeout(180)
def test_stdio_server_tools_resource_and_refusals(shop_path):
    before = _sha256(shop_path)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tunelab.cli", "sql", "mcp", "--db", str(shop_path), "--encoder", "none", "--max-rows", "5"],
        env=_server_env())

    async def run() -> dict:
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                return await _exercise(session)

    got = asyncio.run(asyncio.wait_for(run(), 150))
    tools = {t.name: t for t in got["tools"]}
    assert set(tools) == TOOLS
    for tool in tools.values():
        schema = _field(tool, "input_schema", "inputSchema")
        assert schema["type"] == "object" and schema["properties"] and schema["required"]
        assert tool.description
    search_value = _field(tools["SearchValue"], "input_schema", "inputSchema")
    assert set(search_value["properties"]) == {"query", "table", "column"}
    assert _field(tools["FindShortestPath"], "input_schema", "inputSchema")["required"] == ["start", "end"]
    assert "5 rows" in tools["ExecuteSQL"].description  # the row cap it runs under

    results = got["results"]
    text, error = results["SearchValue"]
    assert "customers.city = 'Lyon '" in text and not error  # the stored spelling, trailing space included
    text, error = results["SearchColumn"]
    assert "customers.city" in text and not error
    text, error = results["FindShortestPath"]
    assert "JOIN customers ON" in text and "JOIN regions ON" in text and not error
    text, error = results["ExecuteSQL"]
    assert text.splitlines()[0] == "n" and "[1 row]" in text and not error
    for attack in ("drop", "delete"):
        text, error = results[attack]
        assert error and "refused" in text, (attack, text)
    text, error = results["unknown table"]
    assert error and "unknown table" in text

    assert got["resources"] == ["tunelab://schema"]
    assert got["schema"].startswith("| Table | Primary Key | Foreign Key | Row Count |")
    assert "| orders | order_id |" in got["schema"]
    assert _sha256(shop_path) == before  # the attacks changed nothing


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(180)
def test_streamable_http_transport(shop_path):
    from mcp.client.streamable_http import streamable_http_client

    port = _free_port()
    env = {**os.environ, **_server_env()}
    server = subprocess.Popen([sys.executable, "-m", "tunelab.cli", "sql", "mcp", "--db", str(shop_path), "--encoder",
                               "none", "--transport", "http", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while "serving" not in server.stderr.readline():  # printed once the indexes are built
            assert server.poll() is None and time.monotonic() < deadline, "the HTTP server did not start"

        async def run():
            for _ in range(100):  # uvicorn binds just after the line is printed
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    await asyncio.sleep(0.1)
            async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as streams:
                async with ClientSession(streams[0], streams[1]) as session:
                    await session.initialize()
                    names = {t.name for t in (await session.list_tools()).tools}
                    ok = await session.call_tool("SearchValue", {"query": "nice"})
                    attack = await session.call_tool("ExecuteSQL", {"sql": "DELETE FROM customers"})
                    return names, ok, attack

        names, ok, attack = asyncio.run(asyncio.wait_for(run(), 120))
    finally:
        server.terminate()
        server.wait(30)
        server.stderr.close()
    assert names == TOOLS
    assert "customers.city = 'Nice '" in _text(ok)
    assert _field(attack, "is_error", "isError") and "refused" in _text(attack)


@pytest.mark.parametrize("args,message", [
    (["--transport", "ftp"], "unknown --transport"),
    (["--timeout-s", "0"], "--timeout-s must be > 0"),
    (["--max-rows", "0"], "--max-rows must be >= 1"),
])
def test_mcp_option_errors_are_one_line(shop_path, capsys, args, message):
    code = main(["sql", "mcp", "--db", str(shop_path), "--encoder", "none", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_mcp_missing_database_is_one_line(tmp_path, capsys):
    code = main(["sql", "mcp", "--db", str(tmp_path / "nope.sqlite"), "--encoder", "none"])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
