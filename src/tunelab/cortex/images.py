"""Image banks: fixed-size natural photo patches cut from photos available offline, or a user's image folder.

Images are float32 arrays [N, 3, S, S] in [0, 1]. Offline sources: the photos that ship inside scikit-image
(`skimage.data`), its LFW face subset (composited into photo backgrounds, so faces appear as objects in scenes),
Debian background-image folders when they exist, and any folder the user names.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from tunelab.errors import UserError

# Photos (not drawings, charts or synthetic test patterns) that ship inside the scikit-image wheel.
SKIMAGE_PHOTOS = [
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "coffee.png", "coins.png", "grass.png",
    "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png", "motorcycle_right.png",
    "retina.jpg", "rocket.jpg", "clock_motion.png", "page.png", "text.png",
]
DEBIAN_BACKGROUND_DIRS = ["/usr/share/backgrounds", "/usr/share/wallpapers", "/usr/share/images/desktop-base"]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@dataclasses.dataclass
class ImageBank:
    images: np.ndarray  # [N, 3, S, S] float32 in [0, 1]
    sources: list[str]  # where each image came from ("chelsea.png@(x,y,scale)", "face:17", a file name)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    def subset(self, indices) -> "ImageBank":
        indices = np.asarray(indices)
        return ImageBank(self.images[indices], [self.sources[i] for i in indices])

    def to_uint8(self) -> np.ndarray:
        return np.round(self.images * 255).astype(np.uint8)

    @classmethod
    def from_uint8(cls, array: np.ndarray, sources: list[str] | None = None) -> "ImageBank":
        return cls(array.astype(np.float32) / 255.0, sources or [f"image:{i}" for i in range(len(array))])


def as_rgb_float(image: np.ndarray) -> np.ndarray:
    """Any photo array (gray, RGB, RGBA, bool, uint8 or float) -> float32 [H, W, 3] in [0, 1]."""
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.float32)
    elif np.issubdtype(image.dtype, np.integer):
        image = image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    image = image.astype(np.float32)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 4:
        image = image[..., :3]
    return np.clip(image, 0.0, 1.0)


def offline_photos() -> dict[str, np.ndarray]:
    """Photos available without a network: scikit-image's sample photos plus any Debian background images."""
    import skimage.data
    import skimage.io

    folder = Path(skimage.data.__file__).parent
    photos = {}
    for name in SKIMAGE_PHOTOS:
        if (folder / name).exists():
            photos[name] = as_rgb_float(skimage.io.imread(folder / name))
    for directory in DEBIAN_BACKGROUND_DIRS:
        for path in sorted(Path(directory).rglob("*")) if Path(directory).is_dir() else []:
            if path.suffix.lower() in {".png", ".jpg", ".jpeg"}:
                try:
                    photos[path.name] = as_rgb_float(skimage.io.imread(path))
                except Exception:  # an unreadable wallpaper is skipped, not fatal
                    continue
    if not photos:
        raise UserError("no offline photos found (scikit-image sample photos missing); pass --images FOLDER")
    return photos


def offline_faces() -> np.ndarray:
    """The 100 face crops of scikit-image's LFW subset, [100, 25, 25] gray in [0, 1]."""
    import skimage.data

    faces = np.asarray(skimage.data.lfw_subset())[:100]  # first 100 are faces, the rest non-faces
    return faces.astype(np.float32)


def resize_square(square: np.ndarray, size: int) -> np.ndarray:
    """[H, H, 3] -> [size, size, 3]: block-average by the integer factor first (anti-aliasing), then bilinear."""
    import torch
    import torch.nn.functional as F

    factor = square.shape[0] // size
    if factor > 1:
        side = factor * (square.shape[0] // factor)
        square = square[:side, :side].reshape(side // factor, factor, side // factor, factor, 3).mean(axis=(1, 3))
    if square.shape[0] == size:
        return np.ascontiguousarray(square, dtype=np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(square, dtype=np.float32)).permute(2, 0, 1)[None]
    out = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out[0].permute(1, 2, 0).numpy()


def random_crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A square crop at a random position and scale (side between size and half the photo), resized to size."""
    height, width = photo.shape[:2]
    largest = max(size, min(height, width) // 2)
    side = int(rng.integers(min(size, min(height, width)), largest + 1))
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    crop = photo[top: top + side, left: left + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    patch = resize_square(np.ascontiguousarray(crop), size)
    return np.clip(patch, 0, 1), f"({top},{left},{side})"


def paste_face(background: np.ndarray, face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Composite a gray face (tinted to a skin-like colour) into a patch at a random central position."""
    from skimage.transform import resize

    size = background.shape[0]
    side = int(rng.integers(size * 3 // 8, size * 5 // 8 + 1))
    face = resize(face, (side, side), preserve_range=True).astype(np.float32)
    tint = np.array([1.0, 0.85, 0.72], dtype=np.float32) * rng.uniform(0.8, 1.1)
    centre = size // 2
    top = int(np.clip(centre - side // 2 + rng.integers(-size // 8, size // 8 + 1), 0, size - side))
    left = int(np.clip(centre - side // 2 + rng.integers(-size // 8, size // 8 + 1), 0, size - side))
    # an opaque ellipse with a soft rim (a quarter of the radius), so the face has no square border and is not
    # washed out by the background (a rim over the whole radius left faces the detector could not find)
    yy, xx = np.mgrid[-1:1:side * 1j, -1:1:side * 1j]
    alpha = np.clip(4 - 4 * np.sqrt((xx / 0.95) ** 2 + (yy / 1.05) ** 2), 0, 1)[..., None]
    out = background.copy()
    region = out[top: top + side, left: left + side]
    out[top: top + side, left: left + side] = alpha * np.clip(face[..., None] * tint, 0, 1) + (1 - alpha) * region
    return out


def deduplicate(images: np.ndarray, threshold: float = 0.97) -> np.ndarray:
    """Indices of images kept after dropping near-duplicates (correlation of 16x16 thumbnails above threshold)."""
    n = len(images)
    thumbs = images.reshape(n, 3, 16, images.shape[-1] // 16, 16, images.shape[-1] // 16).mean(axis=(3, 5))
    thumbs = thumbs.reshape(n, -1)
    thumbs = thumbs - thumbs.mean(axis=1, keepdims=True)
    thumbs /= np.linalg.norm(thumbs, axis=1, keepdims=True) + 1e-6
    kept: list[int] = []
    for start in range(0, n, 512):  # block-wise so the similarity products are matrix multiplies
        block = thumbs[start: start + 512]
        fresh = np.ones(len(block), dtype=bool)
        if kept:
            fresh = (block @ thumbs[kept].T).max(axis=1) <= threshold
        gram = block @ block.T
        block_kept: list[int] = []
        for i in np.flatnonzero(fresh):
            if block_kept and gram[i, block_kept].max() > threshold:
                continue
            block_kept.append(int(i))
        kept.extend(start + i for i in block_kept)
    return np.asarray(kept, dtype=int)


def offline_bank(n_images: int, size: int = 64, seed: int = 0, face_fraction: float = 0.08) -> ImageBank:
    """`n_images` deduplicated natural patches of size x size; a fraction contains a composited face."""
    if size % 16:
        raise UserError(f"image size must be a multiple of 16, got {size}")
    rng = np.random.default_rng(seed)
    photos = offline_photos()
    faces = offline_faces()
    names = sorted(photos)
    images, sources = [], []
    attempts = 0
    while len(images) < n_images:
        batch = []
        for _ in range(max(64, n_images - len(images))):
            name = names[int(rng.integers(len(names)))]
            patch, where = random_crop(photos[name], size, rng)
            source = f"{name}@{where}"
            if rng.random() < face_fraction:
                face_id = int(rng.integers(len(faces)))
                patch = paste_face(patch, faces[face_id], rng)
                source += f"+face:{face_id}"
            batch.append((patch.transpose(2, 0, 1), source))
        candidates = np.stack([b[0] for b in images] + [b[0] for b in batch]) if images else np.stack(
            [b[0] for b in batch])
        pool = images + batch
        keep = deduplicate(candidates)
        images = [pool[i] for i in keep][:n_images]
        attempts += 1
        if attempts > 20:
            raise UserError(f"could not cut {n_images} distinct patches from the offline photos")
    return ImageBank(np.stack([b[0] for b in images]).astype(np.float32), [b[1] for b in images])


def load_image_folder(folder: str | Path, size: int = 64) -> ImageBank:
    """Every image file in a folder (sorted by name), centre-cropped square and resized to size x size."""
    import skimage.io

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"image folder not found: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    images = []
    for path in paths:
        try:
            photo = as_rgb_float(skimage.io.imread(path))
        except Exception as err:
            raise UserError(f"cannot read image {path}: {type(err).__name__}") from None
        side = min(photo.shape[:2])
        top, left = (photo.shape[0] - side) // 2, (photo.shape[1] - side) // 2
        square = photo[top: top + side, left: left + side]
        images.append(resize_square(square, size).transpose(2, 0, 1))
    return ImageBank(np.clip(np.stack(images), 0, 1).astype(np.float32), [p.name for p in paths])


def grating(size: int, orientation: str, period: float = 8.0, colour=(1.0, 1.0, 1.0)) -> np.ndarray:
    """A full-contrast sinusoidal grating [3, S, S] (a probe stimulus); 'horizontal' means horizontal stripes."""
    if orientation not in ("horizontal", "vertical"):
        raise UserError(f"orientation must be 'horizontal' or 'vertical', got {orientation!r}")
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * np.arange(size) / period)
    pattern = np.repeat(wave[:, None], size, 1) if orientation == "horizontal" else np.repeat(wave[None, :], size, 0)
    return (np.asarray(colour, dtype=np.float32)[:, None, None] * pattern[None]).astype(np.float32)
