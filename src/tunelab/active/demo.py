"""The active-learning section of `tunelab demo`: a small VAPAL vs baselines study on stdlib-docs."""

from __future__ import annotations

from pathlib import Path

from tunelab.active.bench import CorpusSpec, aulc_table, best_baseline, plot_curves, run_corpus
from tunelab.active.classifier import ClassifierConfig
from tunelab.report import Figure, Section, Table

STRATEGIES = ("random", "entropy", "bert-km", "badge", "coreset", "vapal-alps", "vapal-badge")


def run(out_dir: Path, full: bool = False) -> list[Section]:
    """Demo scale: pool 600, 5 rounds, 2 seeds; `full`: pool 1000, 10 rounds, 5 seeds (benchmarks/active: more)."""
    import torch

    torch.set_num_threads(min(torch.get_num_threads(), 2))
    pool, rounds, seeds = (1000, 10, [0, 1, 2, 3, 4]) if full else (600, 5, [0, 1])
    spec = CorpusSpec("stdlib-docs", max_pool=pool, max_test=300, initial_size=30, query_size=30, rounds=rounds,
                      max_length=64)
    corpus = run_corpus(spec, list(STRATEGIES), seeds, out_dir, ClassifierConfig(max_length=64), progress=True)
    section = Section(
        title="Active learning: VAPAL and baselines",
        prose=(
            "Pool-based active learning on Python standard-library docstrings (label: the stdlib area). "
            "The classifier is a linear head on cached mean-pooled MiniLM states, retrained each round; VAPAL "
            "perturbs those states adversarially (one power iteration) and clusters the perturbations: "
            "k-means + nearest point (ALPS style) or k-means++ on magnitude-scaled directions (BADGE style). "
            f"{corpus['pool']} pool texts, {corpus['test']} test texts, {spec.initial_size} random initial labels "
            f"then {spec.rounds} rounds of {spec.query_size}, {len(seeds)} seeds: a small study; the benchmark in "
            "benchmarks/active runs 5 seeds, 10 rounds, two corpora and small-text's strategies."
        ),
    )
    plot_curves(corpus, out_dir / "active-curves.png")
    section.figures.append(Figure(path=out_dir / "active-curves.png",
                                  caption="Test accuracy vs labels (mean ± sd over seeds, ddof 1)"))
    columns, rows = aulc_table([corpus])
    section.add_table(Table(columns, rows, caption="AULC of the accuracy curve; difference to random paired by seed"))
    name, base = best_baseline(corpus["summary"])
    for key in ("vapal-alps", "vapal-badge"):
        section.key_numbers[f"AULC {key}"] = round(corpus["summary"][key]["aulc_mean"], 4)
    section.key_numbers[f"AULC best baseline ({name})"] = round(base["aulc_mean"], 4)
    section.results = {"corpus": corpus}
    return [section]
