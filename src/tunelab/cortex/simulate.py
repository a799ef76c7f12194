"""A simulated cortical sheet whose answer is known: contiguous functional domains, smooth retinotopy, a vessel mask,
and widefield-like responses (tuning + shared and independent noise) to any images, over repeats.

Each domain is tuned to one image feature family (features.py); a pixel's drive is that family's feature map pooled
by its Gaussian receptive field, blended with its neighbours' near domain borders (widefield optics blur tuning).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy import ndimage

from tunelab.cortex.features import FAMILIES, POOL, pooled_feature_maps
from tunelab.errors import UserError

# bumped whenever a sheet's responses change for the same configuration (cached fits keyed on it go stale)
SIMULATOR_VERSION = 3  # 2: faces by a cascade, face in the default, 3 % minimum domain; 3: curved-contour curvature

# every family the V4 map names: colour (two hues), texture, edges (two orientations), curvature, faces
DEFAULT_DOMAINS = (("colour", 0.0), ("colour", 0.6), ("texture", None), ("edges", 0), ("edges", 2), ("curvature", None),
                   ("face", None))


@dataclasses.dataclass
class SheetConfig:
    height: int = 64
    width: int = 64
    image_size: int = 64
    domains: tuple = DEFAULT_DOMAINS  # (family, parameter) per domain
    rf_sigma: float = 8.0  # receptive-field size in image pixels
    retinotopy_span: float = 24.0  # RF centres move this many image pixels across the sheet
    border_blur: float = 1.5  # cortical pixels over which tuning blends across a domain border
    boundary_warp: float = 4.0  # wiggle of domain borders, in cortical pixels
    contrast_weight: float = 0.3  # untuned contrast drive shared by all pixels
    gain_jitter: float = 0.2  # per-pixel gain spread (log-normal sd)
    noise_sd: float = 0.6  # independent noise, per pixel and trial
    shared_noise_sd: float = 0.3  # trial-to-trial fluctuation shared by the whole sheet (two smooth patterns)
    n_vessels: int = 3
    calibration_images: int = 384
    seed: int = 0

    def __post_init__(self):
        self.domains = tuple((str(f), None if p is None else float(p)) for f, p in self.domains)
        for family, _ in self.domains:
            if family not in FAMILIES:
                raise UserError(f"unknown feature family {family!r}; known: {', '.join(FAMILIES)}")
        if self.image_size % 16:
            raise UserError(f"image size must be a multiple of 16, got {self.image_size}")
        if len(self.domains) < 2:
            raise UserError("a sheet needs at least 2 domains")

    @property
    def n_pixels(self) -> int:
        return self.height * self.width

    def domain_names(self) -> list[str]:
        return [family if p is None else f"{family}:{p:g}" for family, p in self.domains]


def smooth_field(shape: tuple[int, int], scale: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), scale, mode="reflect")
    return field / (field.std() + 1e-12)


# every simulated domain covers at least this share of the sheet (above the clustering's 2 % minimum domain size,
# so a domain is never too small to be found by construction)
MIN_DOMAIN_FRACTION = 0.03


def draw_domain_map(config: SheetConfig, rng: np.random.Generator, attempts: int = 20) -> np.ndarray:
    """Contiguous domains, each at least MIN_DOMAIN_FRACTION of the sheet: partitions are drawn until one is (on a
    sheet too small for that, the partition whose smallest domain is largest)."""
    best, best_smallest = None, -1
    for _ in range(attempts):
        labels = draw_partition(config, rng)
        smallest = np.bincount(labels.ravel(), minlength=len(config.domains)).min() / labels.size
        if smallest > best_smallest:
            best, best_smallest = labels, smallest
        if smallest >= MIN_DOMAIN_FRACTION:
            break
    return best


def draw_partition(config: SheetConfig, rng: np.random.Generator) -> np.ndarray:
    """A Voronoi partition of spread-out seeds, borders wiggled by a smooth warp, and any detached fragment handed
    to the neighbouring domain that surrounds it."""
    h, w, k = config.height, config.width, len(config.domains)
    seeds = _spread_points(k, h, w, rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    yy = yy + config.boundary_warp * smooth_field((h, w), min(h, w) / 6, rng)
    xx = xx + config.boundary_warp * smooth_field((h, w), min(h, w) / 6, rng)
    distances = (yy[None] - seeds[:, 0, None, None]) ** 2 + (xx[None] - seeds[:, 1, None, None]) ** 2
    labels = distances.argmin(0)
    return make_contiguous(labels)


def _spread_points(k: int, h: int, w: int, rng: np.random.Generator, candidates: int = 64) -> np.ndarray:
    """Best-candidate sampling: points that keep their distance from each other (no tiny domains)."""
    points = [np.array([rng.uniform(0, h), rng.uniform(0, w)])]
    while len(points) < k:
        options = np.stack([rng.uniform(0, h, candidates), rng.uniform(0, w, candidates)], 1)
        nearest = np.min([np.linalg.norm(options - p, axis=1) for p in points], axis=0)
        points.append(options[nearest.argmax()])
    return np.stack(points)


def make_contiguous(labels: np.ndarray) -> np.ndarray:
    """Keep each label's largest connected piece; smaller pieces take the label most common around them."""
    labels = labels.copy()
    for _ in range(10):
        changed = False
        for value in np.unique(labels):
            pieces, count = ndimage.label(labels == value)
            if count <= 1:
                continue
            sizes = ndimage.sum(np.ones_like(labels), pieces, index=np.arange(1, count + 1))
            for piece in np.flatnonzero(np.arange(1, count + 1) != sizes.argmax() + 1) + 1:
                region = pieces == piece
                ring = ndimage.binary_dilation(region) & ~region
                labels[region] = np.bincount(labels[ring]).argmax()
                changed = True
        if not changed:
            break
    return labels


def draw_vessels(config: SheetConfig, rng: np.random.Generator) -> np.ndarray:
    """Boolean [H, W] mask of a few smooth, thin, curved vessels crossing the sheet."""
    h, w = config.height, config.width
    mask = np.zeros((h, w), dtype=bool)
    for _ in range(config.n_vessels):
        position = np.array([rng.uniform(0, h), 0.0]) if rng.random() < 0.5 else np.array([0.0, rng.uniform(0, w)])
        heading = np.arctan2(*(np.array([h / 2, w / 2]) - position)) + rng.normal(0, 0.4)
        for _ in range(4 * (h + w)):
            heading += rng.normal(0, 0.08)
            position = position + 0.5 * np.array([np.sin(heading), np.cos(heading)])
            y, x = int(position[0]), int(position[1])
            if not (0 <= y < h and 0 <= x < w):
                break
            mask[y, x] = True
    return mask


def retinotopy(config: SheetConfig, rng: np.random.Generator) -> np.ndarray:
    """RF centres [n_pixels, 2] (row, column in image pixels): a smooth rotated linear map plus a small warp."""
    h, w = config.height, config.width
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    u, v = yy / max(h - 1, 1) - 0.5, xx / max(w - 1, 1) - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    rows = config.retinotopy_span * (np.cos(angle) * u - np.sin(angle) * v)
    cols = config.retinotopy_span * (np.sin(angle) * u + np.cos(angle) * v)
    rows = rows + 1.0 * smooth_field((h, w), h / 4, rng)
    cols = cols + 1.0 * smooth_field((h, w), w / 4, rng)
    centre = (config.image_size - 1) / 2
    return np.stack([rows.ravel() + centre, cols.ravel() + centre], 1)


def receptive_fields(centres: np.ndarray, sigma: float, image_size: int) -> np.ndarray:
    """Gaussian RF weights on the pooled feature grid, [grid_pixels, n_pixels], each column summing to 1."""
    grid = image_size // POOL
    coords = (np.arange(grid) + 0.5) * POOL - 0.5  # pooled-bin centres in image pixels
    gy = np.exp(-(coords[None, :] - centres[:, 0:1]) ** 2 / (2 * sigma ** 2))  # [n_pixels, grid]
    gx = np.exp(-(coords[None, :] - centres[:, 1:2]) ** 2 / (2 * sigma ** 2))
    weights = (gy[:, :, None] * gx[:, None, :]).reshape(len(centres), -1)
    return (weights / weights.sum(1, keepdims=True)).T.astype(np.float32)


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


class CorticalSheet:
    """The ground truth: `domain_map`, `vessel_mask`, `rf_centres`, `tuning_weights`; `signal(images)` is the
    noise-free response and `record(images, repeats, seed)` a new imaging session of it."""

    def __init__(self, config: SheetConfig | None = None):
        self.config = config = config or SheetConfig()
        rng = np.random.default_rng(config.seed)
        self.domain_map = draw_domain_map(config, rng)
        self.vessel_mask = draw_vessels(config, rng)
        self.rf_centres = retinotopy(config, rng)
        self.rf_weights = receptive_fields(self.rf_centres, config.rf_sigma, config.image_size)
        one_hot = np.stack([(self.domain_map == d).astype(float) for d in range(len(config.domains))])
        blurred = np.stack([ndimage.gaussian_filter(m, config.border_blur, mode="nearest") for m in one_hot])
        self.tuning_weights = (blurred / blurred.sum(0, keepdims=True)).reshape(len(config.domains), -1)
        self.gain = np.exp(config.gain_jitter * smooth_field((config.height, config.width), 3.0, rng)).ravel()
        self.shared_patterns = np.stack([smooth_field((config.height, config.width), config.height / 5, rng).ravel()
                                         for _ in range(2)]) / np.sqrt(2)
        self._specs = list(config.domains) + [("contrast", None)]

    @property
    def n_pixels(self) -> int:
        return self.config.n_pixels

    @functools.cached_property
    def _calibration(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd of each family's pooled drive over a fixed photo set, so that families weigh alike."""
        from tunelab.cortex.images import offline_bank

        bank = offline_bank(self.config.calibration_images, self.config.image_size, seed=self.config.seed + 7919)
        drives = self._raw_drives(bank.images)  # [N, families, pixels]
        return drives.mean(0, keepdims=True)[0], drives.std(0, keepdims=True)[0] + 1e-8

    def _raw_drives(self, images: np.ndarray) -> np.ndarray:
        maps = pooled_feature_maps(images, self._specs)  # [N, families, g, g]
        flat = maps.reshape(len(images), len(self._specs), -1)
        return np.einsum("nfg,gp->nfp", flat, self.rf_weights, optimize=True)

    def signal(self, images: np.ndarray) -> np.ndarray:
        """Noise-free responses [n_images, n_pixels] (vessel pixels included)."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[-1] != self.config.image_size:
            raise UserError(f"images must be [N, 3, {self.config.image_size}, {self.config.image_size}], "
                            f"got {list(images.shape)}")
        mean, sd = self._calibration
        z = (self._raw_drives(images) - mean) / sd  # [N, families, pixels]
        tuned = np.einsum("ndp,dp->np", z[:, :-1], self.tuning_weights)
        drive = tuned + self.config.contrast_weight * z[:, -1]
        return (self.gain * softplus(1.5 * drive - 1.0)).astype(np.float32)

    def record(self, images: np.ndarray, repeats: int, seed: int, mask_vessels: bool = True) -> np.ndarray:
        """A new imaging session: [n_images, repeats, n_pixels]; vessel pixels are NaN (no usable signal)."""
        rng = np.random.default_rng(seed)
        signal = self.signal(images)
        n = len(signal)
        shared = rng.standard_normal((n, repeats, 2)) @ self.shared_patterns * self.config.shared_noise_sd
        noise = rng.standard_normal((n, repeats, self.n_pixels)) * self.config.noise_sd
        responses = (signal[:, None, :] + shared + noise).astype(np.float32)
        if mask_vessels:
            responses[:, :, self.vessel_mask.ravel()] = np.nan
        return responses

    def domain_family(self, domain: int) -> str:
        return self.config.domains[domain][0]
