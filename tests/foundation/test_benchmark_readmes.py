"""Every benchmark README is the text its generator makes from the committed JSON (regenerated in memory here;
no benchmark is rerun). A README edited by hand, or JSON committed without regenerating the README, fails."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


@pytest.fixture(scope="module", autouse=True)
def _benchmarks_importable():
    """The scripts import each other as `benchmarks.<capability>.<script>` (they run as modules from the root)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT))
        yield


def bench(name: str):
    return importlib.import_module(f"benchmarks.{name}")


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def assert_same(committed: Path, generated: str) -> None:
    assert committed.read_text() == generated, f"{committed.relative_to(ROOT)} differs from its JSON: regenerate it"


@pytest.mark.parametrize("folder", ["active", "active/finetuned"])
def test_active(folder):
    from tunelab.active.bench import readme_text

    assert_same(BENCH / folder / "README.md", readme_text(load(BENCH / folder / "results" / "results.json")))


def test_active_tuning():
    tune = bench("active.tune_vapal")
    assert_same(BENCH / "active" / "TUNING.md", tune.tuning_text(load(BENCH / "active" / "results" / "tuning.json")))


def test_adapters():
    accuracy, speed, generative = (bench(f"adapters.bench_{n}") for n in ("accuracy", "speed", "generative"))
    results = BENCH / "adapters" / "results"
    for name, make in (("accuracy", accuracy.accuracy_table), ("speed", speed.speed_table),
                       ("generative", generative.generative_table)):
        assert_same(results / f"{name}_table.md", make(load(results / f"{name}.json")))
    assert_same(BENCH / "adapters" / "README.md", accuracy.readme_text(results))


def test_align():
    readme = bench("align.readme")
    assert_same(BENCH / "align" / "README.md", readme.readme_text(BENCH / "align" / "results"))


def test_align_poft():
    poft = bench("align.poft.run_poft_study")
    assert_same(BENCH / "align" / "poft" / "README.md", poft.readme_text(BENCH / "align" / "poft" / "results"))


def test_cortex(tmp_path, monkeypatch):
    # the cortex scripts import their README writer as a top-level `readme` module
    monkeypatch.syspath_prepend(str(BENCH / "cortex"))
    sys.modules.pop("readme", None)
    readme = importlib.import_module("readme")
    (tmp_path / "results").mkdir()
    for path in (BENCH / "cortex" / "results").glob("*.json"):
        shutil.copyfile(path, tmp_path / "results" / path.name)
    readme.write_readme(tmp_path)
    sys.modules.pop("readme", None)
    assert_same(BENCH / "cortex" / "README.md", (tmp_path / "README.md").read_text())


def test_startup():
    startup = bench("startup.bench_startup")
    results = load(BENCH / "startup" / "results" / "startup.json")
    assert_same(BENCH / "startup" / "README.md", startup.readme(results))
    assert_same(BENCH / "startup" / "results" / "startup.md", startup.table(results).to_markdown() + "\n")


def test_text2sql():
    results = BENCH / "text2sql" / "results"
    ex, endpoint = bench("text2sql.bench_ex"), bench("text2sql.bench_endpoint")
    sections = {"ex": lambda d: ex.ex_markdown(d, "ex"), "dev": lambda d: ex.ex_markdown(d, "dev"),
                "endpoint": endpoint.endpoint_markdown, "scaling": bench("text2sql.bench_scaling").scaling_markdown,
                "tools": bench("text2sql.bench_tools").tools_markdown,
                "budgets": bench("text2sql.bench_budgets").budgets_markdown}
    for name, make in sections.items():
        assert_same(results / f"{name}.md", make(load(results / f"{name}.json")))
    assert_same(BENCH / "text2sql" / "README.md", bench("text2sql.common").readme_text(results))


def test_every_readme_has_a_test():
    """A new benchmark README needs its test here."""
    covered = {"active", "active/finetuned", "adapters", "adapters/capacity", "adapters/capacity-lexicon", "align", "align/poft", "cortex",
               "startup", "text2sql"}
    found = {str(p.parent.relative_to(BENCH)) for p in BENCH.rglob("README.md") if "results" not in p.parts}
    assert found - covered == set(), f"benchmark READMEs without a test: {sorted(found - covered)}"


def test_adapters_capacity():
    capacity = bench("adapters.bench_capacity")
    assert_same(BENCH / "adapters" / "capacity" / "README.md", capacity.readme_text(BENCH / "adapters" / "capacity"))


def test_adapters_capacity_lexicon():
    capacity = bench("adapters.bench_capacity")
    folder = BENCH / "adapters" / "capacity-lexicon"
    assert_same(folder / "README.md", capacity.readme_text(folder))
