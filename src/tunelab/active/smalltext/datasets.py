"""Datasets for small-text: cached encoder states for tunelab's classifier, and token ids for small-text's.

small-text's loop indexes a dataset (`dataset[idx]`), clones the labelled part and assigns its
labels (`clone().y = y`); `FeatureDataset` answers those over a `features.FeaturePool`.
Labels follow small-text: integers, -1 (`LABEL_UNLABELED`) where unknown.
"""

from __future__ import annotations

import numpy as np
from small_text.base import LABEL_UNLABELED
from small_text.data import Dataset

from tunelab.active.classifier import ClassifierConfig
from tunelab.active.features import FeaturePool, cached_encode_pool


def _target_labels(y: np.ndarray, target_labels) -> np.ndarray:
    if target_labels is not None:
        return np.asarray(target_labels)
    return np.unique(y[y != LABEL_UNLABELED])


class FeatureDataset(Dataset):
    """Hidden states of n texts (`pool`) and their labels `y` (n,), -1 where unlabelled."""

    def __init__(self, pool: FeaturePool, y, target_labels=None):
        y = np.asarray(y, dtype=np.int64)
        if len(y) != len(pool):
            raise ValueError(f"{len(pool)} encoded texts but {len(y)} labels")
        self.pool = pool
        self._y = y
        self._target_labels = _target_labels(y, target_labels)

    @classmethod
    def from_texts(cls, texts: list[str], y, config: ClassifierConfig | None = None, target_labels=None,
                   progress: bool = False) -> "FeatureDataset":
        """Encode `texts` once with the frozen part of `config`'s encoder (cached on disk)."""
        config = config or ClassifierConfig()
        pool = cached_encode_pool(list(texts), config.encoder, config.trainable_layers, config.max_length,
                                  progress=progress)
        return cls(pool, y, target_labels)

    def __len__(self) -> int:
        return len(self._y)

    def __getitem__(self, item) -> "FeatureDataset":
        idx = np.atleast_1d(np.arange(len(self))[item])
        return FeatureDataset(self.pool.subset(idx), self._y[idx], self._target_labels)

    def clone(self) -> "FeatureDataset":
        # the states are never written to, so a clone shares them; labels are what callers reassign
        return FeatureDataset(self.pool, self._y.copy(), self._target_labels.copy())

    @property
    def x(self) -> FeaturePool:
        return self.pool

    @x.setter
    def x(self, pool: FeaturePool):
        self.pool = pool

    @property
    def y(self) -> np.ndarray:
        return self._y

    @y.setter
    def y(self, y):
        y = np.asarray(y, dtype=np.int64)
        if len(y) != len(self):
            raise ValueError(f"{len(self)} examples but {len(y)} labels")
        self._y = y
        self._target_labels = np.union1d(self._target_labels, y[y != LABEL_UNLABELED])

    @property
    def is_multi_label(self) -> bool:
        return False

    @property
    def target_labels(self) -> np.ndarray:
        return self._target_labels

    @target_labels.setter
    def target_labels(self, target_labels):
        self._target_labels = np.asarray(target_labels)


def transformers_dataset(texts: list[str], y, tokenizer, max_length: int = 64, target_labels=None):
    """A small-text `TransformersDataset` of `texts` padded to `max_length`.

    The same as `TransformersDataset.from_arrays`, which small-text 1.4 builds on
    `tokenizer.encode_plus`, a method transformers 5 removed.
    """
    from small_text.integrations.transformers import TransformersDataset

    y = np.asarray(y, dtype=np.int64)
    enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    rows = [(enc["input_ids"][i:i + 1], enc["attention_mask"][i:i + 1], int(y[i])) for i in range(len(y))]
    return TransformersDataset(rows, target_labels=_target_labels(y, target_labels))
