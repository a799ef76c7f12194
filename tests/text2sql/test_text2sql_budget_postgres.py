"""The budget table's statements on PostgreSQL, where the server's statement_timeout (and the client's cancel)
bound them: each ends within 1.2 x the budget + 0.2 s, as a SQLError, and the session still answers. The
throwaway cluster is the one test_text2sql_postgres.py starts (skipped with its reason when none can start)."""

import importlib.util
import time
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("text2sql_pg_cluster",
                                               Path(__file__).with_name("test_text2sql_postgres.py"))
_pg = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_pg)  # skips this module too when psycopg is missing

from tunelab.text2sql.db import SQLError, open_database  # noqa: E402

# The promised bound is 1.2 x budget + 0.2 s (benchmarks/text2sql/bench_budgets.py measures it on an idle machine);
# tests allow twice that, so a loaded CI machine does not fail them while overruns of the old kind (7-26 s) still do.
LOADED_MACHINE_SLACK = 2.0

cluster = _pg.cluster  # the fixture, shared by name
BUDGET_S = 1.0
BOUND_S = LOADED_MACHINE_SLACK * (1.2 * BUDGET_S + 0.2)
HUGE = {
    "repeat 1.5 GB": "SELECT length(repeat('x', 1500000000))",
    "repeat 500 MB": "SELECT length(repeat('x', 500000000))",
    "value of 300 MB to the client": "SELECT repeat('x', 300000000)",
    "lpad 1 GB": "SELECT length(lpad('x', 1000000000, 'y'))",
    "string_agg 3 GB": "SELECT length(string_agg(repeat('x', 10000000), '')) FROM generate_series(1, 300)",
    "strpos, long needle": "SELECT strpos(repeat('0', 30000000), repeat('0', 20000) || '1')",
    "OR chain 878 kB": "SELECT 1 WHERE 0=0" + " OR 1=1" * 125_000,
    "OR chain 60 kB": "SELECT 1 WHERE 0=0" + " OR 1=1" * 8_500,
    "expression 200 kB": "SELECT " + " + ".join(["1"] * 50_000),
    "parentheses 3000 deep": "SELECT " + "(" * 3000 + "1" + ")" * 3000,
}


@pytest.fixture(scope="module")
def reader_db(cluster):
    with open_database(cluster.url("t2s_reader")) as db:
        yield db


@pytest.mark.parametrize("case", list(HUGE))
def test_huge_statements_end_within_the_budget(reader_db, case):
    sql = HUGE[case]
    start = time.perf_counter()
    try:
        reader_db.execute(sql, timeout_s=BUDGET_S)
    except SQLError as err:
        assert err.kind in ("refused", "error", "timeout") and str(err)
        if len(sql.encode()) > reader_db.max_sql_bytes:
            assert err.kind == "refused" and "max_sql_bytes" in str(err)
    elapsed = time.perf_counter() - start
    assert elapsed <= BOUND_S, (case, elapsed)
    assert reader_db.execute("SELECT count(*) FROM region").rows == reader_db.query("SELECT count(*) FROM region")
