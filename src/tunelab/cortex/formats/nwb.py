"""NWB files (pynwb): stimulus images, the trials table and one response series.

  trials                 start_time, stop_time per trial; optional columns image_index (the image shown) and tier
                         ("train" | "validation" | "test")
  stimulus images        an IndexSeries over an Images container (stimulus_template; IndexSeries data = image index,
                         its order_of_images fixes the order), or an ImageSeries whose frames are the presentations
                         (identical frames are one image). Without an image_index column, a trial shows the first
                         presentation whose timestamp lies in [start_time, stop_time).
  responses              a RoiResponseSeries (data [time, roi]: a 1 x n sheet, fit with --position free), or a
                         widefield OnePhotonSeries / TwoPhotonSeries movie (data [time, H, W]: an H x W sheet)
A trial's response is the mean of the series over [start_time, stop_time) (subtract a baseline beforehand for
dF/F); a trial with no sample in its window is a missing trial.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunelab.cortex.formats import as_tier_names, tiers_by_image, unique_images
from tunelab.cortex.recording import Recording, stimulus_bank
from tunelab.errors import UserError

RESPONSE_TYPES = ("RoiResponseSeries", "OnePhotonSeries", "TwoPhotonSeries")


def read_nwb(path: str | Path, square: str = "pad", series: str | None = None,
             notes: list[str] | None = None) -> Recording:
    try:
        from pynwb import NWBHDF5IO
    except ImportError:
        raise UserError("reading .nwb needs pynwb: pip install pynwb") from None
    path = Path(path)
    notes = [] if notes is None else notes
    if not path.exists():
        raise UserError(f"recording not found: {path}")
    try:
        io = NWBHDF5IO(str(path), "r", load_namespaces=True)
        nwb = io.read()
    except Exception as err:  # pynwb/hdmf raise many types for a file that is not NWB
        raise UserError(f"cannot read {path} as NWB: {type(err).__name__}: {err}") from None
    with io:
        if nwb.trials is None or len(nwb.trials) == 0:
            raise UserError(f"{path} has no trials table (start_time and stop_time of every image presentation)")
        starts = np.asarray(nwb.trials["start_time"][:], dtype=np.float64)
        stops = np.asarray(nwb.trials["stop_time"][:], dtype=np.float64)
        columns = set(nwb.trials.colnames)
        stimuli, presentation_image, presentation_times = stimulus_images(nwb, path)
        if "image_index" in columns:
            trial_image = np.asarray(nwb.trials["image_index"][:])
        else:
            trial_image = images_in_windows(presentation_image, presentation_times, starts, stops, path)
        source = response_series(nwb, series, path)
        trial_responses, sheet_shape = window_means(source, starts, stops, path)
        tier = as_tier_names(nwb.trials["tier"][:]) if "tier" in columns else None
    images, note = stimulus_bank(stimuli, square, f"{path.name}: stimulus images")
    if note:
        notes.append(f"images: {note}")
    if not np.issubdtype(trial_image.dtype, np.integer):
        raise UserError(f"{path}: trials column image_index must hold integers, got {trial_image.dtype}")
    if len(trial_image) and (trial_image.min() < 0 or trial_image.max() >= len(images)):
        raise UserError(f"{path}: trials show images {trial_image.min()} to {trial_image.max()} but the stimulus "
                        f"has {len(images)} images")
    tiers = None if tier is None else tiers_by_image(trial_image, tier, str(path))
    return Recording.from_trials(trial_image, trial_responses, images, sheet_shape, tiers=tiers)


def _type(obj) -> str:
    return type(obj).__name__


def stimulus_images(nwb, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images [image, ...], image index of each presentation, presentation times) from the file's stimulus."""
    found = list(nwb.stimulus.values())
    indexed = [s for s in found if _type(s) == "IndexSeries"]
    movies = [s for s in found if _type(s) == "ImageSeries"]
    if indexed:
        index_series = indexed[0]
        container = index_series.indexed_images
        if container is None:
            raise UserError(f"{path}: IndexSeries {index_series.name!r} indexes no Images container")
        images = ordered_images(container)
        index = np.asarray(index_series.data[:])
        if len(index) and (index.min() < 0 or index.max() >= len(images)):
            raise UserError(f"{path}: IndexSeries {index_series.name!r} shows images up to {index.max()} but its "
                            f"Images container holds {len(images)}")
        return images, index.astype(np.int64), np.asarray(index_series.get_timestamps(), dtype=np.float64)
    if movies:
        frames = np.asarray(movies[0].data[:])
        images, frame_image = unique_images(list(frames))
        return images, frame_image, np.asarray(movies[0].get_timestamps(), dtype=np.float64)
    templates = [t for t in nwb.stimulus_template.values() if _type(t) == "Images"]
    if templates:  # images without presentation times: the trials table must say which image each trial showed
        images = ordered_images(templates[0])
        return images, np.zeros(0, np.int64), np.zeros(0)
    raise UserError(f"{path} has no stimulus images (an IndexSeries over Images, or an ImageSeries, in stimulus)")


def ordered_images(container) -> np.ndarray:
    """The images of an Images container, in its order_of_images when it has one."""
    order = getattr(container, "order_of_images", None)
    images = list(order.data[:]) if order is not None else list(container.images.values())
    arrays = [np.asarray(image.data[:]) for image in images]
    if len({a.shape for a in arrays}) > 1:
        raise UserError(f"the images of {container.name!r} differ in shape")
    return np.stack(arrays)


def images_in_windows(presentation_image: np.ndarray, times: np.ndarray, starts: np.ndarray, stops: np.ndarray,
                      path: Path) -> np.ndarray:
    """The image of the first presentation in each trial's [start, stop) window."""
    if len(times) != len(presentation_image):
        raise UserError(f"{path}: {len(presentation_image)} stimulus presentations but {len(times)} timestamps")
    order = np.argsort(times, kind="stable")
    first = np.searchsorted(times[order], starts, side="left")
    inside = (first < len(times)) & (times[order][np.minimum(first, len(times) - 1)] < stops)
    if not inside.all():
        t = int(np.flatnonzero(~inside)[0])
        raise UserError(f"{path}: trial {t} ({starts[t]:g}-{stops[t]:g} s) has no stimulus presentation; add an "
                        "image_index column to the trials table")
    return presentation_image[order][first]


def response_series(nwb, name: str | None, path: Path):
    candidates = {obj.name: obj for obj in nwb.objects.values() if _type(obj) in RESPONSE_TYPES}
    if name is not None:
        if name not in candidates:
            found = ", ".join(sorted(candidates)) or "none"
            raise UserError(f"{path} has no response series {name!r} (found: {found})")
        return candidates[name]
    if not candidates:
        raise UserError(f"{path} has no response series ({', '.join(RESPONSE_TYPES)})")
    if len(candidates) > 1:
        raise UserError(f"{path} has several response series ({', '.join(sorted(candidates))}); choose one with "
                        "--series")
    return next(iter(candidates.values()))


def window_means(series, starts: np.ndarray, stops: np.ndarray, path: Path) -> tuple[np.ndarray, tuple[int, int]]:
    """[trial, pixel] mean of the series over each trial window (NaN rows where a window holds no sample), and the
    sheet shape (H x W for a movie, 1 x n for ROIs)."""
    data = series.data
    if data.dtype.kind not in "fiu":
        raise UserError(f"{path}: response series {series.name!r} must hold numbers, got dtype {data.dtype}")
    if len(data.shape) == 2:
        sheet_shape = (1, int(data.shape[1]))
    elif len(data.shape) == 3:
        sheet_shape = (int(data.shape[1]), int(data.shape[2]))
    else:
        raise UserError(f"{path}: response series {series.name!r} must be [time, roi] or [time, H, W], got "
                        f"{list(data.shape)}")
    times = np.asarray(series.get_timestamps(), dtype=np.float64)
    if len(times) != data.shape[0]:
        raise UserError(f"{path}: response series {series.name!r} has {data.shape[0]} samples but {len(times)} "
                        "timestamps")
    first = np.searchsorted(times, starts, side="left")
    last = np.searchsorted(times, stops, side="left")
    out = np.full((len(starts), sheet_shape[0] * sheet_shape[1]), np.nan, dtype=np.float32)
    for t, (a, b) in enumerate(zip(first, last)):
        if b > a:  # slices read lazily from the file
            out[t] = np.asarray(data[int(a): int(b)], dtype=np.float64).mean(axis=0).ravel()
    return out, sheet_shape
