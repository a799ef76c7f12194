"""Learning curves and the normalised area under them (AULC), alone and relative to random.

Spreads over seeds are tunelab.stats' sample sd (ddof 1).
"""

from __future__ import annotations

import numpy as np

from tunelab import stats
from tunelab.errors import UserError
from tunelab.stats import sample_sd


def learning_curve(run: dict, metric: str = "accuracy") -> tuple[np.ndarray, np.ndarray]:
    """(labels used, metric) for each round of one run record."""
    rounds = run["rounds"]
    if not rounds:
        raise UserError("the run has no rounds yet")
    if metric not in rounds[0]:
        raise UserError(f"unknown metric '{metric}': choose one of accuracy, macro_f1")
    return (np.array([r["n_labeled"] for r in rounds], dtype=float),
            np.array([r[metric] for r in rounds], dtype=float))


def aulc(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoid area under y(x) divided by the label range: a mean score in y's units."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("a learning curve needs at least two points")
    if np.any(np.diff(x) <= 0):
        raise ValueError("label counts must increase")
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0 / (x[-1] - x[0]))


def mean_std_curve(runs: list[dict], metric: str = "accuracy") -> dict[str, list[float]]:
    curves = [learning_curve(r, metric) for r in runs]
    x = curves[0][0]
    if any(len(c[0]) != len(x) or np.any(c[0] != x) for c in curves):
        raise ValueError("runs to average must share their label counts")
    ys = np.stack([c[1] for c in curves])
    return {"labels": x.tolist(), "mean": ys.mean(0).tolist(), "std": [sample_sd(col) for col in ys.T]}


def summarise(runs_by_strategy: dict[str, list[dict]], metric: str = "accuracy",
              reference: str = "random") -> dict[str, dict]:
    """AULC mean/std per strategy and, paired by seed, its difference to the reference strategy."""
    per_seed = {name: {r["config"]["seed"]: aulc(*learning_curve(r, metric)) for r in runs}
                for name, runs in runs_by_strategy.items()}
    out = {}
    for name, by_seed in per_seed.items():
        values = np.array(list(by_seed.values()))
        entry = {"aulc_mean": float(values.mean()), "aulc_std": sample_sd(values), "seeds": len(values),
                 "aulc_by_seed": {str(s): float(v) for s, v in by_seed.items()},
                 "curve": mean_std_curve(runs_by_strategy[name], metric)}
        if reference in per_seed:
            shared = sorted(set(by_seed) & set(per_seed[reference]))
            diffs = np.array([by_seed[s] - per_seed[reference][s] for s in shared])
            entry["vs_random_mean"] = float(diffs.mean()) if len(diffs) else float("nan")
            entry["vs_random_std"] = sample_sd(diffs) if len(diffs) else float("nan")
        out[name] = entry
    return out


def paired_difference(a_by_seed: dict[str, float], b_by_seed: dict[str, float], level: float = 0.95) -> dict:
    """Mean of a - b over the seeds both have, its sd and t interval (tunelab.stats), under this module's keys."""
    shared = sorted(set(a_by_seed) & set(b_by_seed))
    paired = stats.paired_difference(a_by_seed, b_by_seed, level)
    if paired is None:
        diffs = [a_by_seed[s] - b_by_seed[s] for s in shared]
        return {"seeds": len(diffs), "mean": float(np.mean(diffs)) if diffs else float("nan"),
                "std": float("nan"), "ci": [float("nan"), float("nan")]}
    return {"seeds": paired["n"], "mean": paired["mean"], "std": paired["sd"], "ci": paired["ci"]}
