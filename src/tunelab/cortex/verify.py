"""Verification: show each domain's predicted preferred images in a new imaging session (the simulator, or a user's
recorded session) and measure whether each domain answers its own images more than the rest of the sheet does;
on simulations, compare the recovered map with the true one."""

from __future__ import annotations

import numpy as np

from tunelab.errors import UserError


def load_session(path, n_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """A recorded verification session (.npz/.h5): responses [image, repeat, pixel] to the map's
    verification_images.npz, and set_of_image [image]."""
    from tunelab.cortex.recording import read_arrays

    arrays = read_arrays(path)
    if "responses" not in arrays or "set_of_image" not in arrays:
        raise UserError(f"{path} needs 'responses' [image, repeat, pixel] and 'set_of_image' [image]")
    responses, set_of_image = np.asarray(arrays["responses"]), np.asarray(arrays["set_of_image"])
    if responses.dtype.kind not in "fiu" or set_of_image.dtype.kind not in "iu":
        raise UserError(f"{path}: responses must be numbers and set_of_image integers, got {responses.dtype} and "
                        f"{set_of_image.dtype}")
    if responses.ndim != 3 or responses.shape[2] != n_pixels:
        raise UserError(f"session responses {list(responses.shape)} do not match the map's {n_pixels} pixels")
    return responses.astype(np.float32), set_of_image.astype(int)


def set_responses(session: np.ndarray, set_of_image: np.ndarray) -> np.ndarray:
    """Mean response of every pixel to every image set: session [image, repeat, pixel] -> [n_sets, pixel]."""
    if len(set_of_image) != session.shape[0]:
        raise UserError(f"the session has {session.shape[0]} images but {len(set_of_image)} set assignments")
    averaged = session.mean(axis=1)  # NaN (masked) pixels stay NaN and are excluded downstream
    return np.stack([averaged[set_of_image == s].mean(0) for s in range(int(set_of_image.max()) + 1)])


def domain_selectivity(per_set: np.ndarray, domain_map: np.ndarray, set_domains: list[int]) -> dict:
    """For each image set (the preferred images of domain d): d' between the domain's pixels and all other pixels,
    and whether d's pixels answer their own set more than any other set (after z-scoring each pixel over sets).

    per_set [n_sets, pixel]; domain_map [H, W] (-1 masked); set_domains[s] = the domain set s was made for."""
    labels = domain_map.ravel()
    usable = (labels >= 0) & ~np.isnan(per_set).any(0)
    z = (per_set - per_set.mean(0)) / (per_set.std(0) + 1e-8)  # pixel's relative preference across sets
    rows = []
    for s, domain in enumerate(set_domains):
        inside = usable & (labels == domain)
        outside = usable & (labels != domain)
        if not inside.any() or not outside.any():
            continue
        a, b = per_set[s, inside], per_set[s, outside]
        d_prime = (a.mean() - b.mean()) / np.sqrt(0.5 * (a.var() + b.var()) + 1e-12)
        own = z[s, inside].mean()
        others = [z[t, inside].mean() for t in range(len(set_domains)) if t != s]
        rows.append({"domain": int(domain), "d_prime": float(d_prime), "inside": float(a.mean()),
                     "outside": float(b.mean()), "prefers_own_set": bool(own > max(others, default=-np.inf))})
    return {"per_domain": rows,
            "median_d_prime": float(np.median([r["d_prime"] for r in rows])) if rows else float("nan"),
            "fraction_preferring_own_set": float(np.mean([r["prefers_own_set"] for r in rows])) if rows else 0.0}


def map_agreement(true_map: np.ndarray, recovered_map: np.ndarray) -> float:
    """Adjusted Rand index over pixels that are usable in the recovered map."""
    from sklearn.metrics import adjusted_rand_score

    if true_map.shape != recovered_map.shape:
        raise UserError(f"map shapes differ: {true_map.shape} vs {recovered_map.shape}")
    usable = recovered_map >= 0
    return float(adjusted_rand_score(true_map[usable], recovered_map[usable]))


def preferred_feature_accuracy(true_map: np.ndarray, true_families: list[str], recovered_map: np.ndarray,
                               recovered_labels: dict[int, str]) -> float:
    """Fraction of usable pixels whose recovered domain's label equals the feature family they are truly tuned to."""
    usable = recovered_map >= 0
    truth = np.asarray(true_families)[true_map[usable]]
    guess = np.asarray([recovered_labels.get(int(d), "") for d in recovered_map[usable]])
    return float((truth == guess).mean())


def in_silico_session(sheet, domain_images: dict[int, np.ndarray], repeats: int = 4, seed: int = 12345
                      ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """New imaging of the simulated sheet with each domain's images: (session [image, repeat, pixel],
    set index of each image, domain of each set)."""
    set_domains = sorted(domain_images)
    images = np.concatenate([domain_images[d] for d in set_domains])
    set_of_image = np.concatenate([np.full(len(domain_images[d]), s) for s, d in enumerate(set_domains)])
    return sheet.record(images, repeats, seed), set_of_image, set_domains


def family_confusion(true_map: np.ndarray, true_families: list[str], recovered_map: np.ndarray,
                     recovered_labels: dict[int, str]) -> dict[str, dict[str, int]]:
    """Pixel counts of each true family (rows) under each recovered label (columns), over usable pixels;
    "unlabelled" counts pixels whose recovered domain has no label."""
    usable = recovered_map >= 0
    truth = np.asarray(true_families)[true_map[usable]]
    guess = np.asarray([recovered_labels.get(int(d), "unlabelled") for d in recovered_map[usable]])
    table: dict[str, dict[str, int]] = {}
    for family in dict.fromkeys(true_families):
        counts = np.unique(guess[truth == family], return_counts=True)
        table[family] = {str(label): int(n) for label, n in zip(*counts)}
    return table


def recovered_families(true_map: np.ndarray, true_families: list[str], recovered_map: np.ndarray,
                       recovered_labels: dict[int, str]) -> dict[int, dict]:
    """For each true domain: the recovered label covering most of its usable pixels, that label's share, and
    whether it names the domain's family."""
    out = {}
    for domain, family in enumerate(true_families):
        inside = (true_map == domain) & (recovered_map >= 0)
        labels = [recovered_labels.get(int(d), "unlabelled") for d in recovered_map[inside]]
        if not labels:
            out[domain] = {"family": family, "label": None, "share": 0.0, "recovered": False}
            continue
        names, counts = np.unique(labels, return_counts=True)
        best = int(counts.argmax())
        out[domain] = {"family": family, "label": str(names[best]), "share": float(counts[best] / counts.sum()),
                       "recovered": bool(names[best] == family)}
    return out
