"""Query strategies: one interface, `strategy.query(model, pool, labeled_idx, n, rng) -> indices`.

`model` is a fitted `ActiveClassifier` (anything with predict_proba / embed / vap), `pool` the
FeaturePool of every candidate, `labeled_idx` the pool indices already labelled. The result holds
n unique pool indices that were not labelled.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from tunelab.active import badge, clustering
from tunelab.active.vap import DEFAULT_EPS, DEFAULT_POWER_ITERATIONS, DEFAULT_XI
from tunelab.errors import UserError


class QueryStrategy(Protocol):
    name: str

    def query(self, model, pool, labeled_idx: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray: ...


def unlabeled_indices(pool_size: int, labeled_idx: np.ndarray, n: int) -> np.ndarray:
    """The pool indices not yet labelled, after checking that n of them can be drawn."""
    labeled = np.zeros(pool_size, dtype=bool)
    labeled[np.asarray(labeled_idx, dtype=np.int64)] = True
    free = np.flatnonzero(~labeled)
    if n < 1:
        raise UserError(f"the query size must be at least 1, got {n}")
    if n > len(free):
        raise UserError(f"cannot query {n} examples: only {len(free)} unlabeled examples are left in the pool")
    return free


def top_n(scores: np.ndarray, candidates: np.ndarray, n: int) -> np.ndarray:
    """The n candidates with the highest scores (ties broken by position, deterministic)."""
    order = np.argsort(-scores, kind="stable")[:n]
    return candidates[order]


def entropy(probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(1)


@dataclasses.dataclass
class RandomSampling:
    name: str = "random"

    def query(self, model, pool, labeled_idx, n, rng):
        free = unlabeled_indices(len(pool), labeled_idx, n)
        return rng.choice(free, size=n, replace=False)


@dataclasses.dataclass
class MaxEntropy:
    name: str = "entropy"

    def query(self, model, pool, labeled_idx, n, rng):
        free = unlabeled_indices(len(pool), labeled_idx, n)
        return top_n(entropy(model.predict_proba(pool, free)), free, n)


@dataclasses.dataclass
class LeastConfidence:
    name: str = "least-confidence"

    def query(self, model, pool, labeled_idx, n, rng):
        free = unlabeled_indices(len(pool), labeled_idx, n)
        return top_n(1.0 - model.predict_proba(pool, free).max(1), free, n)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclasses.dataclass
class BertKMeans:
    """BERT-KM: k-means on the L2-normalised embeddings, the point nearest each centroid."""

    name: str = "bert-km"

    def query(self, model, pool, labeled_idx, n, rng):
        free = unlabeled_indices(len(pool), labeled_idx, n)
        emb = l2_normalise(model.embed(pool, free))
        return free[clustering.kmeans_representatives(emb, n, seed=int(rng.integers(2**31)))]


@dataclasses.dataclass
class Badge:
    """BADGE: k-means++ seeding on gradient embeddings, distances in factorised form."""

    name: str = "badge"

    def query(self, model, pool, labeled_idx, n, rng):
        return self.select(model, pool, unlabeled_indices(len(pool), labeled_idx, n), n, rng)

    def select(self, model, pool, candidates: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """n of the given candidate pool indices (for callers that keep their own unlabelled set)."""
        a, h = badge.gradient_factors(model.predict_proba(pool, candidates), model.embed(pool, candidates))
        return candidates[clustering.kmeanspp_seeding(badge.FactorisedDistances(a, h), n, rng)]


@dataclasses.dataclass
class CoreSet:
    """Core-set (greedy k-center) on the embeddings, the labelled points as initial centers."""

    name: str = "coreset"

    def query(self, model, pool, labeled_idx, n, rng):
        free = unlabeled_indices(len(pool), labeled_idx, n)
        centers = model.embed(pool, np.asarray(labeled_idx, dtype=np.int64))
        return free[clustering.greedy_k_center(model.embed(pool, free), centers, n)]


SELECTORS = ("alps", "badge")
MAGNITUDES = ("smoothness", "grad-norm")


@dataclasses.dataclass
class Vapal:
    """VAPAL: virtual adversarial perturbations of the hidden states as uncertainty representations.

    selector "alps": k-means on the pooled perturbations, the point nearest each centroid.
    selector "badge": k-means++ seeding on the pooled perturbation directions scaled by their
    magnitude (the local smoothness KL(p || p(h + r)) by default).
    """

    selector: str = "badge"
    xi: float = DEFAULT_XI
    eps: float = DEFAULT_EPS
    power_iterations: int = DEFAULT_POWER_ITERATIONS
    magnitude: str = "smoothness"
    name: str = ""

    def __post_init__(self):
        if self.selector not in SELECTORS:
            raise UserError(f"unknown VAPAL selector '{self.selector}': choose one of {', '.join(SELECTORS)}")
        if self.magnitude not in MAGNITUDES:
            raise UserError(f"unknown VAPAL magnitude '{self.magnitude}': choose one of {', '.join(MAGNITUDES)}")
        if self.xi <= 0 or self.eps <= 0 or self.power_iterations < 1:
            raise UserError("VAPAL needs xi > 0, eps > 0 and at least one power iteration")
        self.name = self.name or f"vapal-{self.selector}"

    def representations(self, model, pool, idx: np.ndarray, seed: int) -> np.ndarray:
        """Unit perturbation directions (alps) or directions x magnitude (badge): one (n, d) matrix, in place."""
        out = model.vap(pool, idx, xi=self.xi, eps=self.eps, power_iterations=self.power_iterations, seed=seed)
        reps = out["r"]  # float32 (n, d); scaled in place so selection holds a single n x d matrix
        reps /= np.maximum(np.linalg.norm(reps, axis=1, keepdims=True), 1e-12)
        if self.selector == "badge":
            weight = out["smoothness"] if self.magnitude == "smoothness" else out["grad_norm"]
            reps *= weight[:, None].astype(reps.dtype)
        return reps

    def query(self, model, pool, labeled_idx, n, rng):
        return self.select(model, pool, unlabeled_indices(len(pool), labeled_idx, n), n, rng)

    def select(self, model, pool, candidates: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """n of the given candidate pool indices (for callers that keep their own unlabelled set)."""
        reps = self.representations(model, pool, candidates, seed=int(rng.integers(2**31)))
        if self.selector == "alps":
            picked = clustering.kmeans_representatives(reps, n, seed=int(rng.integers(2**31)))
        else:
            picked = clustering.kmeanspp_seeding(badge.DenseDistances(reps), n, rng)
        return candidates[picked]


STRATEGIES = {
    "random": RandomSampling,
    "entropy": MaxEntropy,
    "least-confidence": LeastConfidence,
    "bert-km": BertKMeans,
    "badge": Badge,
    "coreset": CoreSet,
    "vapal-alps": lambda **kw: Vapal(**{**kw, "selector": "alps"}),
    "vapal-badge": lambda **kw: Vapal(**{**kw, "selector": "badge"}),
    "vapal": Vapal,  # the default selector, chosen by the benchmark (docs/active.md)
}


def make_strategy(name: str, **options) -> QueryStrategy:
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy '{name}': choose one of {', '.join(STRATEGIES)}")
    if options and not name.startswith("vapal"):
        raise UserError(f"strategy '{name}' takes no options ({', '.join(options)})")
    if "selector" in options and name != "vapal":
        raise UserError(f"strategy '{name}' fixes the selector; use --strategy vapal with a selector")
    return STRATEGIES[name](**options)
