"""Introspection: declared keys as SQLite reports them, inferred keys against TPC-H's specification."""

import sqlite3

import pytest

from tunelab.errors import UserError
from tunelab.text2sql.db import format_rows, open_database
from tunelab.text2sql.schema import introspect, name_match_score, stem

# TPC-H specification, clause 1.4: the foreign keys between its eight tables (single-column ones).
TPCH_FOREIGN_KEYS = {
    ("customer", "c_nationkey", "nation", "n_nationkey"), ("lineitem", "l_orderkey", "orders", "o_orderkey"),
    ("lineitem", "l_partkey", "part", "p_partkey"), ("lineitem", "l_suppkey", "supplier", "s_suppkey"),
    ("nation", "n_regionkey", "region", "r_regionkey"), ("orders", "o_custkey", "customer", "c_custkey"),
    ("partsupp", "ps_partkey", "part", "p_partkey"), ("partsupp", "ps_suppkey", "supplier", "s_suppkey"),
    ("supplier", "s_nationkey", "nation", "n_nationkey"),
}


def test_declared_foreign_keys_match_sqlite_pragma(shop_path):
    with open_database(shop_path) as db:
        schema = introspect(db)
    raw = sqlite3.connect(shop_path)
    expected = set()
    for (table,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        for row in raw.execute(f"PRAGMA foreign_key_list('{table}')"):
            expected.add((table, row[3], row[2], row[4]))
    raw.close()
    assert {(k.table, k.column, k.ref_table, k.ref_column) for k in schema.foreign_keys} == expected
    assert not any(k.inferred for k in schema.foreign_keys)
    # the two parallel keys from orders to employees are both kept
    assert {k.column for k in schema.foreign_keys if (k.table, k.ref_table) == ("orders", "employees")} == \
        {"sales_rep_id", "approved_by"}
    assert schema.tables["customers"].row_count == 200
    assert schema.tables["customers"].primary_key == ["customer_id"]
    assert len(schema.tables["product_telemetry"].columns) >= 300


def test_inferred_foreign_keys_recover_tpch_specification(tpch_path):
    with open_database(tpch_path) as db:
        assert db.declared_foreign_keys() == []
        schema = introspect(db)
    found = {(k.table, k.column, k.ref_table, k.ref_column) for k in schema.foreign_keys}
    assert found == TPCH_FOREIGN_KEYS
    assert all(k.inferred for k in schema.foreign_keys)
    assert schema.tables["lineitem"].row_count == 60175  # TPC-H sf 0.01: 60,175 line items


def test_inference_needs_value_containment(tmp_path):
    path = tmp_path / "x.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE customer (customer_id INTEGER, name TEXT);
        CREATE TABLE orders (order_id INTEGER, customer_id INTEGER);
        CREATE TABLE bogus (bogus_id INTEGER, customer_id INTEGER);
        INSERT INTO customer VALUES (1, 'a'), (2, 'b');
        INSERT INTO orders VALUES (10, 1), (11, 2), (12, 2);
        INSERT INTO bogus VALUES (1, 1), (2, 99);
    """)
    conn.commit()
    conn.close()
    with open_database(path) as db:
        schema = introspect(db)
    found = {(k.table, k.column, k.ref_table, k.ref_column) for k in schema.foreign_keys}
    assert ("orders", "customer_id", "customer", "customer_id") in found
    assert not any(k[0] == "bogus" for k in found)  # 99 is not a customer: names alone are not enough


def test_name_matching_rules():
    assert stem("o_custkey") == "custkey" and stem("ss_sold_date_sk") == "sold_date_sk"
    assert stem("customer_id") == "customer_id"
    assert name_match_score("o_custkey", "customer", "c_custkey") > 0
    assert name_match_score("ss_sold_date_sk", "date_dim", "d_date_sk") > 0
    assert name_match_score("ss_cdemo_sk", "customer_demographics", "cd_demo_sk") > 0
    assert name_match_score("ss_cdemo_sk", "household_demographics", "hd_demo_sk") == 0
    assert name_match_score("customer_id", "customers", "id") == 100
    assert name_match_score("order_id", "customers", "id") == 0
    assert name_match_score("o_custkey", "part", "p_partkey") == 0


@pytest.mark.parametrize("content", [b"", b"hello, this is not a database at all"])
def test_unsupported_file_is_a_user_error(tmp_path, content):
    path = tmp_path / "x.db"
    path.write_bytes(content)
    with pytest.raises(UserError):
        open_database(path)
    with pytest.raises(UserError):
        open_database(tmp_path / "missing.sqlite")


def test_format_rows_keeps_trailing_spaces_visible(shop_path):
    with open_database(shop_path) as db:
        result = db.execute("SELECT DISTINCT city FROM customers WHERE city LIKE 'Lyon%'")
    assert "'Lyon '" in format_rows(result)


def test_missing_tpc_extension_is_a_user_error(monkeypatch):
    import importlib.util

    from tunelab.text2sql import tpc

    assert tpc.extension_file("tpch").name == "tpch.duckdb_extension"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install duckdb-extension-tpcds"):
        tpc.extension_file("tpcds")
    with pytest.raises(UserError, match="unknown benchmark"):
        tpc.make_tpc_database("x.duckdb", "tpcx")
