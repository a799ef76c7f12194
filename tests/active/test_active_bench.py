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


def test_paired_difference_matches_the_t_formula():
    from scipy import stats

    from tunelab.active.metrics import paired_difference

    a = {"0": 0.50, "1": 0.55, "2": 0.61, "9": 0.9}
    b = {"0": 0.48, "1": 0.50, "2": 0.60}
    d = [0.02, 0.05, 0.01]
    out = paired_difference(a, b)
    half = stats.t.ppf(0.975, 2) * stats.tstd(d) / 3 ** 0.5
    assert out["seeds"] == 3
    assert out["mean"] == pytest.approx(sum(d) / 3) and out["std"] == pytest.approx(stats.tstd(d))
    assert out["ci"] == pytest.approx([sum(d) / 3 - half, sum(d) / 3 + half])


@pytest.mark.slow
def test_finetuned_regime_resamples_pools_and_reports_finished_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    words = {"a": "ball goal team", "b": "python bug compile", "c": "bread soup salt"}
    rows = [{"text": f"{w} number {i}", "label": k} for i in range(40) for k, w in words.items()]
    data = tmp_path / "tiny.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    spec = CorpusSpec(str(data), max_pool=60, max_test=30, initial_size=9, query_size=6, rounds=2, max_length=16,
                      resample_per_seed=True)
    config = ClassifierConfig(encoder="tiny-bert", trainable_layers=1, steps=3, batch_size=8, max_length=16)
    out = tmp_path / "bench"
    kwargs = dict(corpora=[spec], strategies=("random", "vapal-badge"), classifier_config=config, progress=False)
    assert run_benchmark(out, seeds=(0, 1), finished_only=True, **kwargs)["corpora"] == {}  # nothing ran yet
    import tunelab.active.bench as bench

    drawn = []
    real_load = bench.load_task
    monkeypatch.setattr(bench, "load_task", lambda *a, **kw: drawn.append(kw["seed"]) or real_load(*a, **kw))
    results = run_benchmark(out, seeds=(0, 1), **kwargs)
    assert drawn == [0, 1]  # one pool per data seed, each loaded once (jobs run seed by seed)
    summary = results["corpora"][str(data)]["summary"]
    paired = summary["vapal-badge"]["vs_best_baseline"]
    assert paired["baseline"] == "random" and paired["seeds"] == 2
    by_seed = summary["vapal-badge"]["aulc_by_seed"], summary["random"]["aulc_by_seed"]
    assert paired["mean"] == pytest.approx(sum(by_seed[0][s] - by_seed[1][s] for s in ("0", "1")) / 2)
    # a third seed not yet run: the finished-only report keeps the two finished seeds and runs nothing
    reported = run_benchmark(out, seeds=(0, 1, 2), finished_only=True, **kwargs)
    assert reported["corpora"][str(data)]["summary"]["random"]["seeds"] == 2
    assert not (out / "runs" / "tiny.jsonl" / "random" / "seed2.json").exists()


@pytest.mark.parametrize("folder", ["benchmarks/active", "benchmarks/active/finetuned"])
def test_committed_readme_is_generated_from_its_json(folder):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / folder
    results = json.loads((root / "results" / "results.json").read_text())
    assert (root / "README.md").read_text() == readme_text(results)


def test_summary_spreads_are_sample_sd_and_old_results_convert():
    """One definition of sd in the toolkit (ddof 1): AULC, paired-with-random and curve spreads; the README reads
    stored ddof-0 spreads of older results as sd1 = sd0 * sqrt(n / (n - 1))."""
    import numpy as np

    from tunelab.active.bench import aulc_sd
    from tunelab.active.metrics import summarise

    def run(seed, accs):
        return {"config": {"seed": seed}, "rounds": [{"n_labeled": n, "accuracy": a} for n, a in zip((10, 20, 30), accs)]}

    runs = {"random": [run(0, (0.2, 0.3, 0.4)), run(1, (0.3, 0.3, 0.5)), run(2, (0.1, 0.4, 0.4))],
            "x": [run(0, (0.3, 0.5, 0.6)), run(1, (0.2, 0.4, 0.4)), run(2, (0.2, 0.3, 0.6))]}
    out = summarise(runs)
    aulcs = list(out["x"]["aulc_by_seed"].values())
    assert out["x"]["aulc_std"] == pytest.approx(np.std(aulcs, ddof=1))
    diffs = [out["x"]["aulc_by_seed"][s] - out["random"]["aulc_by_seed"][s] for s in out["x"]["aulc_by_seed"]]
    assert out["x"]["vs_random_std"] == pytest.approx(np.std(diffs, ddof=1))
    assert out["x"]["curve"]["std"][0] == pytest.approx(np.std([0.3, 0.2, 0.2], ddof=1))
    old = {"seeds": 3, "aulc_std": float(np.std(aulcs))}
    assert aulc_sd(old) == pytest.approx(np.std(aulcs, ddof=1))
    assert aulc_sd(out["x"]) == pytest.approx(np.std(aulcs, ddof=1))
