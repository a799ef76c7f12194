"""The active-learning loop: a random initial set, then rounds of query -> label -> retrain -> evaluate.

Every round's selected indices, label count, scores and timings are recorded. With a state file
the record is written after each round and a rerun continues where it stopped: retraining is
seeded per round, so a resumed run gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from pathlib import Path

import numpy as np
import torch

from tunelab.active.classifier import ActiveClassifier
from tunelab.active.corpus import Task
from tunelab.active.strategies import make_strategy
from tunelab.errors import UserError
from tunelab.io import atomic_write_bytes, atomic_write_json


@dataclasses.dataclass
class LoopConfig:
    strategy: str = "vapal"
    rounds: int = 10  # queries after the initial set (the curve has rounds + 1 points)
    query_size: int = 100
    initial_size: int = 100
    seed: int = 0
    warm_start: bool = False  # continue from last round's weights instead of the pretrained ones
    strategy_options: dict = dataclasses.field(default_factory=dict)


def initial_indices(pool_size: int, size: int, seed: int) -> np.ndarray:
    """The random initial set; it depends on the seed only, so every strategy starts from the same one."""
    if not 1 <= size <= pool_size:
        raise UserError(f"the initial set must hold between 1 and {pool_size} examples, got {size}")
    return np.sort(np.random.default_rng([seed, 0]).choice(pool_size, size=size, replace=False))


def check_budget(pool_size: int, config: LoopConfig) -> None:
    needed = config.initial_size + config.rounds * config.query_size
    if config.query_size < 1 or config.rounds < 0:
        raise UserError("rounds must be >= 0 and the query size >= 1")
    if needed > pool_size:
        raise UserError(f"{config.rounds} rounds of {config.query_size} after {config.initial_size} initial labels "
                        f"need {needed} examples but the pool holds {pool_size}")


def round_seed(seed: int, round_index: int) -> int:
    return int(np.random.default_rng([seed, round_index, 7]).integers(2**31))


def evaluate(model: ActiveClassifier, task: Task) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    pred = model.predict_proba(task.test, np.arange(len(task.test))).argmax(1)
    return {"accuracy": float(accuracy_score(task.test_labels, pred)),
            "macro_f1": float(f1_score(task.test_labels, pred, average="macro",
                                       labels=np.arange(task.num_labels), zero_division=0))}


def _load_state(path: Path, config: dict) -> dict | None:
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not a valid run state ({err.msg}); delete it to start over") from err
    if state.get("config") != config:
        raise UserError(f"{path} holds a run with other settings; use another --out or delete it")
    return state


def _checkpoint_for(checkpoint: Path, record: dict) -> dict:
    """The warm-start weights that belong to the record's last round.

    The record is written before the weights, so a kill between the two leaves the weights of the round before:
    that round is dropped from the record and run again (selection and training are seeded per round, so it
    gives the same result). Any other mismatch cannot be repaired."""
    saved = torch.load(checkpoint, weights_only=True)
    last = record["rounds"][-1]["round"]
    if saved.get("round") == last - 1:
        record["rounds"].pop()
    elif saved.get("round") != last:
        raise UserError(f"{checkpoint} holds the weights of round {saved.get('round')} but the run's state ends "
                        f"at round {last}; delete both files to start the run again")
    return saved["state"]


def run_loop(task: Task, model: ActiveClassifier, config: LoopConfig, state_path: str | Path | None = None,
             strategy=None, progress: bool = True) -> dict:
    """Run (or resume) one active-learning run and return its record."""
    check_budget(len(task.pool), config)
    strategy = strategy or make_strategy(config.strategy, **config.strategy_options)
    config_dict = {**dataclasses.asdict(config), "classifier": dataclasses.asdict(model.config), "task": task.name}
    state_path = Path(state_path) if state_path else None
    checkpoint = state_path.with_suffix(".model.pt") if state_path else None
    record = (_load_state(state_path, config_dict) if state_path else None) or {"config": config_dict, "rounds": []}
    weights = None
    if config.warm_start and checkpoint and checkpoint.exists() and record["rounds"]:
        weights = _checkpoint_for(checkpoint, record)  # may drop the last round (a kill before its weights)
    labeled = np.concatenate([np.asarray(r["selected"], dtype=np.int64) for r in record["rounds"]]
                             or [np.zeros(0, dtype=np.int64)])
    done = len(record["rounds"])
    if 0 < done <= config.rounds:  # bring the model back to the end of the last finished round
        if weights is not None:
            model.model = model.fresh_model(0)
            model.model.load_state_dict(weights)
            model.model.eval()
        else:
            model.fit(task.pool, labeled, task.pool_labels[labeled], seed=round_seed(config.seed, done - 1))

    import contextlib

    from tunelab.progress import progress_bar

    with (progress_bar(transient=True) if progress else contextlib.nullcontext()) as bar:
        job = bar.add_task(f"{config.strategy} seed {config.seed}", total=config.rounds + 1,
                           completed=done) if bar else None
        for round_index in range(done, config.rounds + 1):
            start = time.perf_counter()
            if round_index == 0:
                selected = initial_indices(len(task.pool), config.initial_size, config.seed)
            else:
                rng = np.random.default_rng([config.seed, round_index, 3])
                selected = np.asarray(strategy.query(model, task.pool, labeled, config.query_size, rng))
            query_s = time.perf_counter() - start
            labeled = np.concatenate([labeled, selected.astype(np.int64)])
            start = time.perf_counter()
            model.fit(task.pool, labeled, task.pool_labels[labeled], seed=round_seed(config.seed, round_index),
                      warm_start=config.warm_start and round_index > 0)
            train_s = time.perf_counter() - start
            record["rounds"].append({"round": round_index, "n_labeled": int(len(labeled)),
                                     "selected": selected.tolist(), **evaluate(model, task),
                                     "query_s": query_s, "train_s": train_s})
            if state_path:  # the record first: a kill before the weights leaves them one round behind
                atomic_write_json(state_path, record)
                if config.warm_start:
                    buffer = io.BytesIO()
                    torch.save({"round": round_index, "state": model.model.state_dict()}, buffer)
                    atomic_write_bytes(checkpoint, buffer.getvalue())
            if bar:
                bar.advance(job)
    return record
