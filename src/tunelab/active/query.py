"""One round of the human loop: read the pool and the labels so far, choose n rows, write them to label.

    tunelab active query --dataset pool.jsonl --labeled labeled.jsonl --strategy vapal --n 50 --out to_label.jsonl

The state lives in the two input files, nothing else: a call is a function of the pool, the
labelled rows and the settings (training and the query are seeded by the number of labels), so
repeating it writes the same file, and an interrupted call leaves the previous output whole
(temp file + rename). Every check runs before the encoder loads: a mistake costs nothing and
writes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from tunelab.active.labelling import Labels, Pool, check_trainable, read_labels, read_pool, trainable
from tunelab.active.strategies import make_strategy, unlabeled_indices
from tunelab.errors import UserError

MODEL_FREE = ("random",)  # strategies that choose without a trained classifier


@dataclasses.dataclass
class QueryConfig:
    dataset: Path
    out: Path
    labeled: Path | None = None  # None: nothing labelled yet
    strategy: str = "vapal"
    n: int = 50
    text_column: str = "text"
    id_column: str = "id"
    label_column: str = "label"
    labels: list[str] | None = None  # the label set; None: whatever the labelled file holds
    encoder: str = "all-minilm-l6-v2"
    trainable_layers: int = 0
    max_length: int = 128
    seed: int = 0


def check_paths(config: QueryConfig) -> None:
    out = Path(config.out)
    if out.suffix.lower() != ".jsonl":
        raise UserError(f"--out {out}: write the rows to label to a .jsonl file")
    for flag, path in (("--dataset", config.dataset), ("--labeled", config.labeled)):
        if path is not None and os.path.abspath(path) == os.path.abspath(out):
            raise UserError(f"--out {out} is the {flag} file and would overwrite it; write to another file")


def read_inputs(config: QueryConfig) -> tuple[Pool, Labels]:
    from tunelab.data import read_records

    pool = read_pool(read_records(config.dataset), config.text_column, config.id_column, str(config.dataset))
    rows = read_records(config.labeled) if config.labeled is not None else []
    labels = read_labels(rows, pool, config.id_column, config.label_column, config.labels,
                         str(config.labeled or "the labelled set"))
    return pool, labels


def plan(config: QueryConfig) -> tuple[Pool, Labels]:
    """Every check that needs no model: paths, strategy, files, label set, query size."""
    check_paths(config)
    if config.strategy.startswith("small-text:"):
        raise UserError("small-text strategies are benchmark peers; query with a tunelab strategy")
    make_strategy(config.strategy)
    pool, labels = read_inputs(config)
    if config.strategy not in MODEL_FREE:
        check_trainable(labels, str(config.labeled or "the labelled set (no --labeled file)"))
    unlabeled_indices(len(pool), labels.idx, config.n)
    return pool, labels


def choose(config: QueryConfig, pool: Pool, labels: Labels, progress: bool = True):
    """(chosen pool positions, probabilities of the current model or None when none can be trained yet)."""
    strategy = make_strategy(config.strategy)
    rng = np.random.default_rng([config.seed, len(labels)])
    if not trainable(labels):  # random, before two classes are labelled: no model, no guesses
        return np.asarray(strategy.query(None, pool.texts, labels.idx, config.n, rng)), None  # needs len(pool) only
    from tunelab.active.classifier import ActiveClassifier, ClassifierConfig
    from tunelab.active.features import cached_encode_pool

    features = cached_encode_pool(pool.texts, config.encoder, config.trainable_layers, config.max_length,
                                  progress=progress)
    model = ActiveClassifier.for_encoder(ClassifierConfig(encoder=config.encoder,
                                                          trainable_layers=config.trainable_layers,
                                                          max_length=config.max_length), len(labels.names))
    model.fit(features, labels.idx, labels.y, seed=config.seed)
    picked = np.asarray(strategy.query(model, features, labels.idx, config.n, rng))
    return picked, model.predict_proba(features, picked)


def output_rows(config: QueryConfig, pool: Pool, labels: Labels, picked: np.ndarray, probs) -> list[dict]:
    """One row per chosen text, in the order chosen: id, text, the model's guess and its probability."""
    rows = []
    for rank, i in enumerate(picked):
        guess = probability = None
        if probs is not None:
            best = int(np.argmax(probs[rank]))
            guess, probability = labels.values[labels.names[best]], round(float(probs[rank, best]), 4)
        rows.append({config.id_column: pool.ids[i], config.text_column: pool.texts[i], "guess": guess,
                     "probability": probability})
    return rows


def run_query(config: QueryConfig, progress: bool = True) -> dict:
    """Plan, choose and write `config.out`; returns a summary of the round."""
    from tunelab.io import atomic_write_text

    pool, labels = plan(config)
    picked, probs = choose(config, pool, labels, progress=progress)
    rows = output_rows(config, pool, labels, picked, probs)
    atomic_write_text(config.out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return {"out": str(config.out), "written": len(rows), "pool": len(pool), "labeled": len(labels),
            "unlabeled": len(pool) - len(labels), "labels": labels.names, "strategy": config.strategy,
            "model": probs is not None}
