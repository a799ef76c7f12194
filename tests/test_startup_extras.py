"""Per-capability installs: the extras in pyproject.toml, the missing-extra message, and `.[text2sql]` alone in a
fresh virtual environment."""

import re
import sqlite3
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from tunelab.errors import UserError
from tunelab.extras import (distribution, extra_for, installed_extras, missing_message, normalise, require,
                            resolve_extras)

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CAPABILITIES = ["align", "adapters", "active", "text2sql", "cortex"]
# used without an import statement of their own
NOT_IMPORTED = {
    "gguf": "transformers reads GGUF checkpoints with it",
    "accelerate": "transformers.Trainer requires it",
    "duckdb-extension-tpch": "its extension file is LOADed into DuckDB",
    "duckdb-extension-tpcds": "its extension file is LOADed into DuckDB",
    "pytest-timeout": "a pytest plugin",
}


def requires_dist(project: dict) -> list[str]:
    """pyproject's dependencies written as Requires-Dist lines, the way the installed metadata holds them."""
    lines = list(project["dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        lines += [f'{r}; extra == "{extra}"' for r in requirements]
    return lines


@pytest.fixture(scope="module")
def extras():
    return resolve_extras(requires_dist(PROJECT))


def test_every_capability_has_an_extra_and_all_holds_them(extras):
    for name in CAPABILITIES + ["test", "bench", "all"]:
        assert name in extras
    union = set().union(*(extras[name] for name in CAPABILITIES))
    assert extras["all"] == union


def test_text2sql_installs_no_training_stack(extras):
    assert not {"torch", "peft", "trl", "scikit-image", "transformers"} & extras["text2sql"]
    assert {"sqlglot", "duckdb", "openai", "mcp"} <= extras["text2sql"]


def test_references_between_extras_are_followed(extras):
    assert {"torch", "transformers", "datasets", "peft"} <= extras["align"]  # through tunelab[models,data]


def test_installed_metadata_matches_pyproject(extras):
    """A stale install names extras that no longer exist; reinstall with `pip install -e .` (make does it)."""
    assert installed_extras() == extras


def _imported_names() -> set[str]:
    pattern = re.compile(r"""^\s*(?:from|import)\s+([A-Za-z_]\w*)|importorskip\(\s*["']([A-Za-z_]\w*)""", re.M)
    found = set()
    for folder in ("src", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            found |= {a or b for a, b in pattern.findall(path.read_text(encoding="utf-8"))}
    return found


def test_no_dependency_is_unused():
    imported = _imported_names()
    import_names = {}  # distribution -> its top-level import names, from the installed packages
    for module, dists in metadata.packages_distributions().items():
        for dist in dists:
            import_names.setdefault(normalise(dist), set()).add(module)
    unused = []
    for line in requires_dist(PROJECT):
        name = normalise(re.match(r"\s*([A-Za-z0-9._-]+)", line).group(1))
        if name == "tunelab" or name in NOT_IMPORTED:
            continue
        if not import_names.get(name, {name.replace("-", "_")}) & imported:
            unused.append(name)
    assert unused == [], f"declared but never imported: {unused}"


def test_message_prefers_the_commands_extra_then_the_smallest():
    extras = {"models": {"torch", "transformers"}, "cortex": {"torch", "scikit-image", "h5py"},
              "text2sql": {"sqlglot"}, "all": {"torch", "transformers", "scikit-image", "h5py", "sqlglot"}}
    assert extra_for("torch", "cortex", extras) == "cortex"
    assert extra_for("torch", "text2sql", extras) == "models"  # the smallest extra that has it
    assert extra_for("torch", "all", extras) == "all"
    assert extra_for("skimage.data", None, extras) == "cortex"  # import name -> scikit-image
    assert extra_for("numpy", None, extras) is None  # core, or not ours: not a missing extra
    err = ModuleNotFoundError("No module named 'sqlglot'", name="sqlglot")
    assert missing_message(err, "sql", extras) == (
        "`tunelab sql` needs sqlglot, which is not installed: pip install 'tunelab[text2sql]'")
    assert missing_message(ModuleNotFoundError("x", name="tunelab.nowhere"), "sql", extras) is None


def test_distribution_names():
    assert distribution("sklearn.cluster") == "scikit-learn"
    assert distribution("sentence_transformers") == "sentence-transformers"
    assert distribution("duckdb") == "duckdb"


def test_require_names_the_pip_command():
    assert require("json", "data").dumps([1]) == "[1]"
    with pytest.raises(UserError, match=r"^not-a-real-package-x is not installed: pip install 'tunelab\[data\]'$"):
        require("not_a_real_package_x", "data")


def _index_reachable(python: str) -> bool:
    """pip's configured indexes answer (whatever they are: the project never names one)."""
    try:
        result = subprocess.run([python, "-m", "pip", "index", "versions", "typer"], capture_output=True,
                                text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.mark.slow
def test_text2sql_extra_alone_in_a_fresh_venv(tmp_path):
    """CI-style: `.[text2sql]` into a new venv (no system site-packages), then `tunelab sql schema` on SQLite."""
    if not _index_reachable(sys.executable):
        pytest.skip("no package index reachable with this machine's pip configuration")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", f"{ROOT}[text2sql]"], capture_output=True,
                             text=True, timeout=3000)
    assert install.returncode == 0, install.stderr[-3000:]
    frozen = subprocess.run([python, "-m", "pip", "freeze"], capture_output=True, text=True, check=True).stdout
    installed = {normalise(line.split("==")[0]) for line in frozen.splitlines() if "==" in line}
    assert not {"torch", "transformers", "peft", "trl", "scikit-image", "scikit-learn"} & installed

    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customer(id))")
        conn.executemany("INSERT INTO customer(name) VALUES (?)", [("ada",), ("bob",)])
        conn.execute("INSERT INTO orders(customer_id) VALUES (1)")
    result = subprocess.run([str(venv / "bin" / "tunelab"), "sql", "schema", "--db", str(db)], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"\|\s*customer\s*\|\s*id\s*\|.*\|\s*2\s*\|", result.stdout), result.stdout
    assert "orders.customer_id -> customer.id" in result.stdout
    site = next((venv / "lib").glob("python*/site-packages"))
    print(f"\n.[text2sql] alone: {_folder_bytes(site) / 1e6:.0f} MB in site-packages, {len(installed)} distributions")
