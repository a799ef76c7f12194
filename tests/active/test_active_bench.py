"""The benchmark pipeline end to end on a tiny corpus: runs, summary, plot and the generated README."""

from __future__ import annotations

import json

import pytest

from tunelab.active.bench import CorpusSpec, readme_text, run_benchmark
from tunelab.active.classifier import ClassifierConfig


@pytest.mark.slow
def test_benchmark_writes_results_plot_and_table(tmp_path, monkeypatch):
    pytest.importorskip("small_text")
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    words = {"a": "ball goal team", "b": "python bug compile", "c": "bread soup salt"}
    rows = [{"text": f"{w} number {i}", "label": k} for i in range(40) for k, w in words.items()]
    data = tmp_path / "tiny.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    spec = CorpusSpec(str(data), max_pool=None, max_test=None, initial_size=9, query_size=6, rounds=2, max_length=16)
    out = tmp_path / "bench"
    results = run_benchmark(out, corpora=[spec], strategies=("random", "vapal-badge", "small-text:badge"),
                            seeds=(0, 1), classifier_config=ClassifierConfig(encoder="tiny-bert", max_length=16),
                            readme=tmp_path / "README.md", progress=False)
    summary = results["corpora"][str(data)]["summary"]
    assert set(summary) == {"random", "vapal-badge", "small-text:badge"}
    assert summary["random"]["vs_random_mean"] == 0 and summary["vapal-badge"]["seeds"] == 2
    assert (out / "curves-tiny.jsonl.png").exists()
    on_disk = json.loads((out / "results.json").read_text())
    assert readme_text(on_disk) == (tmp_path / "README.md").read_text()
    assert f"{summary['vapal-badge']['aulc_mean']:.4f}" in readme_text(on_disk)
