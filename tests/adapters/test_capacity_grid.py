"""The capacity benchmark's learning-rate grid: extended beyond an edge its best lr sits on, until the best lies
inside or the extensions run out; evaluation runs count only at the lr finally chosen."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def capacity():
    sys.path.insert(0, str(ROOT))
    try:
        yield importlib.import_module("benchmarks.adapters.bench_capacity")
    finally:
        sys.path.remove(str(ROOT))


GRID = [1e-3, 2e-3, 4e-3]


def test_grid_unchanged_until_every_lr_is_tried(capacity):
    assert capacity.extended_grid(GRID, {1e-3: 0.9}, 2) == GRID


def test_grid_unchanged_when_the_best_is_inside(capacity):
    assert capacity.extended_grid(GRID, {1e-3: 0.8, 2e-3: 0.9, 4e-3: 0.1}, 2) == GRID


def test_best_at_the_smallest_adds_a_halving_then_stops_inside(capacity):
    scores = {1e-3: 0.8, 2e-3: 0.7, 4e-3: 0.1}
    assert capacity.extended_grid(GRID, scores, 2) == [5e-4, *GRID]
    scores[5e-4] = 0.7  # the old edge is now inside and best
    assert capacity.extended_grid(GRID, scores, 2) == [5e-4, *GRID]


def test_extensions_are_bounded(capacity):
    scores = {2.5e-4: 0.95, 5e-4: 0.9, 1e-3: 0.8, 2e-3: 0.7, 4e-3: 0.1, 1.25e-4: 0.99}
    assert capacity.extended_grid(GRID, scores, 2) == [2.5e-4, 5e-4, *GRID]
    assert capacity.extended_grid(GRID, scores, 0) == GRID


def test_best_at_the_largest_adds_a_doubling(capacity):
    assert capacity.extended_grid(GRID, {1e-3: 0.1, 2e-3: 0.2, 4e-3: 0.3}, 1) == [*GRID, 8e-3]


def _run(stage, method, lr, accuracy, seed=100, r=8):
    return {"stage": stage, "method": method, "r": 0 if method == "full" else r, "lr": lr, "seed": seed,
            "accuracy": accuracy, "trainable_parameters": 1}


def test_choice_waits_for_the_extension_and_evaluation_counts_only_the_chosen_lr(capacity):
    s = {"full_lrs": GRID, "adapter_lrs": GRID, "edge_extensions": 2, "ranks": [4], "seeds": [0, 1],
         "tuning_seed": 100, "tuning_rank": 8}
    runs = {}
    for method in ("full", "lora", "dora", "bora"):
        for lr, acc in zip(GRID, (0.5, 0.9, 0.1) if method != "lora" else (0.9, 0.5, 0.1)):
            runs[capacity.run_key("tune", method, 8, lr, 100)] = _run("tune", method, lr, acc)
    assert capacity.choose_lr(runs, s) is None  # lora's best is its grid's smallest: 5e-4 must be tried first
    pending = [r for r in capacity.tuning_plan(s, runs) if capacity.run_key(**r) not in runs]
    assert [(r["method"], r["lr"]) for r in pending] == [("lora", 5e-4)]
    runs["tune-lora-5e-4"] = _run("tune", "lora", 5e-4, 0.95)
    assert capacity.choose_lr(runs, s) is None  # still on the edge: one more halving
    runs["tune-lora-2.5e-4"] = _run("tune", "lora", 2.5e-4, 0.6)
    assert capacity.choose_lr(runs, s) == {"full": 2e-3, "lora": 5e-4, "dora": 2e-3, "bora": 2e-3}
    for seed in (0, 1):
        runs[f"old-{seed}"] = _run("eval", "lora", 1e-3, 0.1, seed=seed, r=4)
        runs[f"new-{seed}"] = _run("eval", "lora", 5e-4, 0.7 + seed / 10, seed=seed, r=4)
    summary = capacity.summarise(runs, s)
    lora = next(x for x in summary["rows"] if x["method"] == "lora")
    assert lora["seeds"] == 2 and lora["accuracy_mean"] == pytest.approx(0.75)
    assert summary["superseded_eval_runs"] == 2
