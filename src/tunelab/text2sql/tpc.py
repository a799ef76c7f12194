"""TPC-H / TPC-DS databases generated offline by DuckDB's own generators (`dbgen`, `dsdgen`).

The extensions ship in the `duckdb-extension-tpch` / `duckdb-extension-tpcds` packages; their file is LOADed by
path, so nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from tunelab.errors import UserError


def extension_file(name: str) -> Path:
    """The `<name>.duckdb_extension` file inside the `duckdb-extension-<name>` package."""
    import duckdb

    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the DuckDB {name} extension is not installed: pip install duckdb-extension-{name}")
    root = Path(list(spec.submodule_search_locations)[0])
    wanted = root / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if wanted.is_file():
        return wanted
    found = sorted(root.rglob(f"{name}.duckdb_extension"))
    if not found:
        raise UserError(f"duckdb-extension-{name} has no {name}.duckdb_extension file: reinstall it")
    return found[-1]


def make_tpc_database(path: str | Path, benchmark: str = "tpch", scale: float = 0.01) -> Path:
    """Generate TPC-H (`tpch`) or TPC-DS (`tpcds`) at `scale` into a DuckDB file (atomically); reuse a finished one."""
    import duckdb

    if benchmark not in ("tpch", "tpcds"):
        raise UserError(f"unknown benchmark '{benchmark}': use tpch or tpcds")
    path = Path(path)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    conn = duckdb.connect(str(tmp))
    try:
        conn.execute(f"LOAD '{extension_file(benchmark)}'")
        conn.execute(f"CALL {'dbgen' if benchmark == 'tpch' else 'dsdgen'}(sf={float(scale)})")
        conn.execute("CHECKPOINT")
    finally:
        conn.close()
    os.replace(tmp, path)
    Path(str(tmp) + ".wal").unlink(missing_ok=True)
    return path
