"""Execution feedback: closest names for unknown ones, the missing join, the stored spelling of a literal."""

from tunelab.text2sql.repair import closest_columns, closest_tables, diagnose_empty, diagnose_error, literal_filters


def test_closest_names(toolbox):
    assert closest_columns(toolbox.schema, "segmnt")[0] == "customers.segment"
    assert "orders.order_date" in closest_columns(toolbox.schema, "date")
    assert closest_tables(toolbox.schema, "customer")[0] == "customers"


def test_unknown_column_gets_close_names(toolbox):
    sql = "SELECT count(*) FROM customers WHERE segmnt = 'corporate'"
    observation = toolbox.execute_sql(sql)
    assert not observation.ok
    hint, _ = diagnose_error(toolbox, sql, observation.text)
    assert "There is no column segmnt" in hint and "customers.segment" in hint


def test_column_of_an_unjoined_table_gets_the_join(toolbox):
    sql = "SELECT count(*) FROM orders WHERE city = 'Nice '"
    observation = toolbox.execute_sql(sql)
    hint, steps = diagnose_error(toolbox, sql, observation.text)
    assert [a.name for a, _ in steps] == ["FindShortestPath"]
    assert "orders.customer_id = customers.customer_id" in hint


def test_empty_result_on_a_literal_gets_its_stored_spelling(toolbox):
    sql = "SELECT count(*) FROM customers WHERE city = 'Lyon'"
    assert toolbox.execute_sql(sql).result.rows == [(0,)]
    hint, steps = diagnose_empty(toolbox, sql)
    assert [a.name for a, _ in steps] == ["SearchValue"]
    assert "customers.city = 'Lyon '" in hint
    fine, _ = diagnose_empty(toolbox, "SELECT count(*) FROM customers WHERE city = 'Lyon ' AND segment = 'x'")
    assert "'Lyon '" not in fine.split("stored values like it")[0]


def test_literal_filters_reads_eq_like_and_in():
    import sqlglot

    tree = sqlglot.parse_one("SELECT 1 FROM t WHERE a = 'x' AND t.b LIKE '%y%' AND c IN ('z', 'w') AND d = 3")
    assert sorted(literal_filters(tree), key=str) == sorted([(None, "a", "x"), (None, "c", "w"), (None, "c", "z"), ("t", "b", "y")], key=str)
