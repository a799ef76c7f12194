"""The four tools against ground truth computed directly from the database, BM25 against a hand computation."""

import math
import os
import sqlite3
import time

import networkx as nx
import pytest

from tunelab.text2sql.bm25 import bm25_scores, tokenize
from tunelab.text2sql.column_search import ColumnSearch
from tunelab.text2sql.db import open_database
from tunelab.text2sql.join_path import PathError, build_graph, shortest_path
from tunelab.text2sql.tools import Toolbox
from tunelab.text2sql.schema import introspect
from tunelab.text2sql.value_index import ValueIndex, default_index_path, fold



def test_bm25_matches_hand_computation():
    docs = [["a", "b"], ["b", "c", "c"], ["d"]]
    k1, b = 1.5, 0.75
    avg = 2.0
    idf_c = math.log((3 - 1 + 0.5) / (1 + 0.5) + 1)
    expected = idf_c * 2 * (k1 + 1) / (2 + k1 * (1 - b + b * 3 / avg))
    assert bm25_scores(["c"], docs, k1, b) == pytest.approx([0.0, expected, 0.0])
    assert tokenize("o_custkey firstName") == ["o", "custkey", "first", "name"]


def test_search_value_returns_the_stored_value_with_trailing_space(toolbox):
    obs = toolbox.search_value("lyon")
    assert "customers.city = 'Lyon '" in obs.text
    # the exact stored string is what makes a query succeed
    assert toolbox.db.execute("SELECT count(*) FROM customers WHERE city = 'Lyon '").rows[0][0] > 0
    assert toolbox.db.execute("SELECT count(*) FROM customers WHERE city = 'Lyon'").rows[0][0] == 0


def test_search_value_folds_case_accents_and_typos(toolbox):
    assert fold("Élodie ÇA") == "elodie ca"
    assert "'Ergonomic Chair'" in toolbox.search_value("ergonomc chair", table="products").text  # typo
    assert "no stored value" in toolbox.search_value("zzzqqq").text
    assert not toolbox.search_value("x", table="nope").ok


def test_search_value_filters_by_table_and_column(toolbox):
    hits = toolbox.value_index.search("shipped", tables=["orders"], columns=["status"])
    assert [(h.table, h.column, h.value) for h in hits] == [("orders", "status", "shipped")]
    assert toolbox.value_index.search("shipped", tables=["customers"]) == []


def test_value_index_is_persistent_and_rebuilt_when_the_file_changes(shop_path):
    with open_database(shop_path) as db:
        schema = introspect(db)
        index = ValueIndex.open_or_build(db, schema, progress=False)
        path = index.path
        built = index.meta()["build_s"]
        index.close()
        assert path == default_index_path(shop_path) and path.is_file()
        assert path.parent != shop_path.parent  # in the cache folder, not beside the database
        again = ValueIndex.open_or_build(db, schema, progress=False)
        assert again.meta()["build_s"] == built  # reused, not rebuilt
        again.close()
    conn = sqlite3.connect(shop_path)
    conn.execute("INSERT INTO regions VALUES (5, 'Atlantis')")
    conn.commit()
    conn.close()
    os.utime(shop_path, ns=(time.time_ns(), time.time_ns() + 10**9))
    with open_database(shop_path) as db:
        fresh = ValueIndex.open_or_build(db, introspect(db), progress=False)
        assert [h.value for h in fresh.search("atlantis")] == ["Atlantis"]
        fresh.close()


def test_value_index_lives_in_the_cache_not_beside_a_read_only_database(shop_path, tmp_path, monkeypatch):
    folder = tmp_path / "readonly"
    folder.mkdir()
    shop_path = shop_path.rename(folder / shop_path.name)
    monkeypatch.delenv("TUNELAB_T2S_INDEX_DIR")
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    before = sorted(p.name for p in folder.iterdir())
    folder.chmod(0o555)
    try:
        with open_database(shop_path) as db:
            box = Toolbox(db, encoder=None)
            assert "customers.city = 'Lyon '" in box.search_value("lyon").text
            path = box.value_index.path
            box.close()
        assert sorted(p.name for p in folder.iterdir()) == before  # nothing written beside the database
        assert path.parent == tmp_path / "cache" / "text2sql" / "value-index" and path.is_file()
        assert path == default_index_path(shop_path) and path.name.startswith("shop.sqlite.")
    finally:
        folder.chmod(0o755)


def test_value_index_is_rebuilt_when_the_file_is_touched_and_overrides_work(shop_path, tmp_path):
    with open_database(shop_path) as db:
        schema = introspect(db)
        first = ValueIndex.open_or_build(db, schema, index_dir=tmp_path / "idx", progress=False)
        path, inode = first.path, first.path.stat().st_ino
        first.close()
        assert path.parent == tmp_path / "idx"
        ValueIndex.open_or_build(db, schema, index_dir=tmp_path / "idx", progress=False).close()
        assert path.stat().st_ino == inode  # current: reused
    os.utime(shop_path, ns=(time.time_ns(), shop_path.stat().st_mtime_ns + 10**9))  # same bytes, new mtime
    with open_database(shop_path) as db:
        again = ValueIndex.open_or_build(db, introspect(db), index_dir=tmp_path / "idx", progress=False)
        assert again.path == path and path.stat().st_ino != inode  # stale: rebuilt (atomically replaced)
        assert again.meta()["database"] == db.identity()
        again.close()
        explicit = tmp_path / "mine.sqlite"
        box = Toolbox(db, encoder=None, index_path=explicit)  # an explicit file still wins
        assert box.value_index.path == explicit and explicit.is_file()
        box.close()


def test_fuzzy_fallback_corrects_typos_in_code_like_values(tmp_path):
    """Many values sharing both ends (TPC-DS-style codes): the typo is still corrected, and quickly."""
    import random

    rng = random.Random(0)
    codes = sorted({"AAAA" + "".join(rng.choice("ABCDEFGHIJKLMNOP") for _ in range(7)) + "AAAA" for _ in range(20000)})
    path = tmp_path / "codes.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, code TEXT)")
    conn.executemany("INSERT INTO item (code) VALUES (?)", [(c,) for c in codes])
    conn.commit()
    conn.close()
    with open_database(path) as db:
        index = ValueIndex.open_or_build(db, introspect(db), index_dir=tmp_path / "idx", progress=False)
        index.search("warm-up")
        wanted = codes[1234]
        typo = wanted[:6] + wanted[7:]  # one letter dropped
        start = time.perf_counter()
        hits = index.search(typo.lower())
        elapsed = time.perf_counter() - start
        index.close()
    assert hits and hits[0].value == wanted
    assert elapsed < 0.5  # difflib took about 0.6 s for such a query on TPC-DS sf 1; rapidfuzz a few ms


def test_value_index_skips_long_free_text(tmp_path):
    path = tmp_path / "t.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, tag TEXT)")
    conn.execute("INSERT INTO notes VALUES (1, ?, 'urgent')", ("lorem ipsum " * 50,))
    conn.commit()
    conn.close()
    with open_database(path) as db:
        index = ValueIndex.open_or_build(db, introspect(db), progress=False)
        assert index.search("lorem") == [] and index.search("urgent")[0].value == "urgent"
        index.close()


def test_search_column_bm25_and_exact_names(toolbox):
    obs = toolbox.search_column("max vibration at the pump")  # BM25 is lexical: "max", not "maximum"
    first = obs.text.splitlines()[1]
    assert first.startswith("- product_telemetry.vibration_pump_max")
    assert "min " in first and "max " in first  # numeric statistics
    city = toolbox.search_column("city").text
    assert "customers.city" in city and "'Lyon '" in city  # categorical values listed exactly
    hits = toolbox.column_search.search("order_date", k=1)
    assert (hits[0].table, hits[0].column) == ("orders", "order_date")


@pytest.mark.slow
def test_search_column_dense_with_minilm(shop_path):
    from tunelab.models import load_sentence_encoder

    with open_database(shop_path) as db:
        schema = introspect(db)
        schema.tables = {k: v for k, v in schema.tables.items() if k != "product_telemetry"}  # keep it quick
        search = ColumnSearch(schema, load_sentence_encoder())
        assert search.method == "dense"
        top = search.search("in which town does the client live", k=3)
        assert ("customers", "city") in [(h.table, h.column) for h in top]


def test_shortest_path_matches_networkx_and_keeps_parallel_keys(shop_path):
    with open_database(shop_path) as db:
        schema = introspect(db)
    path = shortest_path(schema, "customers", "employees")
    tables_only = nx.Graph()
    tables_only.add_edges_from((k.table, k.ref_table) for k in schema.foreign_keys if k.table != k.ref_table)
    assert len(path.tables) - 1 == nx.shortest_path_length(tables_only, "customers", "employees")
    parallel = shortest_path(schema, "orders", "employees")
    assert {k.column for k in parallel.hops[0]} == {"sales_rep_id", "approved_by"}
    assert "approved_by" in parallel.render() and "sales_rep_id" in parallel.render()
    joined = shortest_path(schema, "order_items.quantity", "regions.name")
    assert joined.tables[0] == "order_items" and joined.tables[-1] == "regions"
    assert joined.render().startswith("order_items.quantity <-> ")


def test_shortest_path_join_clauses_execute(toolbox):
    path = shortest_path(toolbox.schema, "order_items", "regions")
    sql = "SELECT count(*) " + " ".join(path.join_clauses())
    assert toolbox.db.execute(sql).rows[0][0] > 0


def test_shortest_path_structured_errors(shop_path, tmp_path):
    with open_database(shop_path) as db:
        schema = introspect(db)
    with pytest.raises(PathError, match="ambiguous"):
        shortest_path(schema, "name", "regions")
    with pytest.raises(PathError, match="did you mean"):
        shortest_path(schema, "region", "orders")
    schema.foreign_keys = []
    with pytest.raises(PathError, match="no foreign-key path"):
        shortest_path(schema, "orders", "customers", build_graph(schema))


def test_execute_sql_observations(toolbox):
    ok = toolbox.execute_sql("SELECT count(*) FROM orders")
    assert ok.ok and ok.result.rows == [(800,)] and "[1 row]" in ok.text
    bad = toolbox.execute_sql("SELECT nope FROM orders")
    assert not bad.ok and "no such column" in bad.text
    refused = toolbox.execute_sql("DROP TABLE orders")
    assert not refused.ok and "refused" in refused.text


def test_sql_literal_is_what_the_model_should_write():
    import datetime
    import decimal

    from tunelab.text2sql.db import sql_literal

    assert sql_literal("Lyon ") == "'Lyon '" and sql_literal("O'Brien") == "'O''Brien'"
    assert sql_literal(decimal.Decimal("901.00")) == "901.00" and sql_literal(3) == "3" and sql_literal(2.5) == "2.5"
    assert sql_literal(datetime.date(2024, 1, 31)) == "'2024-01-31'"
    assert sql_literal(datetime.datetime(2024, 1, 31, 8, 5)) == "'2024-01-31 08:05:00'"
    assert sql_literal(None) == "NULL" and sql_literal(True) == "TRUE"


def test_observations_show_sql_literals_not_python_reprs(tpch_path):
    from tunelab.text2sql.db import open_database

    with open_database(tpch_path) as db:
        box = Toolbox(db, encoder=None)
        text = box.search_column("customer account balance").text
        assert "Decimal(" not in text and "datetime" not in text
        assert "Decimal(" not in box.execute_sql("SELECT max(c_acctbal) FROM customer").text
        box.close()
