"""Recordings: responses [image, repeat, pixel] with the images shown, read from NPZ or HDF5 (+ an image folder).

File layout (NPZ keys or HDF5 datasets):
  responses     float [image, repeat, pixel]   required
  images        uint8 [image, 3, S, S]         or pass an image folder (files sorted by name, one per image)
  sheet_shape   int [2] (height, width)        optional; pixels are the sheet in row-major order
  domain_map    int [height, width]            optional ground truth (simulations)
Pixels with any NaN (vessels, dropped frames) are masked and reported, never silently imputed.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from tunelab.cortex.images import ImageBank, load_image_folder
from tunelab.errors import UserError


@dataclasses.dataclass
class Recording:
    responses: np.ndarray  # [image, repeat, pixel] float32, NaN where unusable
    images: ImageBank
    sheet_shape: tuple[int, int]
    domain_map: np.ndarray | None = None  # ground truth, simulations only

    def __post_init__(self):
        validate(self.responses, len(self.images), self.sheet_shape)

    @property
    def n_pixels(self) -> int:
        return self.responses.shape[2]

    @property
    def pixel_mask(self) -> np.ndarray:
        """True for usable pixels (no NaN in any trial)."""
        return ~np.isnan(self.responses).any(axis=(0, 1))

    def masked_report(self) -> str:
        bad = int((~self.pixel_mask).sum())
        return f"{bad} of {self.n_pixels} pixels contain NaN (vessels or dropped frames) and are masked" if bad else ""

    def split(self, test_fraction: float = 0.1, validation_fraction: float = 0.1, seed: int = 0
              ) -> dict[str, np.ndarray]:
        """Image indices for train / validation / test (disjoint, fixed by seed)."""
        order = np.random.default_rng(seed).permutation(len(self.images))
        n_test = max(1, int(round(test_fraction * len(order))))
        n_val = max(1, int(round(validation_fraction * len(order))))
        return {"test": np.sort(order[:n_test]), "validation": np.sort(order[n_test: n_test + n_val]),
                "train": np.sort(order[n_test + n_val:])}


def validate(responses: np.ndarray, n_images: int, sheet_shape: tuple[int, int] | None, min_repeats: int = 2) -> None:
    """One-line errors for arrays that cannot be a recording."""
    if responses.ndim != 3:
        raise UserError(f"responses must be [image, repeat, pixel], got {responses.ndim} dimensions "
                        f"{list(responses.shape)}")
    if responses.shape[0] != n_images:
        raise UserError(f"responses have {responses.shape[0]} images but {n_images} images were given")
    if responses.shape[1] < min_repeats:
        raise UserError(f"responses have {responses.shape[1]} repeat(s) per image; at least {min_repeats} are "
                        "needed for a noise ceiling (FEVE, oracle)")
    if sheet_shape is not None and math.prod(sheet_shape) != responses.shape[2]:
        raise UserError(f"sheet shape {tuple(sheet_shape)} has {math.prod(sheet_shape)} pixels but responses have "
                        f"{responses.shape[2]}")
    usable = ~np.isnan(responses).any(axis=(0, 1))
    if not usable.any():
        raise UserError("every pixel contains NaN: no usable pixel in the responses")
    if np.isinf(responses).any():
        raise UserError("responses contain infinite values")


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
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
    raise UserError(f"unsupported recording format {path.suffix!r}; use .npz, .h5 or .hdf5")


def load_recording(path: str | Path, image_folder: str | Path | None = None) -> Recording:
    """Read a recording file; images come from the file's `images` array or from `image_folder`."""
    arrays = _read_arrays(Path(path))
    if "responses" not in arrays:
        raise UserError(f"{path} has no 'responses' array (found: {', '.join(sorted(arrays)) or 'nothing'})")
    responses = np.asarray(arrays["responses"], dtype=np.float32)
    if image_folder is not None:
        size = int(arrays["images"].shape[-1]) if "images" in arrays else 64
        images = load_image_folder(image_folder, size)
    elif "images" in arrays:
        stored = arrays["images"]
        if stored.ndim != 4 or stored.shape[1] != 3:
            raise UserError(f"'images' must be [image, 3, S, S], got {list(stored.shape)}")
        images = ImageBank.from_uint8(stored) if stored.dtype == np.uint8 else ImageBank(
            stored.astype(np.float32), [f"image:{i}" for i in range(len(stored))])
    else:
        raise UserError(f"{path} has no 'images' array; pass the image folder (--images)")
    if "sheet_shape" in arrays:
        sheet_shape = tuple(int(v) for v in arrays["sheet_shape"])
    else:  # a square sheet when the pixel count allows, else one row
        side = int(round(math.sqrt(responses.shape[2])))
        sheet_shape = (side, side) if side * side == responses.shape[2] else (1, responses.shape[2])
    domain_map = arrays.get("domain_map")
    return Recording(responses, images, sheet_shape, None if domain_map is None else np.asarray(domain_map))


def save_recording(recording: Recording, path: str | Path) -> Path:
    """Write an NPZ (atomically) that load_recording reads back."""
    import io

    from tunelab.io import atomic_write_bytes

    arrays = {"responses": recording.responses.astype(np.float32), "images": recording.images.to_uint8(),
              "sheet_shape": np.asarray(recording.sheet_shape)}
    if recording.domain_map is not None:
        arrays["domain_map"] = recording.domain_map
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())
