"""The active-learning benchmark: every strategy and small-text's peers, seeds x rounds, per corpus.

Runs are resumable (one state file per corpus / strategy / seed under `<out>/runs`), so an
interrupted benchmark continues where it stopped. Results: `results.json`, one learning-curve
PNG per corpus and a README table generated from the JSON.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from pathlib import Path

import numpy as np

from tunelab.active.classifier import ActiveClassifier, ClassifierConfig
from tunelab.active.corpus import load_task
from tunelab.active.loop import LoopConfig, run_loop
from tunelab.active.metrics import paired_difference, summarise
from tunelab.active.strategies import make_strategy
from tunelab.stats import sample_sd

OURS = ("random", "entropy", "least-confidence", "bert-km", "badge", "coreset", "vapal-alps", "vapal-badge")
PEERS = ("small-text:random", "small-text:entropy", "small-text:badge", "small-text:embedding-kmeans")


@dataclasses.dataclass
class CorpusSpec:
    source: str
    max_pool: int | None
    max_test: int | None
    initial_size: int
    query_size: int
    rounds: int = 10
    max_length: int = 128  # tokens kept per text when encoding
    resample_per_seed: bool = False  # draw the pool and test subsamples with each run's seed (data seeds)


def slug(source: str) -> str:
    """A file-name-safe name for a corpus (built-in name, file path or hub id)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(source).name if Path(source).suffix else source).strip("-")


def strategy_for(name: str, num_labels: int):
    if name.startswith("small-text:"):
        from tunelab.active.peers import SmallTextStrategy

        return SmallTextStrategy(name.split(":", 1)[1], num_labels)
    return make_strategy(name)


def state_path(out: Path, source: str, name: str, seed: int) -> Path:
    return out / "runs" / slug(source) / name.replace(":", "_") / f"seed{seed}.json"


def is_finished(path: Path, rounds: int) -> bool:
    import json

    return path.exists() and len(json.loads(path.read_text())["rounds"]) == rounds + 1


def run_corpus(spec: CorpusSpec, strategies: list[str], seeds: list[int], out: Path,
               classifier_config: ClassifierConfig, progress: bool = True, finished_only: bool = False) -> dict:
    """Run (or read back) every strategy x seed; `finished_only` reports the finished runs and runs nothing."""
    classifier_config = dataclasses.replace(classifier_config, max_length=spec.max_length)

    @functools.lru_cache(maxsize=1)  # jobs are ordered seed by seed: one task in memory at a time
    def task_for(seed: int):
        return load_task(spec.source, max_pool=spec.max_pool, max_test=spec.max_test,
                         encoder=classifier_config.encoder, trainable_layers=classifier_config.trainable_layers,
                         max_length=spec.max_length, seed=seed if spec.resample_per_seed else 0, progress=progress)

    runs: dict[str, list[dict]] = {}
    from tunelab.progress import track

    # seed-major order: a stopped benchmark has every strategy on its first seeds (paired comparisons)
    jobs = [(name, seed) for seed in seeds for name in strategies
            if not finished_only or is_finished(state_path(out, spec.source, name, seed), spec.rounds)]
    if not jobs:
        return None
    for name, seed in (track(jobs, f"{spec.source}: runs") if progress else jobs):
        task = task_for(seed)
        config = LoopConfig(strategy=name, rounds=spec.rounds, query_size=spec.query_size,
                            initial_size=spec.initial_size, seed=seed)
        state = state_path(out, spec.source, name, seed)
        model = ActiveClassifier.for_encoder(classifier_config, task.num_labels)
        run = run_loop(task, model, config, state_path=state, strategy=strategy_for(name, task.num_labels),
                       progress=False)
        runs.setdefault(name, []).append(run)
    summary = summarise(runs)
    for name, entry in summary.items():
        query_times = [r["query_s"] for run in runs[name] for r in run["rounds"][1:]]
        entry["median_query_s"] = float(np.median(query_times)) if query_times else float("nan")
        entry["compute_s"] = float(sum(r["query_s"] + r["train_s"] for run in runs[name] for r in run["rounds"]))
    if any(not k.startswith("vapal") for k in summary):
        base_name, base = best_baseline(summary)
        for name, entry in summary.items():
            if name.startswith("vapal"):
                entry["vs_best_baseline"] = {"baseline": base_name,
                                             **paired_difference(entry["aulc_by_seed"], base["aulc_by_seed"])}
    return {"source": spec.source, "pool": len(task.pool), "test": len(task.test), "labels": task.num_labels,
            "spec": dataclasses.asdict(spec), "summary": summary}


def plot_curves(corpus: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunelab.io import atomic_savefig

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for name, entry in corpus["summary"].items():
        curve = entry["curve"]
        x, m, s = (np.array(curve[k]) for k in ("labels", "mean", "std"))
        style = "--" if name.startswith("small-text") else "-"
        width = 2.4 if name.startswith("vapal") else 1.3
        (line,) = ax.plot(x, m, style, lw=width, label=name)
        ax.fill_between(x, m - s, m + s, color=line.get_color(), alpha=0.12)
    ax.set_xlabel("labelled examples")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{corpus['source']}: {corpus['pool']} pool, {corpus['test']} test, {corpus['labels']} labels "
                 f"(mean ± sd, {next(iter(corpus['summary'].values()))['seeds']} seeds)", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    atomic_savefig(fig, path)
    plt.close(fig)


def aulc_sd(entry: dict) -> float:
    """Sample sd (ddof 1) of a strategy's AULC over seeds, from its per-seed values. Results written before the
    toolkit settled on ddof 1 may hold only a ddof-0 "aulc_std": sd1 = sd0 * sqrt(n / (n - 1))."""
    if "aulc_by_seed" in entry:
        return sample_sd(entry["aulc_by_seed"].values())
    n = entry["seeds"]
    return entry["aulc_std"] * math.sqrt(n / (n - 1)) if n > 1 else 0.0


def vs_reference_sd(entry: dict, reference: dict | None) -> float:
    """Sample sd (ddof 1) of the per-seed AULC difference to the reference strategy."""
    if reference is None:
        return float("nan")
    shared = sorted(set(entry["aulc_by_seed"]) & set(reference["aulc_by_seed"]))
    return sample_sd(entry["aulc_by_seed"][k] - reference["aulc_by_seed"][k] for k in shared)


def aulc_table(corpora: list[dict]) -> tuple[list[str], list[list]]:
    # per-round query times are kept in results.json but not compared here: the runs of different
    # strategies ran at different times on a shared machine; the cost comparison is the scale study
    columns = ["corpus", "strategy", "seeds", "AULC (acc) mean ± sd", "AULC − random (paired) mean ± sd"]
    rows = []
    for corpus in corpora:
        random = corpus["summary"].get("random")
        for name, e in sorted(corpus["summary"].items(), key=lambda kv: -kv[1]["aulc_mean"]):
            rows.append([corpus["source"], name, e["seeds"], f"{e['aulc_mean']:.4f} ± {aulc_sd(e):.4f}",
                         f"{e.get('vs_random_mean', float('nan')):+.4f} ± {vs_reference_sd(e, random):.4f}"])
    return columns, rows


def best_baseline(summary: dict) -> tuple[str, dict]:
    baselines = {k: v for k, v in summary.items() if not k.startswith("vapal")}
    name = max(baselines, key=lambda k: baselines[k]["aulc_mean"])
    return name, baselines[name]


DEFAULT_CORPORA = (
    CorpusSpec("debian-sections", max_pool=2000, max_test=500, initial_size=50, query_size=50, max_length=64),
    CorpusSpec("stdlib-docs", max_pool=None, max_test=1000, initial_size=50, query_size=50, max_length=128),
)
SCALE_KINDS = ("vapal-badge", "vapal-alps", "badge", "small-text:badge")


def readme_text(results: dict) -> str:
    from tunelab.report import Table

    corpora = list(results["corpora"].values())
    columns, rows = aulc_table(corpora)
    script = results.get("script", "benchmarks/active/run_bench.py")
    lines = [f"# {results.get('title', 'Active learning benchmark (VAPAL and baselines)')}", "",
             f"Generated by `{script}` from `results/results.json`; do not edit by hand. "
             f"Command: `python {script}"
             + "".join(f" --leave-out {c} {n}" for c, names in results.get("leave_out", {}).items() for n in names)
             + "` (resumable: finished runs are read back from `results/runs/`).", "",
             f"Classifier: `{results['classifier']['encoder']}` encoder (max length per corpus below), "
             + (f"a linear head on cached mean-pooled states fitted by full-batch L-BFGS (at most "
                f"{results['classifier']['lbfgs_iterations']} iterations, L2 {results['classifier']['head_l2']})"
                if results['classifier']['trainable_layers'] == 0 else
                f"the last {results['classifier']['trainable_layers']} encoder layers and a linear head fine-tuned "
                f"every round ({results['classifier']['steps']} AdamW steps of batch "
                f"{results['classifier']['batch_size']}, lr {results['classifier']['layer_lr']:g} for the layers and "
                f"{results['classifier']['head_lr']:g} for the head); the encoder below them is frozen and its "
                "token states are cached, so VAP perturbs the token states entering the trained layers")
             + f", retrained from the same initialisation every round; seeds {results['seeds']}. "
             "small-text's strategies run on the same "
             "classifier, features, initial sets and seeds.", ""]
    for c in corpora:
        s = c["spec"]
        hours = sum(e.get("compute_s", 0.0) for e in c["summary"].values()) / 3600
        lines.append(f"- **{c['source']}**: pool {c['pool']}, test {c['test']}, {c['labels']} labels; "
                     f"{s['initial_size']} random initial labels, then {s['rounds']} rounds of {s['query_size']}; "
                     f"texts cut at {s['max_length']} tokens"
                     + ("; pool and test drawn anew for each seed (data seeds)" if s.get("resample_per_seed") else "")
                     + (f"; {hours:.2f} h of selection + training time over all runs" if hours else "") + ".")
    lines += ["", "## AULC (normalised area under the accuracy curve)", "",
              "± is the sample standard deviation over seeds (ddof 1), as are the paired intervals below.", "",
              Table(columns, rows).to_markdown(), ""]
    lines += ["## VAPAL against the best baseline", ""]
    for c in corpora:
        name, base = best_baseline(c["summary"])
        for v in ("vapal-alps", "vapal-badge"):
            if v in c["summary"]:
                e = c["summary"][v]
                paired = e.get("vs_best_baseline")
                lines.append(f"- {c['source']}: {v} {e['aulc_mean']:.4f} ± {aulc_sd(e):.4f} vs best baseline "
                             f"{name} {base['aulc_mean']:.4f} ± {aulc_sd(base):.4f} "
                             f"(difference {e['aulc_mean'] - base['aulc_mean']:+.4f}"
                             + (f"; paired over {paired['seeds']} seeds {paired['mean']:+.4f}, 95 % t-interval "
                                f"[{paired['ci'][0]:+.4f}, {paired['ci'][1]:+.4f}]"
                                if paired and paired["seeds"] >= 2 else "") + ")")
    for c in corpora:
        for name, u in c.get("unfinished", {}).items():
            dense_mb = c["pool"] * c["labels"] * results["hidden_size"] * 8 / 1e6
            lines.append(f"- {c['source']}: **{name} did not finish within the time budget** "
                         f"({u['finished_seeds']} of {len(results['seeds'])} seeds, {u['queries_done']} queries done; "
                         f"it builds the dense {c['pool']} x ({c['labels']} x {results['hidden_size']}) gradient "
                         f"matrix, {dense_mb:.0f} MB in float64, at every query); it is left out of the table and "
                         "the plot.")
    lines.append("")
    for c in corpora:
        lines.append(f"![{c['source']}](results/curves-{slug(c['source'])}.png)")
    scale = results.get("scale")
    if scale:
        res = scale["results"]
        ref = res.get("badge", {})
        same = scale.get("same_process")
        nd = scale["pool_size"] * scale["dim"]
        lines += ["", f"## Selection cost on a {scale['pool_size']}-example pool", "",
                  f"d = {scale['dim']}, C = {scale['classes']}, query size {scale['query_size']}, one torch and BLAS "
                  "thread. Memory: each strategy in a fresh process, peak = rise of the resident set's high-water mark "
                  "(reset after the pool is built) during "
                  f"{scale['repeats']} query(ies), also given in bytes per n·d (n pool size, d hidden size: the "
                  "constant of O(n d))."
                  + (f" Time: the strategies took turns for {same['rounds']} rounds in one process (the first one "
                     "rotating), so load hits each alike; the ratio to BADGE is taken per round, median "
                     "[interquartile range]." if same else
                     " Time: median of the memory processes' queries, which ran one after the other on a shared "
                     "machine, so the ratios are indicative.")
                  + f" A dense BADGE gradient matrix would hold {scale['dense_gradient_matrix_gb_float64']:.2f} GB "
                  "(float64).", "",
                  "| strategy | query time / BADGE (ours) | peak memory rise (MB) | bytes per n·d | "
                  "memory / BADGE (ours) |", "|---|---|---|---|---|"]
        for kind, r in res.items():
            if "error" in r:
                lines.append(f"| {kind} | {r['error']} | | | |")
                continue
            if same and kind in same["ratio"]:
                q = same["ratio"][kind]
                t_text = f"{q['median']:.2f} [{q['iqr'][0]:.2f}, {q['iqr'][1]:.2f}]"
            else:
                t_text = f"{r['median_s'] / ref['median_s']:.2f}" if ref.get("median_s") else "n/a"
            m_ratio = (r["peak_rss_rise_mb"] / ref["peak_rss_rise_mb"]
                       if ref.get("peak_rss_rise_mb") else float("nan"))
            lines.append(f"| {kind} | {t_text} | {r['peak_rss_rise_mb']:.1f} | "
                         f"{r['peak_rss_rise_mb'] * 2 ** 20 / nd:.1f} | {m_ratio:.2f} |")
    return "\n".join(lines) + "\n"


def scale_study(out: Path, **settings) -> dict:
    """The 20k-pool selection-cost study, kept in scale.json and reused while its settings are unchanged."""
    import json

    from tunelab.active.scale import measure
    from tunelab.io import atomic_write_json

    path = Path(out) / "scale.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("settings") == settings:
            return saved["scale"]
    result = measure(**settings)
    atomic_write_json(path, {"settings": settings, "scale": result})
    return result


def unfinished(out: Path, source: str, name: str, seeds, rounds: int) -> dict:
    """What the saved states of an unfinished strategy hold: finished seeds and query times so far."""
    import json

    states = [state_path(out, source, name, s) for s in seeds]
    records = [json.loads(p.read_text()) for p in states if p.exists()]
    times = [r["query_s"] for rec in records for r in rec["rounds"][1:]]
    return {"finished_seeds": sum(len(rec["rounds"]) == rounds + 1 for rec in records),
            "queries_done": len(times), "median_query_s": float(np.median(times)) if times else None}


def run_benchmark(out: Path, corpora=DEFAULT_CORPORA, strategies=OURS + PEERS, seeds=(0, 1, 2, 3, 4),
                  classifier_config: ClassifierConfig | None = None, scale: dict | None = None,
                  readme: Path | None = None, progress: bool = True,
                  leave_out: dict[str, list[str]] | None = None, script: str | None = None,
                  title: str | None = None, finished_only: bool = False) -> dict:
    """Run every corpus (resumable) and the scale study; write results.json, PNGs and the README table.

    `leave_out` maps a corpus to strategies reported as unfinished (from their saved states) instead of run.
    """
    from tunelab.io import atomic_write_json, atomic_write_text

    classifier_config = classifier_config or ClassifierConfig(max_length=128)
    out = Path(out)
    results = {"classifier": dataclasses.asdict(classifier_config), "seeds": list(seeds),
               "hidden_size": ActiveClassifier.for_encoder(classifier_config, 2).hidden_size,
               "strategies": list(strategies), "leave_out": dict(leave_out or {}), "corpora": {}}
    results.update({k: v for k, v in (("script", script), ("title", title)) if v})
    for spec in corpora:
        skipped = [n for n in (leave_out or {}).get(spec.source, []) if n in strategies]
        corpus = run_corpus(spec, [n for n in strategies if n not in skipped], list(seeds), out, classifier_config,
                            progress, finished_only)
        if corpus is None:  # finished_only, and nothing finished yet
            continue
        corpus["unfinished"] = {n: unfinished(out, spec.source, n, seeds, spec.rounds) for n in skipped}
        results["corpora"][spec.source] = corpus
        plot_curves(corpus, out / f"curves-{slug(spec.source)}.png")
    if scale is not None:
        results["scale"] = scale_study(out, **scale)
    atomic_write_json(out / "results.json", results)
    if readme:
        atomic_write_text(readme, readme_text(results))
    return results
