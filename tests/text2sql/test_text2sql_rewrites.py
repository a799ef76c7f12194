"""The controller's query rewrites: each mistake class, on a real engine, checked against the gold query's rows."""

import pytest

from tunelab.text2sql.db import open_database
from tunelab.text2sql.rewrites import repair_query, transpile_functions
from tunelab.text2sql.tools import Toolbox


@pytest.fixture
def tpch(tpch_path):
    box = Toolbox(open_database(tpch_path), encoder=None)
    yield box
    box.close()


def repaired_rows(box, sql):
    """Rewrite the query until it runs with rows (at most three rounds, as the agent does); its rows and fixes."""
    fixes = []
    for _ in range(3):
        observation = box.execute_sql(sql)
        if observation.ok and observation.result.rows and observation.result.rows != [(0,)] \
                and observation.result.rows != [(None,)]:
            return box.db.execute(sql).rows, fixes
        rewrite = repair_query(box, sql, None if observation.ok else observation.text)
        assert rewrite is not None, f"no rewrite for {sql!r}: {observation.text}"
        fixes += rewrite.fixes
        sql = rewrite.sql
    return box.db.execute(sql).rows, fixes


SHOP_CASES = [
    # (the model's query, the gold query, a word of the fix)
    ("SELECT count(*) FROM orders WHERE status = 'returned' AND YEAR(order_date) = 2024",
     "SELECT count(*) FROM orders WHERE status = 'returned' AND order_date LIKE '2024%'", "strftime"),
    ("SELECT count(*) FROM orders WHERE EXTRACT(MONTH FROM order_date) = 3 AND EXTRACT(YEAR FROM order_date) = 2023",
     "SELECT count(*) FROM orders WHERE order_date LIKE '2023-03%'", "strftime"),
    ("SELECT count(DISTINCT customer_id) FROM customers JOIN orders ON customers.customer_id = orders.customer_id",
     "SELECT count(DISTINCT customer_id) FROM orders", "qualified customer_id"),
    ("SELECT max(temperature_core_max) FROM products WHERE product_id = 5",
     "SELECT max(temperature_core_max) FROM product_telemetry WHERE product_id = 5", "joined product_telemetry"),
    ("SELECT count(*) FROM customers WHERE city = 'Lyon'",
     "SELECT count(*) FROM customers WHERE city = 'Lyon '", "stored spelling"),
    ("SELECT count(*) FROM customers WHERE name = 'corporate'",
     "SELECT count(*) FROM customers WHERE segment = 'corporate'", "column that stores it"),
    ("SELECT count(*) FROM orders WHERE segment = 'corporate'",
     "SELECT count(*) FROM orders JOIN customers ON orders.customer_id = customers.customer_id "
     "WHERE customers.segment = 'corporate'", "joined customers"),
]


@pytest.mark.parametrize("sql, gold, fix", SHOP_CASES)
def test_shop_rewrites_give_the_gold_rows(toolbox, sql, gold, fix):
    rows, fixes = repaired_rows(toolbox, sql)
    assert rows == toolbox.db.execute(gold).rows
    assert any(fix in f for f in fixes), fixes


TPCH_CASES = [
    ("SELECT count(*) FROM orders WHERE o_orderdate LIKE '1995%'",
     "SELECT count(*) FROM orders WHERE year(o_orderdate) = 1995", "LIKE"),
    ("SELECT r_name FROM region JOIN nation ON r_regionkey = n_regionkey JOIN supplier ON n_nationkey = s_nationkey "
     "GROUP BY r_regionkey ORDER BY count(*) DESC LIMIT 1",
     "SELECT r_name FROM region JOIN nation ON r_regionkey = n_regionkey JOIN supplier ON n_nationkey = s_nationkey "
     "GROUP BY r_name ORDER BY count(*) DESC LIMIT 1", "GROUP BY"),
    ("SELECT count(*) FROM customer WHERE c_nationkey = (SELECT n_nationkey FROM nation WHERE n_regionkey = 1)",
     "SELECT count(*) FROM customer WHERE c_nationkey IN (SELECT n_nationkey FROM nation WHERE n_regionkey = 1)",
     "IN (subquery)"),
    ("SELECT count(*) FROM orders WHERE o_custkey IN (SELECT c_custkey FROM customer WHERE c_nationkey = 'FRANCE')",
     "SELECT count(*) FROM orders JOIN customer ON o_custkey = c_custkey JOIN nation ON c_nationkey = n_nationkey "
     "WHERE n_name = 'FRANCE'", "n_name"),
    ("SELECT avg(l_discount) FROM lineitem WHERE l_shipmode = 'DELIVER IN PERSON'",
     "SELECT avg(l_discount) FROM lineitem WHERE l_shipinstruct = 'DELIVER IN PERSON'", "l_shipinstruct"),
    ("SELECT count(*) FROM orders WHERE strftime('%Y', o_orderdate) = '1996'",
     "SELECT count(*) FROM orders WHERE year(o_orderdate) = 1996", None),
]


@pytest.mark.parametrize("sql, gold, fix", TPCH_CASES)
def test_duckdb_rewrites_give_the_gold_rows(tpch, sql, gold, fix):
    rows, fixes = repaired_rows(tpch, sql)
    assert rows == tpch.db.execute(gold).rows
    assert fix is None or any(fix in f for f in fixes), fixes


def test_nothing_to_rewrite_gives_none(toolbox):
    assert repair_query(toolbox, "SELECT count(*) FROM customers WHERE city = 'Atlantis'", None) is None
    assert repair_query(toolbox, "SELECT count(*) FROM customers", None) is None
    assert repair_query(toolbox, "not sql at all (", "syntax error") is None


def test_transpiling_needs_an_unknown_function_error():
    sql = "SELECT strftime('%Y', d) FROM t"
    assert transpile_functions(sql, "duckdb", "Binder Error: column d not found") is None
    rewrite = transpile_functions(sql, "duckdb", "No function matches the given name and argument types")
    assert rewrite is not None and "STRFTIME(" in rewrite.sql.upper() and rewrite.sql != sql


def test_sql_over_the_length_cap_is_not_parsed_for_rewrites():
    """The engine refuses it before any parser; parsing it for a rewrite would cost seconds (super-linear)."""
    import time

    from tunelab.text2sql.db import DEFAULT_MAX_SQL_BYTES
    from tunelab.text2sql.rewrites import parse

    long_sql = "SELECT 1 WHERE 0=0" + " OR 1=1" * (DEFAULT_MAX_SQL_BYTES // 7)
    start = time.perf_counter()
    assert parse(long_sql, "sqlite") is None
    assert time.perf_counter() - start < 0.05
    assert parse("SELECT 1 WHERE 0=0 OR 1=1", "sqlite") is not None
