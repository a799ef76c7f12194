"""Recordings: the response of every pixel on every trial, the image shown on each trial, and the images.

A recording is a list of trials: `trial_image[t]` (which image trial t showed) and `trial_responses[t, pixel]`.
Images may be shown any number of times (natural-image sets show most images once and a test set many times):
the fit uses every trial (trial-averaged per image), the noise ceilings (FEVE, oracle) use the repeated images.
The dense form `[image, repeat, pixel]` of the older layout is one special case (every image shown equally often).

Readers (`load_recording` picks one from the path; docs/cortex.md describes each):
  .npz / .h5 / .hdf5   arrays below
  .nwb                 formats/nwb.py (stimulus images + a ROI response series or a widefield movie, trial times)
  a folder             formats/sensorium.py (neuralpredictors / Sensorium file tree: per-trial .npy files, tiers)

NPZ keys or HDF5 datasets:
  responses     float [image, repeat, pixel]   or [trial, pixel] together with trial_image
  trial_image   int [trial]                    optional: the image index of each trial
  images        [image, 3, S, S] or grayscale [image, H, W] (uint8, or float in [0, 1])  or an image folder
  sheet_shape   int [2] (height, width)        optional; pixels are the sheet in row-major order
  domain_map    int [height, width]            optional ground truth (simulations)
NaN marks a missing value per trial: a trial with every pixel NaN is a missing trial and is dropped; a pixel NaN on
some trials is left out of those trials only; a pixel missing on more than half the trials (vessels) is masked and
reported. Nothing is imputed.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from tunelab.cortex.images import ImageBank, load_image_folder, resize_square
from tunelab.errors import UserError

MIN_REPEATS = 2  # a noise ceiling needs an image shown at least twice
SQUARE_MODES = ("pad", "crop")
TIERS = ("train", "validation", "test")


class Recording:
    """Trials (image index, responses) plus the images; `Recording(responses [image, repeat, pixel], ...)` keeps the
    dense constructor, `Recording.from_trials(...)` takes any number of trials per image."""

    def __init__(self, responses: np.ndarray, images: ImageBank, sheet_shape: tuple[int, int],
                 domain_map: np.ndarray | None = None):
        if responses.ndim != 3:
            raise UserError(f"responses must be [image, repeat, pixel], got {responses.ndim} dimensions "
                            f"{list(responses.shape)}")
        if responses.shape[0] != len(images):
            raise UserError(f"responses have {responses.shape[0]} images but {len(images)} images were given")
        if responses.shape[1] < MIN_REPEATS:
            raise UserError(f"responses have {responses.shape[1]} repeat(s) per image; at least {MIN_REPEATS} are "
                            "needed for a noise ceiling (FEVE, oracle)")
        n_images, repeats, n_pixels = responses.shape
        # the trial arrays are views of the dense one, so writing into `responses` writes into the trials
        self._init(np.repeat(np.arange(n_images), repeats), responses.reshape(n_images * repeats, n_pixels), images,
                   sheet_shape, domain_map, None)
        self._dense = responses

    @classmethod
    def from_trials(cls, trial_image: np.ndarray, trial_responses: np.ndarray, images: ImageBank,
                    sheet_shape: tuple[int, int], domain_map: np.ndarray | None = None,
                    tiers: dict[str, np.ndarray] | None = None) -> "Recording":
        """`trial_image` [trial] image index of each trial, `trial_responses` [trial, pixel]; `tiers` optionally
        fixes the train / validation / test images (image indices), as data sets with tiers do."""
        self = cls.__new__(cls)
        trial_image = np.asarray(trial_image)
        trial_responses = np.asarray(trial_responses)
        if trial_responses.ndim != 2:
            raise UserError(f"trial responses must be [trial, pixel], got shape {list(trial_responses.shape)}")
        if trial_image.shape != (len(trial_responses),):
            raise UserError(f"{len(trial_responses)} trials of responses but {trial_image.size} trial image indices")
        if not np.issubdtype(trial_image.dtype, np.integer):
            raise UserError(f"trial image indices must be integers, got {trial_image.dtype}")
        if len(trial_image) and (trial_image.min() < 0 or trial_image.max() >= len(images)):
            raise UserError(f"trial image indices run from {trial_image.min()} to {trial_image.max()} but there are "
                            f"{len(images)} images")
        self._init(trial_image.astype(np.int64), trial_responses, images, sheet_shape, domain_map, tiers)
        self._dense = None
        return self

    def _init(self, trial_image, trial_responses, images, sheet_shape, domain_map, tiers) -> None:
        if not np.issubdtype(trial_responses.dtype, np.number) or np.issubdtype(trial_responses.dtype,
                                                                                np.complexfloating):
            raise UserError(f"responses must be real numbers, got dtype {trial_responses.dtype}")
        if trial_responses.dtype != np.float32:
            trial_responses = trial_responses.astype(np.float32)
        self.images = images
        self.sheet_shape = tuple(int(v) for v in sheet_shape)
        self.domain_map = domain_map
        present = ~np.isnan(trial_responses).all(axis=1)  # all-NaN rows are missing trials
        self.missing_trials = int((~present).sum())
        self.trial_image = trial_image if present.all() else trial_image[present]
        self.trial_responses = trial_responses if present.all() else trial_responses[present]
        validate_trials(self.trial_image, self.trial_responses, self.sheet_shape)
        self.tiers = None if tiers is None else check_tiers(tiers, self.repeats_per_image())

    @property
    def responses(self) -> np.ndarray:
        """The dense [image, repeat, pixel] form; only for recordings that show every image equally often."""
        if self._dense is None:
            counts = self.repeats_per_image()
            if counts.min() != counts.max():
                raise UserError(f"images are shown {counts.min()} to {counts.max()} times; there is no dense "
                                "[image, repeat, pixel] form (use trial_responses / repeated())")
            order = np.argsort(self.trial_image, kind="stable")
            self._dense = self.trial_responses[order].reshape(len(self.images), counts[0], self.n_pixels)
        return self._dense

    @property
    def n_pixels(self) -> int:
        return self.trial_responses.shape[1]

    @property
    def n_trials(self) -> int:
        return len(self.trial_image)

    def repeats_per_image(self) -> np.ndarray:
        return np.bincount(self.trial_image, minlength=len(self.images))

    @property
    def pixel_mask(self) -> np.ndarray:
        """True for usable pixels: present (not NaN) on at least half the trials."""
        return np.isnan(self.trial_responses).mean(axis=0) <= 0.5

    def masked_report(self) -> str:
        notes = []
        bad = int((~self.pixel_mask).sum())
        if bad:
            notes.append(f"{bad} of {self.n_pixels} pixels contain NaN on more than half the trials (vessels or "
                         "dropped frames) and are masked")
        if self.missing_trials:
            notes.append(f"{self.missing_trials} trials are missing (all NaN) and dropped")
        return "; ".join(notes)

    def mean_responses(self) -> np.ndarray:
        """[image, pixel] float64: each image's mean over its trials where the pixel is present (NaN if none)."""
        if self._dense is not None:  # the same means, without sorting trials (a dense file can be large)
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an image where the pixel is missing is NaN
                return np.nanmean(self._dense, axis=1, dtype=np.float64)
        order = np.argsort(self.trial_image, kind="stable")
        shown, starts = np.unique(self.trial_image[order], return_index=True)
        values = self.trial_responses[order].astype(np.float64)
        present = ~np.isnan(values)
        sums = np.add.reduceat(np.where(present, values, 0.0), starts, axis=0)  # one block of rows per image
        counts = np.add.reduceat(present.astype(np.float64), starts, axis=0)
        means = np.full((len(self.images), self.n_pixels), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[shown] = sums / np.where(counts > 0, counts, np.nan)
        return means

    def repeated(self, image_indices: np.ndarray) -> np.ndarray:
        """Dense [image, repeat, pixel] of the given images (each shown >= 2 times) for the noise-ceiling metrics:
        every image contributes its first r trials, r the fewest any of them has."""
        image_indices = np.asarray(image_indices)
        counts = self.repeats_per_image()[image_indices]
        if len(image_indices) == 0 or counts.min() < MIN_REPEATS:
            raise UserError(f"the noise ceiling needs every evaluated image shown >= {MIN_REPEATS} times; "
                            f"{int((counts < MIN_REPEATS).sum())} of {len(image_indices)} are not")
        repeats = int(counts.min())
        order = np.argsort(self.trial_image, kind="stable")
        starts = np.searchsorted(self.trial_image[order], image_indices)
        rows = order[starts[:, None] + np.arange(repeats)[None]]
        return self.trial_responses[rows]

    def split(self, test_fraction: float = 0.1, validation_fraction: float = 0.1, seed: int = 0
              ) -> dict[str, np.ndarray]:
        """Image indices for train / validation / test (disjoint, fixed by seed; the file's tiers when it has them).
        Test images are drawn from the repeated images (the noise ceiling needs repeats); unshown images are left
        out."""
        if self.tiers is not None:
            return dict(self.tiers)
        counts = self.repeats_per_image()
        order = np.random.default_rng(seed).permutation(len(self.images))
        n_test = max(1, int(round(test_fraction * len(order))))
        n_val = max(1, int(round(validation_fraction * len(order))))
        order = order[counts[order] > 0]
        is_test = np.zeros(len(order), dtype=bool)
        is_test[np.flatnonzero(counts[order] >= MIN_REPEATS)[:n_test]] = True
        rest = order[~is_test]
        if len(rest) < 2:
            raise UserError(f"{len(order)} shown images are too few to split into train, validation and test")
        n_val = min(n_val, len(rest) - 1)
        return {"test": np.sort(order[is_test]), "validation": np.sort(rest[:n_val]), "train": np.sort(rest[n_val:])}


def validate_trials(trial_image: np.ndarray, trial_responses: np.ndarray, sheet_shape: tuple[int, int]) -> None:
    """One-line errors for trials that cannot be a recording."""
    if math.prod(sheet_shape) != trial_responses.shape[1]:
        raise UserError(f"sheet shape {tuple(sheet_shape)} has {math.prod(sheet_shape)} pixels but responses have "
                        f"{trial_responses.shape[1]}")
    if len(trial_image) == 0 or np.isnan(trial_responses).mean(axis=0).min() > 0.5:
        raise UserError("every pixel contains NaN on more than half the trials: no usable pixel in the responses")
    if np.isinf(trial_responses).any():
        raise UserError("responses contain infinite values")
    if np.bincount(trial_image).max() < MIN_REPEATS:
        raise UserError(f"no image is shown more than once; at least {MIN_REPEATS} are needed for a noise ceiling "
                        "(FEVE, oracle) on some images")


def check_tiers(tiers: dict[str, np.ndarray], counts: np.ndarray) -> dict[str, np.ndarray]:
    """Tiers given by a data set: train, validation and test present, non-empty and disjoint; test images repeated."""
    missing = [name for name in TIERS if name not in tiers or len(tiers[name]) == 0]
    if missing:
        raise UserError(f"the recording has no {' or '.join(missing)} images (tiers found: "
                        f"{', '.join(k for k in tiers if len(tiers[k])) or 'none'})")
    tiers = {name: np.sort(np.asarray(tiers[name], dtype=np.int64)) for name in TIERS}
    together = np.concatenate(list(tiers.values()))
    if len(np.unique(together)) != len(together):
        raise UserError("an image belongs to more than one of the train, validation and test tiers")
    once = int((counts[tiers["test"]] < MIN_REPEATS).sum())
    if once:
        raise UserError(f"{once} of {len(tiers['test'])} test images are shown once; the test tier needs repeats "
                        "for a noise ceiling")
    return tiers


# --------------------------------------------------------------------------------------------- stimuli

def stimulus_bank(stimuli: np.ndarray, square: str = "pad", where: str = "images") -> tuple[ImageBank, str]:
    """Any stimulus array -> an ImageBank [N, 3, S, S] in [0, 1], plus a note on what was changed ("" if nothing).

    Accepts [N, H, W] grayscale, [N, 1|3, H, W] or [N, H, W, 1|3]; uint8, or floats in [0, 1] or [0, 255].
    Grayscale is repeated into 3 channels; a non-square image is padded with its mean grey (`square="pad"`, keeps
    every pixel the animal saw) or centre-cropped (`"crop"`); a side that is not a multiple of 16 is resized to the
    nearest one (the model and the image banks need it)."""
    if square not in SQUARE_MODES:
        raise UserError(f"unknown square mode {square!r}; choose pad or crop")
    array = np.asarray(stimuli)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype,
                                                                                           np.floating)):
        raise UserError(f"{where} must be uint8 or float, got dtype {array.dtype}")
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[1] not in (1, 3) and array.shape[-1] in (1, 3):
        array = array.transpose(0, 3, 1, 2)
    if array.ndim != 4 or array.shape[1] not in (1, 3) or len(array) == 0:
        raise UserError(f"{where} must be [image, H, W], [image, 1|3, H, W] or [image, H, W, 1|3], got "
                        f"{list(np.shape(stimuli))}")
    array = to_unit_range(array, where)
    notes = []
    if array.shape[1] == 1:
        array = np.repeat(array, 3, axis=1)
        notes.append("grayscale repeated into 3 channels")
    height, width = array.shape[2:]
    if height != width:
        array = pad_square(array) if square == "pad" else crop_square(array)
        notes.append(f"{height} x {width} {'padded with mean grey' if square == 'pad' else 'centre-cropped'} to "
                     f"{array.shape[2]} x {array.shape[3]}")
    side = array.shape[-1]
    target = max(16, int(round(side / 16)) * 16)
    if target != side:
        array = np.stack([resize_square(image.transpose(1, 2, 0), target).transpose(2, 0, 1) for image in array])
        notes.append(f"resized to {target} x {target}")
    images = np.clip(array, 0, 1).astype(np.float32)
    return ImageBank(images, [f"image:{i}" for i in range(len(images))]), "; ".join(notes)


def to_unit_range(array: np.ndarray, where: str) -> np.ndarray:
    if np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 255:
            raise UserError(f"{where}: integer images must lie in 0-255, got {array.min()} to {array.max()}")
        return array.astype(np.float32) / 255.0
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise UserError(f"{where} contain NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 255:
        raise UserError(f"{where}: float images must lie in [0, 1] or [0, 255], got {low:.3g} to {high:.3g}")
    return array / 255.0 if high > 1 else array


def pad_square(array: np.ndarray) -> np.ndarray:
    """[N, C, H, W] -> [N, C, S, S], S = max(H, W), the image centred on its own mean grey."""
    n, c, h, w = array.shape
    side = max(h, w)
    out = np.broadcast_to(array.mean(axis=(2, 3), keepdims=True), (n, c, side, side)).copy()
    top, left = (side - h) // 2, (side - w) // 2
    out[:, :, top: top + h, left: left + w] = array
    return out


def crop_square(array: np.ndarray) -> np.ndarray:
    h, w = array.shape[2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return array[:, :, top: top + side, left: left + side]


def default_sheet(n_pixels: int) -> tuple[int, int]:
    """A square sheet when the pixel count allows, else one row."""
    side = int(round(math.sqrt(n_pixels)))
    return (side, side) if side * side == n_pixels else (1, n_pixels)


# --------------------------------------------------------------------------------------------- files

def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an NPZ file or every top-level dataset of an HDF5 file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"recording not found: {path}")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
        except (ValueError, OSError) as err:
            raise UserError(f"cannot read {path} as NPZ: {err}") from None
    if path.suffix in {".h5", ".hdf5"}:
        import h5py

        try:
            with h5py.File(path, "r") as handle:
                return {key: handle[key][()] for key in handle.keys() if isinstance(handle[key], h5py.Dataset)}
        except OSError as err:
            raise UserError(f"cannot read {path} as HDF5: {err}") from None
    raise UserError(f"unsupported recording format {path.suffix!r}; use .npz, .h5, .hdf5, .nwb or a "
                    "Sensorium/neuralpredictors folder")


def load_recording(path: str | Path, image_folder: str | Path | None = None, square: str = "pad",
                   series: str | None = None, notes: list[str] | None = None) -> Recording:
    """Read a recording (format from the path: .npz/.h5/.hdf5, .nwb, or a Sensorium/neuralpredictors folder).
    Images come from the file or from `image_folder`; `square` says how non-square stimuli are made square;
    `series` names the NWB response series when a file holds several. What was changed on the way (grayscale,
    padding, dropped trials) is appended to `notes`."""
    path = Path(path)
    notes = [] if notes is None else notes
    if image_folder is not None and (path.is_dir() or path.suffix == ".nwb"):
        raise UserError(f"{path} carries its own images; an image folder is only for .npz/.h5 recordings")
    if series is not None and path.suffix != ".nwb":
        raise UserError(f"a response series name is only for .nwb recordings, not {path}")
    if path.is_dir():
        from tunelab.cortex.formats.sensorium import read_sensorium

        return read_sensorium(path, square, notes)
    if path.suffix == ".nwb":
        from tunelab.cortex.formats.nwb import read_nwb

        return read_nwb(path, square, series, notes)
    arrays = read_arrays(path)
    if "responses" not in arrays:
        raise UserError(f"{path} has no 'responses' array (found: {', '.join(sorted(arrays)) or 'nothing'})")
    responses = np.asarray(arrays["responses"])
    if image_folder is not None:
        stored = arrays.get("images")
        size = int(stored.shape[-1]) if stored is not None and stored.ndim == 4 and stored.shape[1] in (1, 3) else 64
        images = load_image_folder(image_folder, size)
    elif "images" in arrays:
        images, note = stimulus_bank(arrays["images"], square, f"{path.name}: 'images'")
        if note:
            notes.append(f"images: {note}")
    else:
        raise UserError(f"{path} has no 'images' array; pass the image folder (--images)")
    n_pixels = responses.shape[-1] if responses.ndim else 0
    sheet_shape = tuple(int(v) for v in arrays["sheet_shape"]) if "sheet_shape" in arrays else default_sheet(n_pixels)
    domain_map = arrays.get("domain_map")
    domain_map = None if domain_map is None else np.asarray(domain_map)
    if "trial_image" in arrays:
        return Recording.from_trials(arrays["trial_image"], responses, images, sheet_shape, domain_map)
    if not np.issubdtype(responses.dtype, np.number):
        raise UserError(f"responses must be real numbers, got dtype {responses.dtype}")
    return Recording(responses.astype(np.float32), images, sheet_shape, domain_map)


def save_recording(recording: Recording, path: str | Path) -> Path:
    """Write an NPZ (atomically) that load_recording reads back: the dense layout when every image is shown
    equally often, else the trial layout (responses [trial, pixel] + trial_image)."""
    import io

    from tunelab.io import atomic_write_bytes

    counts = recording.repeats_per_image()
    if counts.min() == counts.max():
        arrays = {"responses": recording.responses.astype(np.float32)}
    else:
        arrays = {"responses": recording.trial_responses.astype(np.float32), "trial_image": recording.trial_image}
    arrays |= {"images": recording.images.to_uint8(), "sheet_shape": np.asarray(recording.sheet_shape)}
    if recording.domain_map is not None:
        arrays["domain_map"] = recording.domain_map
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())
