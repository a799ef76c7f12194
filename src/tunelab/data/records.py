"""Records: rows of JSONL, CSV/TSV and Parquet files, or of a Hugging Face `datasets` name, as dicts."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from tunelab.data.corpora import BUILTIN_CORPORA
from tunelab.errors import UserError
from tunelab.extras import require
from tunelab.validate import check_row_text, decode_utf8

FILE_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}


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
        return _checked(path, *_read_jsonl(path))
    if kind in ("csv", "tsv"):
        text = decode_utf8(path, path.read_bytes())
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="," if kind == "csv" else "\t")
            return _checked(path, [(reader.line_num, row) for row in reader], "line")
        except csv.Error as err:
            raise UserError(f"{path}: not a valid {kind.upper()} file ({err})") from err
    pq = require("pyarrow.parquet", "data")
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as err:  # pyarrow raises several unrelated types for bad files
        raise UserError(f"{path}: not a valid Parquet file ({str(err).splitlines()[0]})") from err
    return _checked(path, list(enumerate(rows, start=1)), "row")


def _checked(path: Path, numbered: list[tuple[int, dict]], unit: str) -> list[dict]:
    """The rows, after refusing text that is not text (NUL bytes, lone surrogates): one line naming file and row."""
    for number, row in numbered:
        check_row_text(f"{path}: {unit} {number}", row)
    return [row for _, row in numbered]


def _read_jsonl(path: Path) -> tuple[list[tuple[int, dict]], str]:
    """(numbered rows, what the numbers count: lines of a JSONL file, rows of a JSON list)."""
    text = decode_utf8(path, path.read_bytes())
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from err
        if not all(isinstance(r, dict) for r in rows):
            raise UserError(f"{path}: expected a list of objects")
        return list(enumerate(rows, start=1)), "row"
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
        rows.append((number, row))
    return rows, "line"


def load_records(source: str | Path, split: str = "train") -> list[dict]:
    """Rows of a local file, or of a Hugging Face `datasets` name (needs a reachable hub or a local cache)."""
    path = Path(source)
    if path.suffix.lower() in FILE_SUFFIXES or path.exists():
        return read_records(path)
    return _load_hub_dataset(str(source), split)


def _load_hub_dataset(name: str, split: str) -> list[dict]:
    from tunelab.hub import OFFLINE_HINT, hub_reachable, offline_mode

    datasets = require("datasets", "data")
    if not hub_reachable() and not offline_mode():  # fail at once instead of minutes of retries
        raise UserError(f"cannot load dataset '{name}': not a local file, not a built-in corpus "
                        f"({', '.join(BUILTIN_CORPORA)}), and no dataset hub is reachable; {OFFLINE_HINT}")
    try:
        return datasets.load_dataset(name, split=split).to_list()
    except Exception as err:  # datasets raises ConnectionError, FileNotFoundError, DatasetNotFoundError, ...
        raise UserError(f"cannot load dataset '{name}' (split {split}): not a local file, not a built-in corpus "
                        f"({', '.join(BUILTIN_CORPORA)}), and not reachable on the dataset hub (offline?)") from err
