"""The controller's grounding: question phrases, named tables, stored values, joins, and the schema slice."""

from tunelab.text2sql.db import ColumnInfo
from tunelab.text2sql.grounding import ground, named_tables, singular, value_phrases
from tunelab.text2sql.schema import Schema, Table


def schema_of(*names):
    return Schema("duckdb", {n: Table(n, [ColumnInfo("id", "INTEGER", True)], 1) for n in names}, [])


def test_value_phrases_skip_stopwords_and_keep_longest_first():
    phrases = value_phrases("How many orders of the Office Supplies category?")
    assert phrases[0] == "Office Supplies category"
    assert "Office Supplies" in phrases and "orders" in phrases
    assert not any(p.lower() in ("how", "many", "the", "of") for p in phrases)
    assert "Brand#13" in value_phrases("parts of brand Brand#13")


def test_singular():
    assert [singular(w) for w in ("stores", "categories", "addresses", "status", "class", "sales")] == \
        ["store", "category", "address", "statu", "class", "sale"]


def test_named_tables_match_adjacent_words_longest_first():
    schema = schema_of("store", "store_sales", "customer", "customer_address", "item")
    assert named_tables(schema, "How many store sales were made?") == ["store_sales"]
    assert named_tables(schema, "customer addresses in TX of a customer") == ["customer_address", "customer"]
    assert named_tables(schema, "How many stores and items?") == ["store", "item"]
    assert named_tables(schema, "How many warehouses?") == []


def test_grounding_finds_the_stored_value_and_the_join(toolbox):
    found = ground(toolbox, "How many orders were placed by customers from Nice?")
    assert set(found.tables) == {"orders", "customers"}
    assert [(v.table, v.column, v.value) for v in found.values] == [("customers", "city", "Nice ")]
    assert found.joins == ["JOIN customers ON orders.customer_id = customers.customer_id"]  # the question's order
    text = found.render()
    assert "customers.city = 'Nice '" in text and "customers(customer_id, name, city" in text
    assert "Join clause: FROM orders JOIN customers ON orders.customer_id = customers.customer_id" in text
    assert [a.name for a, _ in found.steps] == ["SearchColumn", "SearchValue", "FindShortestPath"]
    assert all(o.ok for _, o in found.steps)


def test_grounding_shows_only_relevant_columns_of_a_wide_table(toolbox):
    found = ground(toolbox, "What is the highest maximum pump voltage in the product telemetry?")
    shown = found.tables["product_telemetry"]
    assert "voltage_pump_max" in shown and "reading_id" in shown
    assert len(shown) <= 12 < len(toolbox.schema.tables["product_telemetry"].columns)


def test_lower_case_words_match_only_relevant_columns(toolbox):
    found = ground(toolbox, "How many orders have the status cancelled?")
    assert [(v.column, v.value) for v in found.values] == [("status", "cancelled")]
    assert list(found.tables) == ["orders"] and not found.joins
