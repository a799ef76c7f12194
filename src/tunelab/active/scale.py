"""Selection cost on a large pool: time and peak memory of VAPAL and BADGE.

Peak memory is the rise of the process's maximum resident set size during the query, so each
memory measurement runs in its own spawned process. Time ratios come from one more process in which
the strategies take turns round by round, so machine load hits them alike. The pool holds random pooled states and the head is
random: selection cost depends on shapes (n, d, C, query size), not on the values.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time

import numpy as np


def _setting(pool_size: int, dim: int, classes: int, seed: int):
    """A random pool of pooled states and a random head (selection cost depends on shapes only)."""
    import torch

    torch.set_num_threads(1)
    from tunelab.active.classifier import ActiveClassifier, ClassifierConfig
    from tunelab.active.features import FeaturePool

    rng = np.random.default_rng(seed)
    pool = FeaturePool(torch.tensor(rng.normal(size=(pool_size, 1, dim)), dtype=torch.float32),
                       torch.ones(pool_size, 1, dtype=torch.bool))
    model = ActiveClassifier(ClassifierConfig(), classes, dim)
    model.model = model.fresh_model(seed).eval()
    return pool, model


def _strategy(kind: str, classes: int):
    if kind.startswith("small-text:"):
        from tunelab.active.peers import SmallTextStrategy

        return SmallTextStrategy(kind.split(":", 1)[1], classes)
    from tunelab.active.strategies import make_strategy

    return make_strategy(kind)


def _timing_child(kinds: list[str], pool_size: int, dim: int, classes: int, n: int, seed: int, rounds: int,
                  queue) -> None:
    """Every kind's query in turn, `rounds` times (the first kind rotating), in one process: load hits all alike."""
    pool, model = _setting(pool_size, dim, classes, seed)
    strategies = {kind: _strategy(kind, classes) for kind in kinds}
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for r in range(rounds):
        for kind in kinds[r % len(kinds):] + kinds[:r % len(kinds)]:
            start = time.perf_counter()
            strategies[kind].query(model, pool, np.arange(n), n, np.random.default_rng(r))
            times[kind].append(time.perf_counter() - start)
    queue.put(times)


def round_ratios(times: dict[str, list[float]], reference: str) -> dict[str, dict]:
    """Per kind: the median and interquartile range over rounds of its time / the reference's time that round."""
    ref = np.asarray(times[reference])
    out = {}
    for kind, t in times.items():
        ratios = np.asarray(t) / ref
        out[kind] = {"median": float(np.median(ratios)),
                     "iqr": [float(np.percentile(ratios, 25)), float(np.percentile(ratios, 75))]}
    return out


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_kb() -> int:
    """Reset the peak resident set size to the current one (Linux: clear_refs 5) and return the baseline.

    Building the pool can peak higher than a query does; without the reset the query's rise reads as 0.
    Elsewhere the baseline is the maximum so far, which is all `getrusage` offers."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        current = _status_kb("VmRSS")
        if current is not None:
            return current
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_kb() -> int:
    return _status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _child(kind: str, pool_size: int, dim: int, classes: int, n: int, seed: int, repeats: int, queue) -> None:
    pool, model = _setting(pool_size, dim, classes, seed)
    labeled = np.arange(n)
    strategy = _strategy(kind, classes)
    import gc

    gc.collect()
    before = _reset_peak_kb()
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        picked = strategy.query(model, pool, labeled, n, np.random.default_rng(r))
        times.append(time.perf_counter() - start)
    peak_kb = _peak_kb() - before
    queue.put({"strategy": kind, "median_s": float(np.median(times)), "times_s": times,
               "peak_rss_rise_mb": peak_kb / 1024.0, "unique": int(len(set(picked.tolist())))})


def _run(ctx, target, args):
    """Run target(*args, queue) in a fresh process; its result, or None if it died."""
    import queue as queue_module

    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = None
    while result is None and (proc.is_alive() or not queue.empty()):
        try:  # read before join: a child blocks on exit until its queue is drained
            result = queue.get(timeout=1.0)
        except queue_module.Empty:
            pass
    proc.join()
    return result if proc.exitcode == 0 else None


def measure(kinds: list[str], pool_size: int = 20_000, dim: int = 384, classes: int = 16, n: int = 100,
            seed: int = 0, repeats: int = 1, timing_rounds: int = 0, reference: str = "badge") -> dict:
    """Peak memory (and time) of each kind in a fresh process; with `timing_rounds`, same-process time ratios."""
    ctx = mp.get_context("spawn")
    results = {}
    for kind in kinds:
        got = _run(ctx, _child, (kind, pool_size, dim, classes, n, seed, repeats))
        results[kind] = got or {"strategy": kind, "error": "the measuring process failed"}
    out = {"pool_size": pool_size, "dim": dim, "classes": classes, "query_size": n, "repeats": repeats,
           "dense_gradient_matrix_gb_float64": pool_size * classes * dim * 8 / 1e9, "results": results}
    if timing_rounds and reference in kinds:
        times = _run(ctx, _timing_child, (list(kinds), pool_size, dim, classes, n, seed, timing_rounds))
        if times:
            out["same_process"] = {"rounds": timing_rounds, "reference": reference, "times_s": times,
                                   "ratio": round_ratios(times, reference)}
    return out
