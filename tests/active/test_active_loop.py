"""The loop records every round, resumes to identical numbers, and the metrics follow their formulas."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tunelab.active.classifier import ActiveClassifier, ClassifierConfig
from tunelab.active.corpus import Task
from tunelab.active.loop import LoopConfig, initial_indices, run_loop
from tunelab.active.metrics import aulc, learning_curve, summarise
from tunelab.errors import UserError


@pytest.fixture
def task(make_blob_pool):
    pool, labels = make_blob_pool(n=120, seed=1)
    test, test_labels = make_blob_pool(n=60, seed=1)
    return Task("blobs", ["a", "b", "c"], pool, labels, test, test_labels, [f"t{i}" for i in range(120)])


def classifier():
    return ActiveClassifier(ClassifierConfig(steps=40), num_labels=3, hidden_size=8)


def test_loop_records_every_round(task):
    config = LoopConfig(strategy="vapal", rounds=3, query_size=10, initial_size=9, seed=2)
    run = run_loop(task, classifier(), config, progress=False)
    assert [r["round"] for r in run["rounds"]] == [0, 1, 2, 3]
    assert [r["n_labeled"] for r in run["rounds"]] == [9, 19, 29, 39]
    chosen = sum((r["selected"] for r in run["rounds"]), [])
    assert len(set(chosen)) == 39
    assert run["rounds"][0]["selected"] == initial_indices(120, 9, 2).tolist()
    assert all(0 <= r["accuracy"] <= 1 for r in run["rounds"])


def test_resume_gives_the_same_record(task, tmp_path):
    config = LoopConfig(strategy="badge", rounds=3, query_size=8, initial_size=9, seed=0)
    full = run_loop(task, classifier(), config, progress=False)
    state = tmp_path / "run.json"
    short = LoopConfig(**{**config.__dict__})
    run_loop(task, classifier(), short, state_path=state, progress=False)  # writes all rounds
    partial = json.loads(state.read_text())
    partial["rounds"] = partial["rounds"][:2]  # as if stopped after round 1
    state.write_text(json.dumps(partial))
    resumed = run_loop(task, classifier(), config, state_path=state, progress=False)
    strip = lambda rec: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rec["rounds"]]  # noqa: E731
    assert strip(resumed) == strip(full)


def _strip(record):
    return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in record["rounds"]]


def test_warm_resume_after_a_kill_between_record_and_weights(task, tmp_path, monkeypatch):
    """The record of round 2 is written, its weights are not: the resumed run redoes round 2 from round 1's
    weights and ends with exactly the uninterrupted record."""
    from tunelab.active import loop

    config = LoopConfig(strategy="badge", rounds=3, query_size=8, initial_size=9, seed=0, warm_start=True)
    full = run_loop(task, classifier(), config, progress=False)
    state, writes, real_write = tmp_path / "run.json", [], loop.atomic_write_bytes

    def killed_at_round_2(path, data):
        writes.append(path)
        if len(writes) == 3:  # the weights of rounds 0 and 1 were written; round 2's never land
            raise KeyboardInterrupt
        real_write(path, data)

    monkeypatch.setattr(loop, "atomic_write_bytes", killed_at_round_2)
    with pytest.raises(KeyboardInterrupt):
        run_loop(task, classifier(), config, state_path=state, progress=False)
    monkeypatch.setattr(loop, "atomic_write_bytes", real_write)
    assert len(json.loads(state.read_text())["rounds"]) == 3  # rounds 0-2 recorded, weights of round 1 only
    resumed = run_loop(task, classifier(), config, state_path=state, progress=False)
    assert _strip(resumed) == _strip(full)


def test_warm_resume_refuses_weights_of_another_round(task, tmp_path):
    config = LoopConfig(strategy="badge", rounds=3, query_size=8, initial_size=9, seed=0, warm_start=True)
    state = tmp_path / "run.json"
    run_loop(task, classifier(), config, state_path=state, progress=False)  # weights of round 3
    partial = json.loads(state.read_text())
    partial["rounds"] = partial["rounds"][:2]  # the record edited back to round 1
    state.write_text(json.dumps(partial))
    with pytest.raises(UserError, match="round 3 but the run's state ends at round 1"):
        run_loop(task, classifier(), config, state_path=state, progress=False)


def test_resume_refuses_other_settings(task, tmp_path):
    state = tmp_path / "run.json"
    run_loop(task, classifier(), LoopConfig(strategy="random", rounds=1, query_size=5, initial_size=9),
             state_path=state, progress=False)
    with pytest.raises(UserError, match="other settings"):
        run_loop(task, classifier(), LoopConfig(strategy="entropy", rounds=1, query_size=5, initial_size=9),
                 state_path=state, progress=False)


def test_budget_larger_than_pool(task):
    with pytest.raises(UserError, match="pool holds 120"):
        run_loop(task, classifier(), LoopConfig(rounds=10, query_size=20, initial_size=9), progress=False)


def test_aulc_is_the_normalised_trapezoid():
    x, y = np.array([10, 20, 40]), np.array([0.5, 0.7, 0.8])
    assert aulc(x, y) == pytest.approx(((0.5 + 0.7) / 2 * 10 + (0.7 + 0.8) / 2 * 20) / 30)
    assert aulc(x, np.full(3, 0.6)) == pytest.approx(0.6)
    with pytest.raises(ValueError):
        aulc(np.array([1, 1]), np.array([0.1, 0.2]))


def test_summary_pairs_seeds_against_random():
    def run(seed, ys):
        return {"config": {"seed": seed}, "rounds": [{"n_labeled": n, "accuracy": y} for n, y in zip([10, 20], ys)]}

    runs = {"random": [run(0, [0.5, 0.6]), run(1, [0.4, 0.6])], "x": [run(0, [0.6, 0.7]), run(1, [0.4, 0.8])]}
    out = summarise(runs)
    assert out["x"]["aulc_mean"] == pytest.approx((0.65 + 0.6) / 2)
    assert out["x"]["vs_random_mean"] == pytest.approx(((0.65 - 0.55) + (0.6 - 0.5)) / 2)
    assert out["random"]["vs_random_mean"] == 0
    assert learning_curve(runs["x"][0])[1].tolist() == [0.6, 0.7]
