"""The neuralpredictors / Sensorium file tree (static images): one .npy per trial and per kind, trial metadata.

  data/images/{t}.npy          [1, H, W] or [H, W] grayscale (0-255), or [3, H, W]: the image of trial t
  data/responses/{t}.npy       [unit] response of every unit on trial t
  meta/trials/tiers.npy        [trial] "train" | "validation" | "test" (other tiers, e.g. "final_test", are skipped)
  meta/trials/frame_image_id.npy  [trial] optional image id; without it identical images are the same image
Other folders (behavior, pupil_center, meta/neurons, meta/statistics) are not used. Units are the "pixels" of a
1 x n sheet (their order is not a cortical map: fit with --position free).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunelab.cortex.formats import as_tier_names, tiers_by_image, unique_images
from tunelab.cortex.recording import TIERS, Recording, stimulus_bank
from tunelab.errors import UserError


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise UserError(f"cannot read {path} as a .npy array: {err}") from None


def trial_files(folder: Path) -> dict[int, Path]:
    """{trial number: file} for the numbered .npy files of a data folder."""
    files = {}
    for path in folder.glob("*.npy"):
        if not path.stem.isdigit():
            raise UserError(f"{path}: trial files are named by trial number (0.npy, 1.npy, ...)")
        files[int(path.stem)] = path
    if not files:
        raise UserError(f"no trial files (.npy) in {folder}")
    return files


def read_sensorium(folder: str | Path, square: str = "pad", notes: list[str] | None = None) -> Recording:
    folder = Path(folder)
    notes = [] if notes is None else notes
    if not (folder / "data" / "images").is_dir() or not (folder / "data" / "responses").is_dir():
        raise UserError(f"{folder} is not a Sensorium/neuralpredictors folder: expected data/images/ and "
                        "data/responses/ (one .npy per trial)")
    image_files, response_files = trial_files(folder / "data" / "images"), trial_files(folder / "data" / "responses")
    if sorted(image_files) != sorted(response_files):
        only = sorted(set(image_files) ^ set(response_files))
        raise UserError(f"{folder}: {len(image_files)} image files but {len(response_files)} response files; "
                        f"trial {only[0]} has only one of them")
    trials = sorted(image_files)
    if trials != list(range(len(trials))):
        raise UserError(f"{folder}: trial files must be numbered 0 to {len(trials) - 1} without gaps")
    tier_path = folder / "meta" / "trials" / "tiers.npy"
    if not tier_path.exists():
        raise UserError(f"{folder}: no meta/trials/tiers.npy (the train/validation/test tier of every trial)")
    tier = as_tier_names(_load(tier_path))
    if len(tier) != len(trials):
        raise UserError(f"{tier_path} has {len(tier)} tiers but there are {len(trials)} trials")
    keep = np.isin(tier, TIERS)
    if not keep.all():
        skipped = sorted(set(tier[~keep]))
        notes.append(f"{int((~keep).sum())} trials of tier {', '.join(skipped)} skipped")
    kept = np.flatnonzero(keep)
    frames = [_load(image_files[t]) for t in kept]
    responses = [_load(response_files[t]) for t in kept]
    shapes = {r.shape for r in responses}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise UserError(f"{folder}: every data/responses file must be [unit] with the same units, found shapes "
                        f"{', '.join(sorted(str(s) for s in shapes))}")
    if any(r.dtype.kind not in "fiu" for r in responses[:1]):
        raise UserError(f"{folder}: responses must be numbers, got dtype {responses[0].dtype}")
    id_path = folder / "meta" / "trials" / "frame_image_id.npy"
    if id_path.exists():
        ids = np.asarray(_load(id_path)).ravel()
        if len(ids) != len(trials):
            raise UserError(f"{id_path} has {len(ids)} image ids but there are {len(trials)} trials")
        _, first, trial_image = np.unique(ids[kept], return_index=True, return_inverse=True)
        distinct = np.stack([frames[i] for i in first])
    else:
        distinct, trial_image = unique_images(frames)
    if distinct.ndim == 4 and distinct.shape[1] == 1:
        distinct = distinct[:, 0]
    images, note = stimulus_bank(distinct, square, f"{folder.name}: data/images")
    if note:
        notes.append(f"images: {note}")
    tiers = tiers_by_image(trial_image, tier[kept], str(folder))
    trial_responses = np.stack(responses).astype(np.float32)
    return Recording.from_trials(trial_image, trial_responses, images, (1, trial_responses.shape[1]), tiers=tiers)
