"""The one place that picks the checkpoint a trainer resumes from."""

from __future__ import annotations

import os
from pathlib import Path


def last_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The highest-numbered `checkpoint-N` folder under `directory`, None if there is none.

    Numeric order (checkpoint-1000 after checkpoint-800); names like `checkpoint-abc` are ignored.
    """
    from transformers.trainer_utils import get_last_checkpoint

    if not Path(directory).is_dir():  # get_last_checkpoint lists the folder and would raise
        return None
    found = get_last_checkpoint(str(directory))
    return Path(found) if found else None
