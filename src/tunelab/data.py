"""Datasets: records from files or the Hugging Face hub, labeled-text datasets, and offline real corpora.

    >>> from tunelab.data import load_labeled_text
    >>> ds = load_labeled_text("debian-sections")          # built-in, offline
    >>> train, test = ds.train_test_split(0.2)             # stable: decided by a hash of each text
    >>> ds = load_labeled_text("reviews.csv", text_column="review", label_column="stars")
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tunelab.errors import UserError

FILE_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}


# --------------------------------------------------------------------------- records

def read_records(path: str | Path) -> list[dict]:
    """Rows of a JSONL, CSV/TSV or Parquet file as dicts."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"file not found: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a folder; give a .jsonl, .csv, .tsv or .parquet file")
    kind = FILE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"unsupported file type '{path.suffix}' for {path}: use .jsonl, .csv, .tsv or .parquet")
    if kind == "jsonl":
        return _read_jsonl(path)
    if kind in ("csv", "tsv"):
        with open(path, newline="", encoding="utf-8") as handle:
            try:
                return list(csv.DictReader(handle, delimiter="," if kind == "csv" else "\t"))
            except (csv.Error, UnicodeDecodeError) as err:
                raise UserError(f"{path}: not a valid {kind.upper()} file ({err})") from err
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as err:  # pyarrow raises several unrelated types for bad files
        raise UserError(f"{path}: not a valid Parquet file ({str(err).splitlines()[0]})") from err


def _read_jsonl(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from err
        if not all(isinstance(r, dict) for r in rows):
            raise UserError(f"{path}: expected a list of objects")
        return rows
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{number}: malformed JSON line ({err.msg})") from err
        if not isinstance(row, dict):
            raise UserError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def load_records(source: str | Path, split: str = "train") -> list[dict]:
    """Rows of a local file, or of a Hugging Face `datasets` name (needs a reachable hub or a local cache)."""
    path = Path(source)
    if path.suffix.lower() in FILE_SUFFIXES or path.exists():
        return read_records(path)
    return _load_hub_dataset(str(source), split)


def _load_hub_dataset(name: str, split: str) -> list[dict]:
    import datasets

    from tunelab.hub import OFFLINE_HINT, hub_reachable, offline_mode

    if not hub_reachable() and not offline_mode():  # fail at once instead of minutes of retries
        raise UserError(f"cannot load dataset '{name}': not a local file, not a built-in corpus "
                        f"({', '.join(BUILTIN_CORPORA)}), and no dataset hub is reachable; {OFFLINE_HINT}")
    try:
        return datasets.load_dataset(name, split=split).to_list()
    except Exception as err:  # datasets raises ConnectionError, FileNotFoundError, DatasetNotFoundError, ...
        raise UserError(f"cannot load dataset '{name}' (split {split}): not a local file, not a built-in corpus "
                        f"({', '.join(BUILTIN_CORPORA)}), and not reachable on the dataset hub (offline?)") from err


# --------------------------------------------------------------------------- labeled text

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


# --------------------------------------------------------------------------- built-in corpora

def _cache_path(name: str) -> Path:
    import os

    root = Path(os.environ.get("TUNELAB_CACHE") or Path.home() / ".cache" / "tunelab") / "data"
    root.mkdir(parents=True, exist_ok=True)
    return root / name


def _finish(texts: list[str], labels: list[str], name: str, min_count: int) -> LabeledTextDataset:
    """Deduplicate texts (dropping texts seen under two labels), drop rare labels, index labels."""
    by_text: dict[str, set[str]] = {}
    for text, label in zip(texts, labels):
        by_text.setdefault(text, set()).add(label)
    pairs = [(t, next(iter(ls))) for t, ls in by_text.items() if len(ls) == 1]
    counts: dict[str, int] = {}
    for _, label in pairs:
        counts[label] = counts.get(label, 0) + 1
    names = sorted(label for label, c in counts.items() if c >= min_count)
    index = {n: i for i, n in enumerate(names)}
    kept = [(t, index[l]) for t, l in pairs if l in index]
    return LabeledTextDataset([t for t, _ in kept], np.array([l for _, l in kept]), names, name)


def _cached_corpus(name: str, source_stamp: str, build: Callable[[], tuple[list[str], list[str]]]):
    from tunelab.io import atomic_write_json

    path = _cache_path(f"{name}.json")
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("stamp") == source_stamp:
            return cached["texts"], cached["labels"]
    texts, labels = build()
    atomic_write_json(path, {"stamp": source_stamp, "texts": texts, "labels": labels})
    return texts, labels


APT_LISTS = Path("/var/lib/apt/lists")


def _apt_text(path: Path) -> str:
    """Decompressed text of an apt list file (apt-helper knows every compression apt uses)."""
    import subprocess

    result = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"cannot read {path}: {result.stderr.strip().splitlines()[-1] if result.stderr else 'apt-helper failed'}")
    return result.stdout


def _deb822(text: str):
    """Paragraphs of a Debian control-style file as dicts (continuation lines joined with newlines)."""
    for paragraph in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in paragraph.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line[1:]
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def _description_text(description: str) -> str:
    lines = [("" if line.strip() == "." else line.strip()) for line in description.splitlines()]
    return " ".join(" ".join(lines).split())


def debian_sections(min_count: int = 100) -> LabeledTextDataset:
    """Debian package descriptions (synopsis + long description) labelled by archive section.

    Read from apt's lists (`apt-get update -o Acquire::Languages=en` fetches the long descriptions; without them the
    one-line synopsis is used). The `contrib/` and `non-free/` prefixes are dropped, texts are deduplicated (a text
    under two sections is dropped as ambiguous) and sections with fewer than `min_count` texts are left out.
    """
    packages = sorted(APT_LISTS.glob("*_Packages*"))
    if not packages:
        raise UserError("no apt package lists on this machine: run `apt-get update -o Acquire::Languages=en` first")
    translations = sorted(APT_LISTS.glob("*_i18n_Translation-en*"))
    stamp = json.dumps([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in packages + translations])

    def build() -> tuple[list[str], list[str]]:
        long_by_md5: dict[str, str] = {}
        for path in translations:
            for fields in _deb822(_apt_text(path)):
                if "Description-md5" in fields and "Description-en" in fields:
                    long_by_md5[fields["Description-md5"]] = fields["Description-en"]
        texts, labels = [], []
        for path in packages:
            for fields in _deb822(_apt_text(path)):
                section = fields.get("Section", "").split("/")[-1]
                description = long_by_md5.get(fields.get("Description-md5", ""), fields.get("Description", ""))
                if section and description:
                    texts.append(_description_text(description))
                    labels.append(section)
        return texts, labels

    texts, labels = _cached_corpus("debian-sections", stamp, build)
    return _finish(texts, labels, "debian-sections", min_count)


_STDLIB_SCRIPT = r"""
import importlib, inspect, json, pkgutil, sys, warnings
warnings.simplefilter("ignore")
SKIP = {"antigravity", "this", "idlelib", "turtledemo", "test", "lib2to3", "tkinter", "turtle", "__main__"}
rows = []
names = sorted(n for n in sys.stdlib_module_names if not n.startswith("_") and n not in SKIP)
for top in names:
    try:
        module = importlib.import_module(top)
    except Exception:
        continue
    modules = [module]
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), top + "."):
        if any(part.startswith("_") or part in SKIP for part in info.name.split(".")):
            continue
        try:
            modules.append(importlib.import_module(info.name))
        except Exception:
            pass
    seen = set()
    for mod in modules:
        for name, obj in vars(mod).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            members = [obj] + ([m for n, m in vars(obj).items() if not n.startswith("_")] if inspect.isclass(obj) else [])
            for member in members:
                doc = inspect.getdoc(member) if callable(member) or inspect.isclass(member) else None
                if doc and len(doc) >= 40 and id(member) not in seen:
                    seen.add(id(member))
                    rows.append((doc, top))
json.dump(rows, sys.stdout)
"""


def stdlib_docs(min_count: int = 60) -> LabeledTextDataset:
    """Docstrings of the Python standard library's public functions, classes and methods, labelled by the
    top-level package they belong to (email, xml, asyncio, ...). Real technical prose, offline everywhere."""
    import subprocess
    import sys
    import sysconfig

    stamp = f"{sys.version}|{sysconfig.get_paths()['stdlib']}"

    def build() -> tuple[list[str], list[str]]:
        # a fresh interpreter: importing the whole stdlib has side effects we keep out of this process
        result = subprocess.run([sys.executable, "-c", _STDLIB_SCRIPT], capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=600)
        if result.returncode != 0:
            raise UserError(f"collecting standard-library docstrings failed: {result.stderr.strip()[-200:]}")
        rows = json.loads(result.stdout)
        return [" ".join(doc.split()) for doc, _ in rows], [label for _, label in rows]

    texts, labels = _cached_corpus("stdlib-docs", stamp, build)
    return _finish(texts, labels, "stdlib-docs", min_count)


BUILTIN_CORPORA: dict[str, Callable[..., LabeledTextDataset]] = {
    "debian-sections": debian_sections,
    "stdlib-docs": stdlib_docs,
}
