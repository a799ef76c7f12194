import shutil

import pytest

from tunelab.text2sql.db import open_database
from tunelab.text2sql.sample_db import make_shop_database
from tunelab.text2sql.tools import Toolbox
from tunelab.text2sql.tpc import make_tpc_database


@pytest.fixture(scope="session")
def shop_master(tmp_path_factory):
    return make_shop_database(tmp_path_factory.mktemp("shop") / "shop.sqlite", customers=200, orders=800)


@pytest.fixture
def shop_path(shop_master, tmp_path):
    """A private copy, so tests that build caches beside the file or check its bytes do not interfere."""
    target = tmp_path / "shop.sqlite"
    shutil.copyfile(shop_master, target)
    return target


@pytest.fixture
def toolbox(shop_path):
    """The four tools over a private shop database, BM25 column search (no encoder)."""
    db = open_database(shop_path)
    box = Toolbox(db, encoder=None)
    yield box
    box.close()
    db.close()


@pytest.fixture(scope="session")
def tpch_master(tmp_path_factory):
    return make_tpc_database(tmp_path_factory.mktemp("tpch") / "tpch.duckdb", "tpch", 0.01)


@pytest.fixture
def tpch_path(tpch_master, tmp_path):
    target = tmp_path / "tpch.duckdb"
    shutil.copyfile(tpch_master, target)
    return target


@pytest.fixture(autouse=True)
def _value_index_dir(tmp_path_factory, monkeypatch):
    """SearchValue indexes go to the user's cache by default: keep the tests' ones in a temporary folder."""
    monkeypatch.setenv("TUNELAB_T2S_INDEX_DIR", str(tmp_path_factory.getbasetemp() / "value-index"))
