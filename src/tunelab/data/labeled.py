"""Labeled text: texts with integer labels and their names, a hash-stable split, and loading by name or file."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tunelab.data.corpora import BUILTIN_CORPORA
from tunelab.data.records import load_records
from tunelab.errors import UserError
from tunelab.validate import is_nan_label


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


@dataclasses.dataclass
class LabeledTextDataset:
    """Texts with integer labels in [0, num_labels) and their names."""

    texts: list[str]
    labels: np.ndarray
    label_names: list[str]
    name: str = "dataset"

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.texts) != len(self.labels):
            raise UserError(f"{self.name}: {len(self.texts)} texts but {len(self.labels)} labels")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.label_names)):
            raise UserError(f"{self.name}: labels must lie in [0, {len(self.label_names)})")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "LabeledTextDataset":
        indices = np.asarray(indices, dtype=np.int64)
        return LabeledTextDataset([self.texts[i] for i in indices], self.labels[indices], self.label_names, self.name)

    def train_test_split(self, test_fraction: float = 0.2) -> tuple["LabeledTextDataset", "LabeledTextDataset"]:
        """Split by a hash of each text: stable across runs, machines and dataset order."""
        if not 0 < test_fraction < 1:
            raise UserError(f"test fraction must lie in (0, 1), got {test_fraction}")
        bucket = np.array([stable_hash(t) % 10_000 for t in self.texts])
        is_test = bucket < int(test_fraction * 10_000)
        return self.subset(np.flatnonzero(~is_test)), self.subset(np.flatnonzero(is_test))

    def sample(self, n: int, seed: int = 0) -> "LabeledTextDataset":
        """A random subset of n examples, each label's share kept (stratified)."""
        if n >= len(self):
            return self
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self))
        # stratify: take examples round-robin by label in random order, so rare labels keep their share
        rank = np.empty(len(self))
        for label in np.unique(self.labels):
            members = order[self.labels[order] == label]
            rank[members] = (np.arange(len(members)) + rng.random()) / len(members)
        chosen = np.argsort(rank, kind="stable")[:n]
        return self.subset(np.sort(chosen))

    def label_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=self.num_labels)
        return {name: int(c) for name, c in zip(self.label_names, counts)}


def from_records(rows: list[dict], text_column: str = "text", label_column: str = "label",
                 name: str = "dataset", label_names: list[str] | None = None) -> LabeledTextDataset:
    if not rows:
        raise UserError(f"{name}: no rows")
    for column in (text_column, label_column):
        if column not in rows[0]:
            raise UserError(f"{name}: no column '{column}' (columns: {', '.join(map(str, rows[0]))})")
    texts, raw = [], []
    for i, row in enumerate(rows):
        text = row.get(text_column)
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{name}: row {i + 1} has an empty or missing '{text_column}'")
        if row.get(label_column) is None or row.get(label_column) == "":
            raise UserError(f"{name}: row {i + 1} has no '{label_column}'")
        if is_nan_label(row[label_column]):
            raise UserError(f"{name}: row {i + 1} has a NaN label in '{label_column}' (a missing label)")
        texts.append(text)
        raw.append(row[label_column])
    if label_names is None:
        if all(isinstance(v, (int, np.integer)) for v in raw):
            label_names = [str(v) for v in range(max(raw) + 1)]
            labels = np.asarray(raw)
        else:
            label_names = sorted({str(v) for v in raw})
            labels = np.asarray([label_names.index(str(v)) for v in raw])
    else:
        index = {n: i for i, n in enumerate(label_names)}
        labels = np.asarray([v if isinstance(v, (int, np.integer)) else index[str(v)] for v in raw])
    return LabeledTextDataset(texts, labels, list(label_names), name)


def load_labeled_text(source: str | Path, text_column: str = "text", label_column: str = "label",
                      split: str = "train", **corpus_options: Any) -> LabeledTextDataset:
    """A built-in corpus name, a local file, or a Hugging Face dataset name with text and label columns.

    Hub names for users who have a hub: "ag_news" (text/label), "imdb" (text/label), "sst2" via
    "stanfordnlp/sst2" (sentence/label), PubMed 20k RCT via "armanc/pubmed-rct20k" (text/label).
    """
    if str(source) in BUILTIN_CORPORA:
        return BUILTIN_CORPORA[str(source)](**corpus_options)
    rows = load_records(source, split=split)
    label_names = None
    if not Path(str(source)).exists():  # hub datasets carry their label names in the features
        label_names = _hub_label_names(str(source), split, label_column)
    return from_records(rows, text_column, label_column, name=Path(str(source)).stem, label_names=label_names)


def _hub_label_names(name: str, split: str, column: str) -> list[str] | None:
    import datasets

    try:
        feature = datasets.load_dataset_builder(name).info.features[column]
        return list(feature.names) if hasattr(feature, "names") else None
    except Exception:  # label names are a nicety; integer labels still work without them
        return None
