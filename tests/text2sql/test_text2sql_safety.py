"""The attack corpus: nothing that writes, escapes the file or runs unbounded may succeed, by the engine's refusal."""

import hashlib
import time

import pytest

from tunelab.text2sql.db import SQLError, open_database

SQLITE_ATTACKS = [
    "INSERT INTO customers VALUES (9999, 'x', 'y', 'z', 1, '2020-01-01')",
    "INSERT INTO customers SELECT customer_id + 10000, name, city, segment, region_id, signup_date FROM customers",
    "INSERT OR IGNORE INTO regions VALUES (1, 'x')",
    "REPLACE INTO regions VALUES (1, 'x')",
    "UPDATE customers SET name = 'x'",
    "UPDATE customers SET name = 'x' WHERE customer_id = 1 RETURNING *",
    "DELETE FROM orders",
    "DELETE FROM sqlite_master",
    "WITH x AS (SELECT 1) DELETE FROM customers",
    "DROP TABLE orders",
    "DROP TABLE IF EXISTS customers",
    "DROP INDEX IF EXISTS sqlite_autoindex_order_items_1",
    "CREATE TABLE evil (x)",
    "CREATE TEMP TABLE evil (x)",
    "CREATE VIEW v AS SELECT 1",
    "CREATE INDEX i ON customers(name)",
    "CREATE TRIGGER t AFTER INSERT ON regions BEGIN DELETE FROM orders; END",
    "CREATE VIRTUAL TABLE f USING fts5(x)",
    "ALTER TABLE customers ADD COLUMN x TEXT",
    "ALTER TABLE customers RENAME TO c2",
    "ATTACH DATABASE 'evil.db' AS evil",
    "ATTACH DATABASE ':memory:' AS m",
    "DETACH DATABASE main",
    "PRAGMA user_version = 7",
    "PRAGMA journal_mode = WAL",
    "PRAGMA query_only = OFF",
    "PRAGMA writable_schema = ON",
    "PRAGMA foreign_keys = OFF",
    "PRAGMA main.page_size = 1024",
    "SELECT load_extension('/tmp/evil.so')",
    "SELECT load_extension('libc.so.6', 'system')",
    "VACUUM",
    "VACUUM INTO 'copy.db'",
    "REINDEX",
    "ANALYZE",
    "BEGIN IMMEDIATE",
    "SAVEPOINT a",
    "SELECT 1; DROP TABLE orders",
    "SELECT 1; SELECT 2",
    "SELECT * FROM customers; DELETE FROM customers",
    "SELECT writefile('evil.txt', 'x')",
]
SQLITE_BOMBS = [
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
    "SELECT count(*) FROM order_items a, order_items b, order_items c",
    "SELECT * FROM customers a CROSS JOIN orders b CROSS JOIN order_items c",
]
DUCKDB_ATTACKS = [
    "INSERT INTO region VALUES (9, 'X', 'x')",
    "UPDATE nation SET n_name = 'x'",
    "DELETE FROM lineitem",
    "DROP TABLE orders",
    "CREATE TABLE evil AS SELECT 1",
    "CREATE TEMP TABLE evil (x INT)",
    "CREATE VIEW v AS SELECT 1",
    "CREATE MACRO m(x) AS x + 1",
    "CREATE SEQUENCE s",
    "ALTER TABLE nation ADD COLUMN x INT",
    "ATTACH 'evil.duckdb' AS evil",
    "ATTACH ':memory:' AS m",
    "COPY nation TO 'nation.csv'",
    "COPY nation FROM '/etc/passwd'",
    "EXPORT DATABASE 'dump'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "LOAD '/tmp/evil.duckdb_extension'",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "PRAGMA enable_profiling",
    "CALL dbgen(sf = 1)",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM glob('/*')",
    "CHECKPOINT",
    "VACUUM",
    "BEGIN TRANSACTION",
    "SELECT 1; DROP TABLE orders",
    "SELECT 1; SELECT 2",
]
DUCKDB_BOMBS = [
    "SELECT count(*) FROM lineitem a, lineitem b, lineitem c",
    "SELECT sum(a.l_quantity * c.o_totalprice) FROM lineitem a, lineitem b, orders c",
    "SELECT * FROM lineitem a CROSS JOIN orders b",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
]


def _fingerprint(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def test_corpus_is_large_enough():
    assert len(SQLITE_ATTACKS) + len(SQLITE_BOMBS) >= 40
    assert len(DUCKDB_ATTACKS) + len(DUCKDB_BOMBS) >= 30


def test_sqlite_attacks_fail_and_leave_bytes_unchanged(shop_path, monkeypatch):
    monkeypatch.chdir(shop_path.parent)  # relative ATTACH / VACUUM INTO targets would land here
    before = _fingerprint(shop_path.parent)
    with open_database(shop_path) as db:
        for sql in SQLITE_ATTACKS:
            with pytest.raises(SQLError) as err:
                db.execute(sql, timeout_s=2)
            assert err.value.kind in ("refused", "error"), sql
        assert db.execute("SELECT count(*) FROM customers").rows == [(200,)]  # still usable
    assert _fingerprint(shop_path.parent) == before  # same files, same bytes


@pytest.mark.parametrize("sql", SQLITE_BOMBS)
def test_sqlite_bombs_time_out_within_budget(shop_path, sql):
    budget = 1.0
    with open_database(shop_path) as db:
        start = time.perf_counter()
        with pytest.raises(SQLError) as err:
            db.execute(sql, timeout_s=budget)
        elapsed = time.perf_counter() - start
    assert err.value.kind == "timeout"
    assert budget <= elapsed <= 1.2 * budget


def test_duckdb_attacks_fail_and_leave_bytes_unchanged(tpch_path, monkeypatch):
    monkeypatch.chdir(tpch_path.parent)
    before = _fingerprint(tpch_path.parent)
    with open_database(tpch_path) as db:
        for sql in DUCKDB_ATTACKS:
            with pytest.raises(SQLError) as err:
                db.execute(sql, timeout_s=2)
            assert err.value.kind in ("refused", "error"), sql
        assert db.execute("SELECT count(*) FROM region").rows == [(5,)]
    assert _fingerprint(tpch_path.parent) == before


@pytest.mark.parametrize("sql", DUCKDB_BOMBS)
def test_duckdb_bombs_time_out_within_budget(tpch_path, sql):
    budget = 1.0
    with open_database(tpch_path) as db:
        start = time.perf_counter()
        with pytest.raises(SQLError) as err:
            db.execute(sql, timeout_s=budget)
        elapsed = time.perf_counter() - start
    assert err.value.kind in ("timeout", "error")  # an out-of-memory refusal before the deadline also stops it
    assert elapsed <= 1.2 * budget


def test_row_cap_keeps_total_count(shop_path, tpch_path):
    with open_database(shop_path) as db:
        result = db.execute("SELECT * FROM orders", max_rows=7)
        assert (len(result.rows), result.total_rows, result.truncated) == (7, 800, True)
    with open_database(tpch_path) as db:
        result = db.execute("SELECT * FROM lineitem", max_rows=3)
        truth = db.query("SELECT count(*) FROM lineitem")[0][0]
        assert (len(result.rows), result.total_rows, result.truncated) == (3, truth, True)


def test_duckdb_engine_refuses_writes_even_without_the_statement_gate(tpch_path, monkeypatch):
    """The statement-type gate is defence in depth: the read-only, no-file-access engine refuses on its own
    (only in-memory TEMP objects, which never reach the file, need the gate)."""
    monkeypatch.chdir(tpch_path.parent)
    before = _fingerprint(tpch_path.parent)
    with open_database(tpch_path) as db:
        for sql in ["INSERT INTO region VALUES (9, 'X', 'x')",
                    "ATTACH 'evil.duckdb' AS evil", "COPY nation TO 'nation.csv'", "SET enable_external_access = true",
                    "LOAD '/tmp/evil.duckdb_extension'", "CALL dbgen(sf = 1)", "DROP TABLE orders"]:
            with pytest.raises(SQLError):
                db.query(sql)
    assert _fingerprint(tpch_path.parent) == before
