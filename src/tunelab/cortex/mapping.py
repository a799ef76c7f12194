"""From a fitted model to a map: preferred images of every pixel (one batched pass over a bank), most-exciting
images by regularised gradient ascent, per-pixel response profiles, functional domains by spatially constrained
clustering, and domain labels from the image statistics of each domain's preferred images."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from tunelab.cortex.features import FAMILIES, image_statistics
from tunelab.errors import UserError


@torch.no_grad()
def top_k_preferred(predict, images: np.ndarray, k: int = 25, batch_size: int = 128, progress: bool = False
                    ) -> tuple[np.ndarray, np.ndarray, float]:
    """Each unit's k highest-response images in one streaming pass (running top-k, never the full matrix).

    predict: images [B, 3, S, S] (torch) -> responses [B, n_units] (torch). Returns (indices [n_units, k],
    responses [n_units, k], images per second)."""
    if k > len(images):
        raise UserError(f"top-k of {k} needs at least {k} images, the bank has {len(images)}")
    best_values = best_indices = None
    starts = range(0, len(images), batch_size)
    if progress:
        from tunelab.progress import track

        starts = track(starts, "ranking the image bank", total=len(starts))
    start_time = time.perf_counter()
    for start in starts:
        batch = torch.as_tensor(images[start: start + batch_size], dtype=torch.float32)
        responses = predict(batch)  # [B, n]
        ids = torch.arange(start, start + len(batch)).unsqueeze(1).expand_as(responses)
        if best_values is not None:
            responses = torch.cat([best_values, responses])
            ids = torch.cat([best_indices, ids])
        best_values, order = responses.topk(min(k, len(responses)), dim=0)
        best_indices = ids.gather(0, order)
    speed = len(images) / (time.perf_counter() - start_time)
    return best_indices.T.numpy(), best_values.T.numpy(), speed


def model_predictor(fitted):
    """A torch function images -> responses in recording units for a FittedModel (eval mode, no sampling)."""
    model = fitted.model.eval()
    offset = torch.as_tensor(fitted.offset, dtype=torch.float32)
    scale = torch.as_tensor(fitted.scale, dtype=torch.float32)
    return lambda batch: offset + scale * model(batch)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    return (image[..., 1:, :] - image[..., :-1, :]).abs().mean() + (image[..., :, 1:] - image[..., :, :-1]).abs().mean()


def most_exciting_image(objective, image_size: int, steps: int = 200, lr: float = 0.05, jitter: int = 2,
                        tv_weight: float = 0.02, norm: float | None = 12.0, blur_sigma: float = 1.0, seed: int = 0
                        ) -> tuple[np.ndarray, list[float]]:
    """Regularised, normalised gradient ascent on an image: random jitter each step, total-variation penalty,
    gradients smoothed by a Gaussian (a simple preconditioner), contrast held within an L2 norm around mid-gray
    (projection), pixels clamped to [0, 1]. objective: images [B, 3, S, S] -> scalar per image to maximise."""
    generator = torch.Generator().manual_seed(seed)
    image = (0.5 + 0.05 * torch.randn(1, 3, image_size, image_size, generator=generator)).requires_grad_(True)
    kernel = _blur_kernel(blur_sigma) if blur_sigma > 0 else None
    trace = []
    for _ in range(steps):
        dy, dx = (torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist() if jitter else (0, 0))
        shifted = torch.roll(image, shifts=(dy, dx), dims=(2, 3))
        activation = objective(shifted).mean()
        loss = -activation + tv_weight * total_variation(image)
        (gradient,) = torch.autograd.grad(loss, image)
        if kernel is not None:
            pad = kernel.shape[-1] // 2
            gradient = F.conv2d(F.pad(gradient, (pad,) * 4, mode="reflect"), kernel.expand(3, 1, -1, -1), groups=3)
        with torch.no_grad():  # normalised descent step: lr is the RMS change per pixel
            image -= lr * gradient / (gradient.pow(2).mean().sqrt() + 1e-12)
            if norm is not None:
                contrast = image - 0.5
                image.copy_(0.5 + contrast * torch.clamp(norm / (contrast.norm() + 1e-8), max=1.0))
            image.clamp_(0, 1)
        trace.append(activation.item())
    with torch.no_grad():
        trace.append(float(objective(image).mean()))
    return image.detach()[0].numpy(), trace


def _blur_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(np.ceil(2 * sigma)))
    x = torch.arange(-radius, radius + 1.0)
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    kernel = torch.outer(g, g)
    return (kernel / kernel.sum()).view(1, 1, *kernel.shape)


def response_profiles(predictions: np.ndarray) -> np.ndarray:
    """Per-unit z-scored responses to a probe image set: [n_units, n_images] (the unit's 'feature profile')."""
    z = (predictions - predictions.mean(0)) / (predictions.std(0) + 1e-8)
    return z.T.astype(np.float32)


def readout_profiles(fitted) -> np.ndarray:
    """Per-unit readout feature vectors scaled to unit length: [n_units, channels]. Each pixel's tuning in the
    core's feature space, free of probe-image sampling and of the response amplitude (gain)."""
    weights = fitted.model.readout.features.detach().numpy().astype(np.float64)
    return (weights / (np.linalg.norm(weights, axis=1, keepdims=True) + 1e-12)).astype(np.float32)


def contiguity_graph(unit_pixels: np.ndarray, sheet_shape: tuple[int, int], radius: float = 2.0):
    """Sparse adjacency of units within `radius` cortical pixels (2 bridges one-pixel vessels)."""
    from sklearn.neighbors import radius_neighbors_graph

    rows, cols = np.divmod(unit_pixels, sheet_shape[1])
    return radius_neighbors_graph(np.stack([rows, cols], 1).astype(float), radius=radius, include_self=False)


def cluster_domains(profiles: np.ndarray, unit_pixels: np.ndarray, sheet_shape: tuple[int, int],
                    n_domains: int | None = None, n_components: int = 10, candidates=range(3, 13),
                    min_domain_fraction: float = 0.02, choose_by: str = "silhouette", seed: int = 0
                    ) -> tuple[np.ndarray, dict]:
    """Spatially contiguous domains: PCA of the profiles, then Ward agglomeration restricted to neighbouring
    pixels. With n_domains None the count is chosen among candidates by `choose_by`: "silhouette" (in PCA space;
    the default: it found the true count on held-out simulation seeds where the merge gap over- or under-split)
    or "merge_gap" (the cut below the largest relative jump in Ward merge height). Counts leaving a domain under min_domain_fraction of the
    pixels are skipped. Returns the map [H, W] (-1 = masked pixel) and a dict with the chosen count and scores."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

    if len(profiles) != len(unit_pixels):
        raise UserError(f"{len(profiles)} profiles for {len(unit_pixels)} pixels")
    if choose_by not in ("merge_gap", "silhouette"):
        raise UserError(f"unknown domain-count criterion {choose_by!r}; choose merge_gap or silhouette")
    components = PCA(n_components=min(n_components, *profiles.shape), random_state=seed).fit_transform(profiles)
    connectivity = contiguity_graph(unit_pixels, sheet_shape)
    tree = AgglomerativeClustering(n_clusters=1, connectivity=connectivity, linkage="ward", compute_distances=True,
                                   compute_full_tree=True).fit(components)
    heights = np.sort(tree.distances_)[::-1]  # heights[k - 1] = merge that takes k clusters to k - 1
    counts = [n_domains] if n_domains else [c for c in candidates if 2 <= c < len(unit_pixels)]
    scores, labelings = {}, {}
    for count in counts:
        labels = _cut_tree(tree.children_, len(components), count)
        if n_domains is None and np.bincount(labels).min() < min_domain_fraction * len(labels):
            continue  # a sliver is not a domain
        labelings[count] = labels
        if choose_by == "merge_gap":
            scores[count] = float(heights[count - 2] / heights[count - 1])  # (k-1 <- k) over (k <- k+1)
        else:
            sample = np.random.default_rng(seed).choice(len(labels), min(len(labels), 3000), replace=False)
            scores[count] = float(silhouette_score(components[sample], labels[sample]))
    if not labelings:
        raise UserError("no domain count gave domains above the minimum size; pass n_domains explicitly")
    chosen = max(scores, key=scores.get) if n_domains is None else n_domains
    domain_map = np.full(sheet_shape[0] * sheet_shape[1], -1, dtype=int)
    domain_map[unit_pixels] = labelings[chosen]
    return domain_map.reshape(sheet_shape), {"n_domains": int(chosen), "criterion": choose_by, "scores": scores}


def _cut_tree(children: np.ndarray, n_samples: int, n_clusters: int) -> np.ndarray:
    """Labels after replaying the first n_samples - n_clusters merges of an agglomerative tree."""
    members = {i: [i] for i in range(n_samples)}
    for step, (a, b) in enumerate(children[: n_samples - n_clusters]):
        members[n_samples + step] = members.pop(int(a)) + members.pop(int(b))
    labels = np.empty(n_samples, dtype=int)
    for label, node in enumerate(sorted(members)):
        labels[members[node]] = label
    return labels


def domain_preferred_images(predictions: np.ndarray, unit_labels: np.ndarray, k: int = 25) -> dict[int, np.ndarray]:
    """Each domain's k images with the highest mean z-scored predicted response over its pixels."""
    z = (predictions - predictions.mean(0)) / (predictions.std(0) + 1e-8)
    return {int(d): np.argsort(-z[:, unit_labels == d].mean(1))[:k] for d in np.unique(unit_labels) if d >= 0}


def label_domains(preferred: dict[int, np.ndarray], bank_images: np.ndarray, stats: dict | None = None
                  ) -> tuple[dict[int, str], dict[int, dict[str, float]]]:
    """Name each domain by the feature family whose statistic is most raised (in bank z-scores) among its
    preferred images. Returns (label per domain, z-score of every family per domain)."""
    stats = stats or image_statistics(bank_images)
    z_stats = {name: (values - values.mean()) / (values.std() + 1e-12) for name, values in stats.items()}
    labels, scores = {}, {}
    for domain, images in preferred.items():
        scores[domain] = {name: float(z_stats[name][images].mean()) for name in FAMILIES if name in z_stats}
        labels[domain] = max(scores[domain], key=scores[domain].get)
    return labels, scores


def plot_domain_map(domain_map: np.ndarray, title: str, names: dict[int, str] | None = None, ax=None):
    """The cortical sheet coloured by domain (masked pixels white), with each domain's name at its centre."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    shown = np.ma.masked_less(domain_map, 0)
    ax.imshow(shown, cmap="tab20", interpolation="nearest", vmin=0, vmax=19)
    for d in np.unique(domain_map[domain_map >= 0]):
        rows, cols = np.nonzero(domain_map == d)
        label = names.get(int(d), str(d)) if names else str(d)
        ax.text(cols.mean(), rows.mean(), label, ha="center", va="center", fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.7, "pad": 1, "linewidth": 0})
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax.figure


def plot_image_grid(rows: dict[str, np.ndarray], per_row: int = 8):
    """One row of images per key ([k, 3, S, S] each)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), per_row, figsize=(per_row * 0.9, len(rows) * 0.95), squeeze=False)
    for r, (name, images) in enumerate(rows.items()):
        for c in range(per_row):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(np.clip(images[c].transpose(1, 2, 0), 0, 1))
        axes[r, 0].set_title(name, fontsize=7, loc="left")
    fig.tight_layout()
    return fig
