"""Summaries of the enumerable study over data seeds (mean, sample sd, 95 % t interval) and its figure.

"std" here is tunelab.stats' sd, the sample standard deviation over data seeds (ddof = 1); the 95 % CI is
mean +/- t_{0.975, n-1} * sd / sqrt(n). Each seed contributes the mean over its initialisations (the spread is per seed).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

METRICS = ("slope", "pearson", "slope1_error", "spread", "kl", "J", "loss")


def mean_ci(values: Iterable[float]) -> dict:
    """{"mean", "std" (ddof 1), "ci95" (half-width; 0 for one value), "n"}: tunelab.stats' summary, keyed as the
    stored enumerable results are."""
    from tunelab.stats import summarise

    s = summarise(values)
    return {"mean": s["mean"], "std": s["sd"], "ci95": s["ci95"], "n": s["n"]}


def _size_summary(results: list[dict]) -> dict:
    out = {k: mean_ci(r[k] for r in results) for k in METRICS}
    optima = [r["table_optimum"] for r in results if "table_optimum" in r]
    if optima:
        out["table_optimum"] = {k: mean_ci(o[k] for o in optima) for k in optima[0]}
    return out


def summarize(cells: Iterable[dict]) -> dict:
    """{"methods": {label: {size: {metric: mean_ci}}}, "J_optimal": mean_ci, "J_reference": mean_ci}."""
    cells = list(cells)
    methods: dict[str, dict] = {}
    for label in dict.fromkeys(c["method"] for c in cells):
        mine = [c for c in cells if c["method"] == label]
        sizes = sorted({s for c in mine for s in c["sizes"]}, key=int)
        methods[label] = {s: _size_summary([c["sizes"][s] for c in mine if s in c["sizes"]]) for s in sizes}
    by_seed = {c["seed"]: c for c in cells}.values()  # task quantities are per seed, not per method
    return {"methods": methods, "seeds": sorted(c["seed"] for c in by_seed),
            "J_optimal": mean_ci(c["J_optimal"] for c in by_seed),
            "J_reference": mean_ci(c["J_reference"] for c in by_seed)}


def summary_rows(summary: dict, size: str) -> list[list[str]]:
    """Table rows (method, slope, r, slope-1 error, spread, KL, J) as 'mean +/- ci95' at one size."""
    rows = []
    for label, sizes in summary["methods"].items():
        if size in sizes:
            s = sizes[size]
            rows.append([label] + [f"{s[k]['mean']:.3g} +/- {s[k]['ci95']:.2g}"
                                   for k in ("slope", "pearson", "slope1_error", "spread", "kl", "J")])
    return rows


def enumerable_figure(summary: dict):
    """Slope, Pearson r and J against N (log axis) with 95 % CIs; the exact loss drawn at the right edge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    finite = sorted({int(s) for m in summary["methods"].values() for s in m if int(s) > 0})
    exact_x = (finite[-1] * 4) if finite else 1
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, title in zip(axes, ("slope", "pearson", "J"), ("slope (goal 1)", "Pearson r", "J = E[r*] - beta KL")):
        for label, sizes in summary["methods"].items():
            xs = [int(s) if int(s) > 0 else exact_x for s in sizes]
            order = np.argsort(xs)
            xs = np.asarray(xs)[order]
            vals = [sizes[s][key] for s in sizes]
            mean = np.asarray([v["mean"] for v in vals])[order]
            half = np.asarray([v["ci95"] for v in vals])[order]
            ax.errorbar(xs, mean, yerr=half, marker="o", ms=3, capsize=2, label=label)
        if key == "J":
            for name, style in (("J_optimal", "k--"), ("J_reference", "k:")):
                ax.axhline(summary[name]["mean"], ls=style[1:], color="k", lw=1,
                           label=f"J(pi*)" if name == "J_optimal" else "J(pi_ref)")
        if key == "slope":
            ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xticks(finite + [exact_x])
        ax.set_xticklabels([str(n) for n in finite] + ["exact"], fontsize=7)
        ax.set_xlabel("records per prompt N")
        ax.set_title(title, fontsize=9)
    axes[-1].legend(fontsize=7)
    fig.suptitle(f"enumerable task, {len(summary['seeds'])} data seeds, mean and 95 % CI", fontsize=9)
    fig.tight_layout()
    return fig
