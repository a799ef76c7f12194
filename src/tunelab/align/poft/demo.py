"""`tunelab demo` section for PoFT: how aligned models score clean vs corrupted SFT responses, and a small
SFT-vs-PoFT run on 40 %-corrupted data (one seed, two with `--full`; the three-seed study is benchmarks/align/poft)."""

from __future__ import annotations

from pathlib import Path

from tunelab.report import Section, Table

# Small enough for `tunelab demo` on two CPU cores; the three-seed study is benchmarks/align/poft.
DEMO_SETTINGS = {"n_train": 16, "n_test": 16, "noise": (0.4,), "seeds": (0,), "epochs": 2, "cost_steps": 2}
FULL_SETTINGS = {"n_train": 48, "n_test": 40, "noise": (0.4,), "seeds": (0, 1), "epochs": 2, "cost_steps": 6}


def _score_figure(clean: dict[str, list[float]], corrupted: dict[str, list[float]]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(clean), figsize=(4.2 * len(clean), 3.2), squeeze=False)
    for ax, name in zip(axes[0], clean):
        bins = 15
        ax.hist(clean[name], bins=bins, alpha=0.6, label="clean response")
        ax.hist(corrupted[name], bins=bins, alpha=0.6, label="corrupted response")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("mean log-prob per response token")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def run(out_dir: Path, full: bool = False) -> list[Section]:
    from tunelab.align.poft.scoring import score_dataset
    from tunelab.align.poft.study import StudySettings, auc, plot, run_study, table_rows
    from tunelab.align.poft.tasks import corrupt, make_problems

    out_dir = Path(out_dir)
    cache = out_dir / "score-cache"
    settings = StudySettings(**(FULL_SETTINGS if full else DEMO_SETTINGS))

    problems = make_problems(settings.n_train + settings.n_test, settings.data_seed,
                             task=settings.task)[:settings.n_train]  # the problems the study below trains on
    wrong = corrupt(problems, 1.0, 0)
    pairs = [(p["prompt"], p["response"]) for p in problems] + [(w["prompt"], w["response"]) for w in wrong]
    scores = score_dataset(pairs, settings.aligned, cache, settings.score_batch_size, settings.max_length)
    n = len(problems)
    clean = {m: s[:n] for m, s in scores.per_model.items()}
    bad = {m: s[n:] for m, s in scores.per_model.items()}

    results = run_study(settings, cache, log=lambda message: None)
    section = Section(
        title="PoFT: preference-oriented SFT on noisy data",
        prose=(
            "PoFT (arXiv 2412.12865) trains on SFT data with the loss -log sigmoid(beta (s_theta - s_ref) + gamma), "
            "where s_theta is the target's mean log-probability per response token and s_ref the mean of the same "
            "score under aligned models (each with its own chat template, response tokens on both sides). Its "
            "gradient is the SFT gradient weighted by sigmoid(beta (s_ref - s_theta) - gamma), so responses that the "
            "aligned models find unlikely count less. The data are generated additions answered with their working "
            "(\"34 + 7 = 41\"), exactly checkable; corrupted responses carry a plausible wrong result. The histograms show "
            "how each aligned model scores clean against corrupted responses; the table is a one-seed run of SFT and "
            f"PoFT on {settings.n_train} examples with {settings.noise[-1]:.0%} corrupted (target {settings.target} + LoRA), evaluated "
            f"on {settings.n_test} held-out problems. One seed at this size says little about the difference; the "
            "three-seed study at 0/20/40 % noise is in benchmarks/align/poft."),
        results={"scoring": scores.examples_per_second, **results},
    )
    section.add_figure(_score_figure(clean, bad), "poft_scores.png", out_dir,
                       caption="Aligned models' mean-token log-probability of clean vs corrupted responses.")
    section.add_figure(plot(results), "poft_accuracy.png", out_dir, caption="Held-out accuracy, SFT vs PoFT.")
    section.add_table(Table(["aligned model", "AUC clean > corrupted", "examples/s"],
                            [[m, auc(clean[m], bad[m]), scores.examples_per_second[m]] for m in settings.aligned],
                            caption="How well each aligned model's score separates clean from corrupted responses."))
    section.add_table(Table(["corrupted", *[m.upper() for m in settings.methods]], table_rows(results),
                            caption=f"Held-out accuracy (mean over seed(s) {', '.join(map(str, settings.seeds))})."))
    key = {f"AUC {m}": auc(clean[m], bad[m]) for m in settings.aligned}
    key["untrained accuracy"] = results["untrained_accuracy"]
    for method in settings.methods:
        key[f"{method.upper()} accuracy at {settings.noise[-1]:.0%} noise"] = results["accuracy"][method][str(settings.noise[-1])]["mean"]
    if results["cost"]:
        key["PoFT / SFT step time"] = results["cost"]["poft_over_sft"]
    section.key_numbers = key
    return [section]
