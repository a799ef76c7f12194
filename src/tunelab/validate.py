"""Checks of user input made before any model, data set or output folder is touched.

Each check raises `UserError` with one line naming the option (or file and row) and what is allowed, so a command
can validate everything first and then start work that may take minutes.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from tunelab.errors import UserError


# ----------------------------------------------------------------------------------------------- numbers and names

def finite(flag: str, value: Any) -> None:
    """NaN and +-inf are invalid for every float option (and every item of a list-valued one)."""
    for item in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(item, float) and not math.isfinite(item):
            raise UserError(f"{flag} must be a finite number, got {item}")


def at_least(flag: str, value: float | None, low: float, note: str = "") -> None:
    if value is not None and value < low:
        raise UserError(f"{flag} must be >= {low}{note}, got {value}")


def positive(flag: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise UserError(f"{flag} must be > 0, got {value}")


def between(flag: str, value: float | None, low: float, high: float) -> None:
    if value is not None and not low <= value <= high:
        raise UserError(f"{flag} must lie between {low} and {high}, got {value}")


def one_of(flag: str, value: str, choices: Iterable[str]) -> None:
    choices = list(choices)
    if value not in choices:
        raise UserError(f"unknown {flag} '{value}': choose one of {', '.join(choices)}")


def steps_or_epochs(steps_flag: str, steps: int, epochs_flag: str, epochs: float) -> None:
    """Trainer convention: steps > 0 decides, -1 leaves it to the epochs (which must then be > 0)."""
    if steps == 0 or steps < -1:
        raise UserError(f"{steps_flag} must be >= 1, or -1 to train for {epochs_flag}; got {steps}")
    if steps == -1:
        positive(epochs_flag, epochs)


# ----------------------------------------------------------------------------------------------- outputs

def _nearest_existing(path: Path) -> Path:
    probe = path.absolute()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return probe


def _check_writable(flag: str, path: Path, folder: Path) -> None:
    """`folder` (or the nearest folder above it that exists, where the missing ones will be made) accepts new
    entries: probe with a temporary folder, then remove it."""
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise UserError(f"{flag} {path}: {base} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".tunelab-probe-", dir=base))
    except OSError as err:
        raise UserError(f"{flag} {path} is not writable (cannot create a folder in {base}: "
                        f"{err.strerror or err})") from None


def out_dir(path: str | os.PathLike | None, flag: str = "--out") -> None:
    """`path` can become (or already is) an output folder: outputs are staged beside it, then moved into it."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is an existing file; give a folder")
    _check_writable(flag, path, path.parent)
    if path.exists():
        _check_writable(flag, path, path)


def out_file(path: str | os.PathLike | None, flag: str = "--out") -> None:
    """`path` can become (or replace) an output file: it is written beside itself, then renamed."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name")
    _check_writable(flag, path, path.parent)


def in_file(path: str | os.PathLike, flag: str) -> None:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{flag}: no such file: {path}")
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file")


def in_dir(path: str | os.PathLike, flag: str) -> None:
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{flag}: no such folder: {path}")


# ----------------------------------------------------------------------------------------------- text in data files

def decode_utf8(where: str | os.PathLike, data: bytes) -> str:
    """The file's text; invalid UTF-8 is an error naming the file and line (not a UnicodeDecodeError)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise UserError(f"{where}: line {line}, column {column}: invalid UTF-8 byte 0x{data[err.start]:02x}; "
                        "save the file as UTF-8") from None


def check_text(where: str, value: str) -> None:
    """NUL bytes and lone UTF-16 surrogates are not text (tokenizers and encoders fail on them later)."""
    if "\x00" in value:
        raise UserError(f"{where} contains a NUL byte")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise UserError(f"{where} contains a lone UTF-16 surrogate (\\u{ord(value[err.start]):04x}); "
                        "it is not valid text") from None


def check_row_text(where: str, row: Any) -> None:
    """`check_text` for every string in a record (nested lists and dicts too), naming the column."""
    stack = [(None, row)]
    while stack:
        key, value = stack.pop()
        if isinstance(value, str):
            check_text(f"{where}{f' (column {key!r})' if key is not None else ''}", value)
        elif isinstance(value, Mapping):
            stack.extend((k if key is None else key, v) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((key, v) for v in value)


def is_nan_label(value: Any) -> bool:
    """A missing label as files write it: float NaN, or the text 'nan' / 'NaN' of CSV exports."""
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() == "nan"


# ----------------------------------------------------------------------------------------------- model files

def check_json_files(folder: str | os.PathLike, repair: str) -> None:
    """Every JSON file of a model folder parses: a copy cut short (a killed download or save) is named, with
    `repair` saying how to restore it, instead of a JSONDecodeError from deep inside a loader."""
    import json

    for path in sorted(Path(folder).glob("*.json")):
        try:
            json.loads(path.read_bytes())
        except ValueError as err:  # JSONDecodeError, and UnicodeDecodeError for binary garbage
            raise UserError(f"corrupt model file {path} ({getattr(err, 'msg', 'not JSON')}); {repair}") from None
