"""The one place that decides which checkpoint a trainer resumes from, and what a resumed run reports.

A checkpoint is complete when its trainer_state.json parses, it holds model weights and none of its files is
cut short. Checkpoints are written into a staging folder and renamed when complete (`tunelab.checkpointing`),
so an incomplete one only comes from an older writer, a full disk or a damaged copy; resume skips it and says so.
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
import zipfile
from pathlib import Path
from typing import Callable, Sequence

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")  # transformers' naming; staging folders start with "."
WEIGHTS = ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin", "adapter_model.bin",
           "model.safetensors.index.json", "pytorch_model.bin.index.json")
TRAINER_STATE = "trainer_state.json"


def _safetensors_problem(path: Path) -> str | None:
    # header: 8-byte length, JSON with each tensor's data_offsets; the file must reach the furthest offset
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if 8 + length > size:
                return f"{path.name} is cut short"
            header = json.loads(f.read(length))
    except (struct.error, ValueError):
        return f"{path.name} is cut short or corrupt"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    return None if 8 + length + end <= size else f"{path.name} is cut short"


def file_problem(path: Path) -> str | None:
    """Why a checkpoint file cannot be loaded, or None. Cheap: reads headers, never whole tensors."""
    suffix = path.suffix
    if suffix == ".safetensors":
        return _safetensors_problem(path)
    if suffix in (".pt", ".pth", ".bin"):  # torch.save writes zip archives; a cut one has no central directory
        return None if zipfile.is_zipfile(path) else f"{path.name} is cut short or corrupt"
    if suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return f"{path.name} is cut short or corrupt"
    return None


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """Why `folder` is not a complete Trainer checkpoint, or None when it can be resumed from."""
    folder = Path(folder)
    if not folder.is_dir():
        return "not a folder"
    if not (folder / TRAINER_STATE).is_file():
        return f"no {TRAINER_STATE}"
    if not any((folder / name).is_file() for name in WEIGHTS) and not any(folder.glob("pytorch_model_fsdp_*")):
        return "no model weights"
    for path in sorted(folder.iterdir()):
        problem = path.is_file() and file_problem(path)
        if problem:
            return problem
    return None


def numbered_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """`checkpoint-N` folders under `directory`, highest N first (numeric order; other names ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := CHECKPOINT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found, reverse=True)]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def last_checkpoint(directory: str | os.PathLike, notice: Callable[[str], None] = _stderr) -> Path | None:
    """The highest-numbered complete `checkpoint-N` folder under `directory`, None if there is none.

    Incomplete ones are skipped with one `notice` line each (stderr by default), so a run killed mid-save by an
    older writer stays resumable from the checkpoint before.
    """
    for folder in numbered_checkpoints(directory):
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        notice(f"skipping incomplete checkpoint {folder} ({problem})")
    return None


def run_train_loss(log_history: Sequence[dict], fallback: float | None = None) -> float | None:
    """Mean per-step training loss over the whole run, however often it was interrupted and resumed.

    Each logged `loss` is the mean over the steps since the log before it, so the run's mean weights it by that
    step span. A resumed Trainer reports only its own steps; the log history (restored from the checkpoint) covers
    them all, as long as every checkpoint and the last step are logged (`checkpointing.LogAtCheckpoints`).
    `fallback` when nothing was logged.
    """
    total, previous = 0.0, 0
    for entry in log_history:
        if "loss" in entry and "step" in entry:
            total += entry["loss"] * (entry["step"] - previous)
            previous = entry["step"]
    return total / previous if previous > 0 else fallback
