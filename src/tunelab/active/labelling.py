"""The files of the human loop: the unlabelled pool and the rows labelled so far, read and checked.

Pure functions from rows (dicts, as `tunelab.data.read_records` gives them) to checked values;
every mistake is a `UserError` naming the file and the row (rows count records from 1, blank
lines skipped). Ids are matched as text, so a CSV's "17" finds a JSONL's 17.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from tunelab.errors import UserError


@dataclasses.dataclass(frozen=True)
class Pool:
    """The texts to choose from and how each is identified: its id column, or its row number."""

    ids: list[Any]  # as written in the dataset, so the output reads back the same
    texts: list[str]
    index: dict[str, int]  # id as text -> position

    def __len__(self) -> int:
        return len(self.texts)


@dataclasses.dataclass(frozen=True)
class Labels:
    """Labelled pool positions `idx` with labels `y` indexing `names`; `values` keeps how each was written."""

    idx: np.ndarray
    y: np.ndarray
    names: list[str]
    values: dict[str, Any]

    def __len__(self) -> int:
        return len(self.idx)


def _present(value) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _key(value) -> str:
    return str(value).strip()


def read_pool(rows: list[dict], text_column: str, id_column: str, name: str) -> Pool:
    """The pool; without an id column in any row, rows are identified by their number (from 1)."""
    if not rows:
        raise UserError(f"{name}: no rows")
    has_ids = [_present(row.get(id_column)) for row in rows]
    if any(has_ids) and not all(has_ids):
        row = has_ids.index(False) + 1
        raise UserError(f"{name}: row {row} has no '{id_column}'; give every row an id or none "
                        "(rows are then identified by their number)")
    ids = [row[id_column] for row in rows] if all(has_ids) else list(range(1, len(rows) + 1))
    texts, index = [], {}
    for number, (row, ident) in enumerate(zip(rows, ids), start=1):
        text = row.get(text_column)
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{name}: row {number} has no '{text_column}' text (columns: {', '.join(map(str, row))})")
        key = _key(ident)
        if key in index:
            raise UserError(f"{name}: id '{key}' appears in rows {index[key] + 1} and {number}; ids must be unique")
        index[key] = number - 1
        texts.append(text)
    return Pool(ids, texts, index)


def parse_label_set(text: str | None) -> list[str] | None:
    """'a, b,c' -> ['a', 'b', 'c']; None stays None (the label set is then what the labelled file holds)."""
    if text is None:
        return None
    names = [part.strip() for part in text.split(",")]
    if any(not part for part in names):
        raise UserError(f"--labels '{text}' has an empty label; give them comma-separated, e.g. --labels spam,ham")
    if len(set(names)) != len(names):
        raise UserError(f"--labels '{text}' names a label twice")
    if len(names) < 2:
        raise UserError(f"--labels '{text}': a classifier needs at least two labels")
    return names


def read_labels(rows: list[dict], pool: Pool, id_column: str, label_column: str, label_set: list[str] | None,
                name: str) -> Labels:
    """The labelled rows: each an id of the pool, once, with a label (of `label_set` when one is given)."""
    idx, raw, seen = [], [], {}
    allowed = set(label_set) if label_set is not None else None
    for number, row in enumerate(rows, start=1):
        if not _present(row.get(id_column)):
            raise UserError(f"{name}: row {number} has no '{id_column}' (columns: {', '.join(map(str, row))})")
        key = _key(row[id_column])
        if key not in pool.index:
            raise UserError(f"{name}: row {number}: id '{key}' is not in the dataset")
        if key in seen:
            raise UserError(f"{name}: id '{key}' is labelled twice (rows {seen[key]} and {number})")
        seen[key] = number
        value = row.get(label_column)
        if not _present(value):
            raise UserError(f"{name}: row {number} (id '{key}') has no '{label_column}'; label it or remove the row")
        if allowed is not None and _key(value) not in allowed:
            raise UserError(f"{name}: row {number} (id '{key}'): label '{_key(value)}' is not one of "
                            f"{', '.join(label_set)} (--labels)")
        idx.append(pool.index[key])
        raw.append(value)
    names = list(label_set) if label_set is not None else sorted({_key(v) for v in raw})
    values: dict[str, Any] = {}
    for value in raw:
        values.setdefault(_key(value), value)
    position = {label: i for i, label in enumerate(names)}
    y = np.asarray([position[_key(v)] for v in raw], dtype=np.int64)
    return Labels(np.asarray(idx, dtype=np.int64), y, names, {n: values.get(n, n) for n in names})


def check_trainable(labels: Labels, name: str) -> None:
    """A classifier needs labelled rows of at least two classes."""
    if len(labels) == 0:
        raise UserError(f"{name}: no labelled rows yet; choose the first batch with --strategy random, "
                        "which needs no labels")
    classes = np.unique(labels.y)
    if len(classes) < 2:
        raise UserError(f"{name}: every labelled row has the single class '{labels.names[classes[0]]}'; a classifier "
                        "needs two: label rows of another class, or query this round with --strategy random")


def trainable(labels: Labels) -> bool:
    return len(np.unique(labels.y)) >= 2
