"""A labelled corpus as an active-learning task: pool and test texts, encoded once."""

from __future__ import annotations

import dataclasses

import numpy as np

from tunelab.active.features import FeaturePool, cached_encode_pool
from tunelab.errors import UserError


@dataclasses.dataclass
class Task:
    name: str
    label_names: list[str]
    pool: FeaturePool
    pool_labels: np.ndarray
    test: FeaturePool
    test_labels: np.ndarray
    pool_texts: list[str]

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def load_task(source: str, text_column: str = "text", label_column: str = "label", max_pool: int | None = None,
              test_fraction: float = 0.2, max_test: int | None = None, encoder: str = "all-minilm-l6-v2",
              trainable_layers: int = 0, max_length: int = 64, seed: int = 0, progress: bool = True) -> Task:
    """Load through `tunelab.data`, split by text hash, subsample, encode the frozen part once."""
    from tunelab.data import load_labeled_text

    data = load_labeled_text(source, text_column=text_column, label_column=label_column)
    if data.num_labels < 2 or len(np.unique(data.labels)) < 2:
        raise UserError(f"{source}: active learning needs at least two classes, found {len(np.unique(data.labels))}")
    train, test = data.train_test_split(test_fraction)
    if len(test) == 0 or len(train) == 0:
        raise UserError(f"{source}: too few texts ({len(data)}) for a pool and a test split")
    if max_pool:
        train = train.sample(max_pool, seed=seed)
    if max_test:
        test = test.sample(max_test, seed=seed)
    pool = cached_encode_pool(train.texts, encoder, trainable_layers, max_length, progress=progress)
    test_pool = cached_encode_pool(test.texts, encoder, trainable_layers, max_length, progress=progress)
    return Task(str(source), list(data.label_names), pool, train.labels, test_pool, test.labels, list(train.texts))
