"""SQL budgets: the statements that broke ExecuteSQL's time budget or crashed it (huge values, long and deeply
nested SQL, join and recursion bombs), run against SQLite (the shop) and DuckDB (TPC-H sf 0.01) with a 2 s budget.
Every statement must return within 1.2 x budget + 0.2 s with a SQLError or rows, and nothing else may be raised.

    .venv/bin/python -m benchmarks.text2sql.bench_budgets [--budget 2] [--repeats 1]

Writes results/budgets.json and results/budgets.md (the table is generated from the JSON).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from benchmarks._harness import LOAD_KEY, MACHINE_KEY, load_average, machine_info
from benchmarks.text2sql.common import RESULTS, databases, write_readme
from tunelab.io import atomic_write_json, atomic_write_text
from tunelab.report import Table


def or_chain(n_bytes: int) -> str:
    head = "SELECT 1 WHERE 0=0"
    return head + " OR 1=1" * ((n_bytes - len(head)) // 7)


def plus_chain(n_bytes: int) -> str:
    return "SELECT " + " + ".join(["1"] * (n_bytes // 4))


PARENS = "SELECT " + "(" * 3000 + "1" + ")" * 3000
COMMON = [
    ("SQL length", "OR chain, 878 kB", or_chain(878_000)),
    ("SQL length", "expression, 200 kB", plus_chain(200_000)),
    ("SQL length", "OR chain, 60 kB (under the cap)", or_chain(60_000)),
    ("nesting", "parentheses, 3,000 deep", PARENS),
    ("recursion", "unbounded recursive CTE",
     "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"),
]
STATEMENTS = {
    "sqlite": COMMON + [
        ("huge value", "randomblob(400000000)", "SELECT length(randomblob(400000000))"),
        ("huge value", "printf('%.*c', 300000000)", "SELECT length(printf('%.*c', 300000000, 'x'))"),
        ("huge value", "printf('%.*c', 2147483647)", "SELECT length(printf('%.*c', 2147483647, 'x'))"),
        ("huge value", "hex(zeroblob(2e9))", "SELECT length(hex(zeroblob(2000000000)))"),
        ("huge value", "group_concat of 1 GB",
         "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) "
         "SELECT length(group_concat(hex(randomblob(1000000)), '')) FROM c"),
        ("one long call", "instr() with a 20 kB needle",
         "SELECT instr(hex(zeroblob(30000000)), hex(zeroblob(10000)) || '1')"),
        ("join bomb", "3-way cross join", "SELECT count(*) FROM order_items a, order_items b, order_items c"),
    ],
    "duckdb": COMMON + [
        ("huge value", "repeat('x', 1500000000)", "SELECT length(repeat('x', 1500000000))"),
        ("huge value", "lpad to 1.5e9", "SELECT length(lpad('x', 1500000000, 'y'))"),
        ("huge value", "range(1500000000) as a list", "SELECT len(range(1500000000))"),
        ("huge value", "string_agg of 3 GB", "SELECT length(string_agg(repeat('x', 10000000), '')) FROM range(300)"),
        ("one long call", "instr() with a 20 kB needle",
         "SELECT instr(repeat('0', 30000000), repeat('0', 20000) || '1')"),
        ("join bomb", "3-way cross join", "SELECT count(*) FROM lineitem a, lineitem b, lineitem c"),
    ],
}


def run_one(db, sql: str, budget: float) -> dict:
    from tunelab.text2sql.db import SQLError

    start = time.perf_counter()
    outcome, line = "rows", ""
    try:
        result = db.execute(sql, timeout_s=budget)
        line = f"{result.total_rows} row(s)"
    except SQLError as err:
        outcome, line = err.kind, str(err)
    except Exception as err:  # noqa: BLE001 - exactly what the budget forbids: recorded, not raised
        outcome, line = "crash", f"{type(err).__name__}: {err}"
    elapsed = time.perf_counter() - start
    return {"elapsed_s": elapsed, "outcome": outcome, "line": " ".join(line.split())[:160]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per statement")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each statement (the slowest is kept)")
    args = parser.parse_args()
    if not args.budget > 0 or args.repeats < 1:
        raise SystemExit("--budget must be positive and --repeats at least 1")
    from tunelab.text2sql.db import DEFAULT_MAX_SQL_BYTES, DEFAULT_MAX_VALUE_BYTES, open_database

    load_start = load_average()
    paths = databases()
    bound = 1.2 * args.budget + 0.2
    rows = []
    for engine, path in (("sqlite", paths["shop"]), ("duckdb", paths["tpch"])):
        with open_database(path) as db:
            db.execute("SELECT 1")  # the statement process is up: its start is not any statement's time
            for kind, name, sql in STATEMENTS[engine]:
                runs = [run_one(db, sql, args.budget) for _ in range(args.repeats)]
                worst = max(runs, key=lambda r: r["elapsed_s"])
                rows.append({"engine": engine, "class": kind, "statement": name, "sql_bytes": len(sql.encode()),
                             **worst, "bound_s": bound,
                             "ok": all(r["elapsed_s"] <= bound and r["outcome"] != "crash" for r in runs)})
                print(f"{engine:6} {name:34} {worst['elapsed_s']:6.2f} s  {worst['outcome']:8} {worst['line'][:70]}",
                      flush=True)
    result = {"budget_s": args.budget, "bound_s": bound, "repeats": args.repeats, "rows": rows,
              "all_ok": all(r["ok"] for r in rows), "max_sql_bytes": DEFAULT_MAX_SQL_BYTES,
              "max_value_bytes": DEFAULT_MAX_VALUE_BYTES, "memory_limit": "2GB",
              "peak_rss_gb": {"benchmark": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                              "statement_processes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6},
              MACHINE_KEY: machine_info(), LOAD_KEY: [load_start, load_average()]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "budgets.json", result)
    report(json.loads((RESULTS / "budgets.json").read_text()))
    write_readme()
    if not result["all_ok"]:
        raise SystemExit("some statement broke the budget or crashed: see results/budgets.md")


def report(r: dict) -> None:
    atomic_write_text(RESULTS / "budgets.md", budgets_markdown(r))


def budgets_markdown(r: dict) -> str:
    """results/budgets.md from results/budgets.json."""
    lines = ["### SQL budgets (`bench_budgets.py`)", "",
             f"Each statement ran through `Database.execute` (ExecuteSQL's call) with a {r['budget_s']:g} s budget; "
             f"the bound is 1.2 x budget + 0.2 s = {r['bound_s']:.1f} s. Limits: SQL up to "
             f"{r['max_sql_bytes']:,} bytes, SQLite strings and blobs up to {r['max_value_bytes']:,} bytes, "
             f"memory_limit {r['memory_limit']} (statement processes are stopped above it). "
             f"{sum(x['ok'] for x in r['rows'])} of {len(r['rows'])} statements within the bound, "
             f"{sum(x['outcome'] == 'crash' for x in r['rows'])} crashes"
             + (f" (slowest of {r['repeats']} runs each)." if r["repeats"] > 1 else "."), ""]
    lines.append(Table(["statement class", "statement", "engine", "SQL bytes", "elapsed s", "bound s", "ok", "outcome",
                        "error line"],
                       [[x["class"], x["statement"], x["engine"], f"{x['sql_bytes']:,}", f"{x['elapsed_s']:.2f}",
                         f"{x['bound_s']:.1f}", "yes" if x["ok"] else "NO", x["outcome"],
                         x["line"].replace("|", "\\|")]  # a pipe in an error line would split its cell
                        for x in r["rows"]]).to_markdown())
    peak = r["peak_rss_gb"]
    lines += ["", f"Peak resident memory: {peak['benchmark']:.2f} GB in the benchmark's process, "
                  f"{peak['statement_processes']:.2f} GB in a statement process. Measured on "
                  f"{r['machine']['cpus']} shared CPUs (1-minute load average {r['load_average_1min'][-1]:.1f} at the end of the run).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
