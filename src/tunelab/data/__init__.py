"""Datasets: records from files or the Hugging Face hub, labeled-text datasets, and offline real corpora.

    >>> from tunelab.data import load_labeled_text
    >>> ds = load_labeled_text("debian-sections")          # built-in, offline
    >>> train, test = ds.train_test_split(0.2)             # stable: decided by a hash of each text
    >>> ds = load_labeled_text("reviews.csv", text_column="review", label_column="stars")

The names below resolve on first use (PEP 562), so `import tunelab.data` (and the `tunelab` command's start-up)
does not import numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> submodule that defines it
_EXPORTS = {
    "FILE_SUFFIXES": "records", "read_records": "records", "load_records": "records",
    "LabeledTextDataset": "labeled", "stable_hash": "labeled", "from_records": "labeled",
    "load_labeled_text": "labeled",
    "BUILTIN_CORPORA": "corpora", "APT_LISTS": "corpora", "debian_sections": "corpora", "stdlib_docs": "corpora",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from tunelab.data.corpora import APT_LISTS, BUILTIN_CORPORA, debian_sections, stdlib_docs
    from tunelab.data.labeled import LabeledTextDataset, from_records, load_labeled_text, stable_hash
    from tunelab.data.records import FILE_SUFFIXES, load_records, read_records


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tunelab.data' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"tunelab.data.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
