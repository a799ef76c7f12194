"""The start-up benchmark: its summary arithmetic, and its README matching its committed JSON."""

import importlib.util
import json
import statistics
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "startup" / "bench_startup.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_startup", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_is_median_ratio_to_the_baseline(bench):
    samples = {bench.BASELINE: [0.10, 0.30, 0.20], bench.TYPER_APP: [0.3, 0.4, 0.35],
               "tunelab --help": [0.5, 0.3, 0.9, 0.4]}
    out = bench.summarise(samples)
    assert out[bench.BASELINE]["ratio_to_typer_rich"] == 1.0 and out[bench.TYPER_APP]["ratio_to_typer_app"] == 1.0
    assert out["tunelab --help"]["ratio_to_typer_rich"] == pytest.approx(0.45 / 0.2)  # medians: 0.45 and 0.2
    assert out["tunelab --help"]["ratio_to_typer_app"] == pytest.approx(0.45 / 0.35)
    assert out["tunelab --help"]["min_s"] == 0.3 and out["tunelab --help"]["max_s"] == 0.9


def test_commands_cover_every_subcommand(bench):
    cmds = bench.commands(["sql", "data"])
    assert list(cmds)[:3] == [bench.BASELINE, bench.TYPER_APP, "tunelab --help"]
    assert cmds["tunelab sql --help"][-2:] == ["sql", "--help"]


def test_readme_matches_json(bench):
    results_file = SCRIPT.parent / "results" / "startup.json"
    if not results_file.is_file():
        pytest.skip("no committed start-up results yet (run the benchmark)")
    results = json.loads(results_file.read_text())
    assert (SCRIPT.parent / "README.md").read_text() == bench.readme(results)
    assert (SCRIPT.parent / "results" / "startup.md").read_text() == bench.table(results).to_markdown() + "\n"
    for name, row in results["commands"].items():  # the stored ratios are the stored medians' ratios
        assert row["median_s"] == pytest.approx(statistics.median(row["samples_s"]))
        base = results["commands"][bench.BASELINE]["median_s"]
        floor = results["commands"][bench.TYPER_APP]["median_s"]
        assert row["ratio_to_typer_rich"] == pytest.approx(row["median_s"] / base)
        assert row["ratio_to_typer_app"] == pytest.approx(row["median_s"] / floor)
