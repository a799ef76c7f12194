"""Readers of recording formats other than the NPZ/HDF5 arrays (see recording.py): each returns a Recording."""

from __future__ import annotations

import hashlib

import numpy as np

from tunelab.cortex.recording import TIERS
from tunelab.errors import UserError


def unique_images(frames: list[np.ndarray] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames shown on trials -> (distinct images [image, ...], image index of each frame); identical pixels are
    the same image, numbered in order of first appearance."""
    index_of: dict[bytes, int] = {}
    distinct, frame_image = [], []
    for frame in frames:
        frame = np.ascontiguousarray(frame)
        key = hashlib.sha1(frame.tobytes() + str(frame.shape).encode()).digest()
        if key not in index_of:
            index_of[key] = len(distinct)
            distinct.append(frame)
        frame_image.append(index_of[key])
    if len({frame.shape for frame in distinct}) > 1:
        raise UserError(f"stimulus images differ in shape ({', '.join(sorted({str(f.shape) for f in distinct}))})")
    return np.stack(distinct), np.asarray(frame_image, dtype=np.int64)


def tiers_by_image(trial_image: np.ndarray, trial_tier: np.ndarray, where: str) -> dict[str, np.ndarray]:
    """Per-trial tier names -> image indices per tier; an image whose trials sit in different tiers is an error."""
    tiers = {}
    for name in TIERS:
        tiers[name] = np.unique(trial_image[trial_tier == name])
    together = np.concatenate(list(tiers.values()))
    if len(np.unique(together)) != len(together):
        raise UserError(f"{where}: some images are shown in trials of different tiers (train/validation/test)")
    return tiers


def as_tier_names(values: np.ndarray) -> np.ndarray:
    """Tier labels stored as bytes or str -> a str array."""
    return np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).ravel()])
