"""Diversity selectors: k-means++ seeding, k-means nearest-to-centroid, greedy k-center.

Each works from a distance oracle (`.to(j)`, `.sq_norms`, `len`) or a dense matrix and keeps
memory at O(n * features): no n x n or n x (C*d) matrix.
"""

from __future__ import annotations

import numpy as np


def kmeanspp_seeding(distances, n: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (D^2 sampling), first point the one of largest norm as in BADGE.

    `distances` has `.to(j)` -> squared distances of all points to point j, and `.sq_norms`.
    Points already chosen have distance 0 and cannot be drawn again; if every remaining
    distance is 0 (duplicates), the rest is drawn uniformly from the points not yet chosen.
    """
    total = len(distances)
    chosen = [int(np.argmax(distances.sq_norms))]
    closest = distances.to(chosen[0])
    taken = np.zeros(total, dtype=bool)
    taken[chosen[0]] = True
    while len(chosen) < n:
        weights = np.where(taken, 0.0, closest)
        mass = weights.sum()
        if mass <= 0 or not np.isfinite(mass):
            free = np.flatnonzero(~taken)
            rest = rng.choice(free, size=n - len(chosen), replace=False)
            chosen.extend(int(i) for i in rest)
            break
        j = int(rng.choice(total, p=weights / mass))
        chosen.append(j)
        taken[j] = True
        closest = np.minimum(closest, distances.to(j))
    return np.asarray(chosen, dtype=np.int64)


def nearest_to_centroids(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """For each centroid in turn, the nearest point not yet taken (unique indices)."""
    x = np.asarray(vectors, dtype=np.float64)
    x_sq = (x * x).sum(1)
    taken = np.zeros(len(x), dtype=bool)
    picked = []
    for c in np.asarray(centroids, dtype=np.float64):
        dist = x_sq - 2.0 * (x @ c)
        dist[taken] = np.inf
        j = int(np.argmin(dist))
        taken[j] = True
        picked.append(j)
    return np.asarray(picked, dtype=np.int64)


def kmeans_representatives(vectors: np.ndarray, n: int, seed: int) -> np.ndarray:
    """k-means with n clusters, then the point nearest each centroid (BERT-KM, ALPS)."""
    from sklearn.cluster import KMeans

    x = np.asarray(vectors, dtype=np.float64)
    km = KMeans(n_clusters=n, n_init=1, random_state=seed).fit(x)
    return nearest_to_centroids(x, km.cluster_centers_)


def greedy_k_center(vectors: np.ndarray, centers: np.ndarray, n: int, chunk: int = 4096) -> np.ndarray:
    """Core-set greedy k-center: repeatedly take the point farthest from every center so far.

    `vectors` (m, d) are the candidates, `centers` (k, d) the points already labelled
    (may be empty: the first pick is then the point of largest norm).
    """
    x = np.asarray(vectors, dtype=np.float64)
    x_sq = (x * x).sum(1)
    closest = np.full(len(x), np.inf)
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, x.shape[1])
    for start in range(0, len(centers), chunk):
        c = centers[start:start + chunk]
        d = x_sq[:, None] + (c * c).sum(1)[None, :] - 2.0 * (x @ c.T)
        closest = np.minimum(closest, np.maximum(d, 0.0).min(1))
    if not np.isfinite(closest).any():
        closest = x_sq.copy()
    picked = []
    for _ in range(n):
        j = int(np.argmax(closest))
        picked.append(j)
        closest = np.minimum(closest, np.maximum(x_sq + x_sq[j] - 2.0 * (x @ x[j]), 0.0))
        closest[j] = -np.inf
    return np.asarray(picked, dtype=np.int64)
