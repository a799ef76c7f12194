"""The toolkit's one definition of a spread over seeds, used by every study table.

"sd" is the sample standard deviation over seeds (ddof = 1, 0 for a single value); a 95 % interval is
mean +/- t_{0.975, n-1} * sd / sqrt(n). A paired comparison applies the same to the per-seed differences.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

SD_NOTE = "sd = sample standard deviation over seeds (ddof 1)"


def sample_sd(values: Iterable[float]) -> float:
    """Sample standard deviation (ddof 1); 0.0 for fewer than two values."""
    v = [float(x) for x in values]
    if len(v) < 2:
        return 0.0
    mean = math.fsum(v) / len(v)
    return math.sqrt(math.fsum((x - mean) ** 2 for x in v) / (len(v) - 1))


def t_half_width(sd: float, n: int, level: float = 0.95) -> float:
    """Half-width of the two-sided t interval of a mean of n values; 0.0 for n < 2."""
    if n < 2:
        return 0.0
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)


def summarise(values: Iterable[float], level: float = 0.95) -> dict:
    """{"mean", "sd", "ci95" (half-width), "n", "values"} of values over seeds."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("summarise needs at least one value")
    sd = sample_sd(v)
    return {"mean": math.fsum(v) / len(v), "sd": sd, "ci95": t_half_width(sd, len(v), level), "n": len(v),
            "values": v}


def paired_difference(a: Mapping, b: Mapping, level: float = 0.95) -> dict | None:
    """a - b over the seeds both have: {"n", "mean", "sd", "ci" [low, high], "p" (paired t-test)}; None below 2."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    diffs = [float(a[k]) - float(b[k]) for k in seeds]
    s = summarise(diffs, level)
    if s["sd"] > 0:
        from scipy.stats import t

        p = float(2 * t.sf(abs(s["mean"]) / (s["sd"] / math.sqrt(s["n"])), s["n"] - 1))
    else:
        p = float("nan")
    return {"n": s["n"], "mean": s["mean"], "sd": s["sd"], "ci": [s["mean"] - s["ci95"], s["mean"] + s["ci95"]],
            "p": p}
