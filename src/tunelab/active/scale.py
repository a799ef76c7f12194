"""Selection cost on a large pool: time and peak memory of VAPAL and BADGE, each in a fresh process.

Peak memory is the rise of the process's maximum resident set size during the query, so each
measurement runs in its own spawned process. The pool holds random pooled states and the head is
random: selection cost depends on shapes (n, d, C, query size), not on the values.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time

import numpy as np


def _child(kind: str, pool_size: int, dim: int, classes: int, n: int, seed: int, repeats: int, queue) -> None:
    import torch

    torch.set_num_threads(1)
    from tunelab.active.classifier import ActiveClassifier, ClassifierConfig
    from tunelab.active.features import FeaturePool

    rng = np.random.default_rng(seed)
    pool = FeaturePool(torch.tensor(rng.normal(size=(pool_size, 1, dim)), dtype=torch.float32),
                       torch.ones(pool_size, 1, dtype=torch.bool))
    model = ActiveClassifier(ClassifierConfig(), classes, dim)
    model.model = model.fresh_model(seed).eval()
    labeled = np.arange(n)
    if kind.startswith("small-text:"):
        from tunelab.active.peers import SmallTextStrategy

        strategy = SmallTextStrategy(kind.split(":", 1)[1], classes)
    else:
        from tunelab.active.strategies import make_strategy

        strategy = make_strategy(kind)
    import gc

    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        picked = strategy.query(model, pool, labeled, n, np.random.default_rng(r))
        times.append(time.perf_counter() - start)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    queue.put({"strategy": kind, "median_s": float(np.median(times)), "times_s": times,
               "peak_rss_rise_mb": peak_kb / 1024.0, "unique": int(len(set(picked.tolist())))})


def measure(kinds: list[str], pool_size: int = 20_000, dim: int = 384, classes: int = 16, n: int = 100,
            seed: int = 0, repeats: int = 1) -> dict:
    ctx = mp.get_context("spawn")
    results = {}
    for kind in kinds:
        queue = ctx.Queue()
        proc = ctx.Process(target=_child, args=(kind, pool_size, dim, classes, n, seed, repeats, queue))
        proc.start()
        proc.join()
        results[kind] = queue.get() if proc.exitcode == 0 else {"strategy": kind, "error": f"exit {proc.exitcode}"}
    dense_gb = pool_size * classes * dim * 8 / 1e9
    return {"pool_size": pool_size, "dim": dim, "classes": classes, "query_size": n, "repeats": repeats,
            "dense_gradient_matrix_gb_float64": dense_gb, "results": results}
