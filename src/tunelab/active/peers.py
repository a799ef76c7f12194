"""small-text's query strategies behind our `query(model, pool, labeled_idx, n, rng)` interface.

small-text calls `strategy.query(clf, dataset, indices_unlabeled, indices_labeled, y, n)` and asks
the classifier for `predict_proba(dataset[idx])` and `embed(dataset[idx], return_proba=True)`.
Here the "dataset" is the array of pool indices, so `dataset[idx]` is again a set of pool indices
and the adapter answers from our classifier: both libraries select with the same model, features
and seeds.  small-text draws from numpy's global generator; it is seeded from `rng` per query.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tunelab.active.strategies import unlabeled_indices
from tunelab.errors import UserError

PEER_STRATEGIES = ("random", "entropy", "badge", "embedding-kmeans")


class SmallTextClassifier:
    """What small-text needs of a classifier, answered by an ActiveClassifier over a FeaturePool."""

    def __init__(self, model, pool):
        self.model, self.pool = model, pool

    def predict_proba(self, idx):
        return self.model.predict_proba(self.pool, np.asarray(idx))

    def embed(self, idx, return_proba=False, pbar=None, **_):
        emb = self.model.embed(self.pool, np.asarray(idx))
        return (emb, self.predict_proba(idx)) if return_proba else emb


def build_peer(kind: str, num_labels: int):
    try:
        from small_text.integrations.pytorch.query_strategies import BADGE
        from small_text.query_strategies import EmbeddingKMeans, PredictionEntropy, RandomSampling
    except ImportError as err:  # small-text is a benchmark extra
        raise UserError("small-text is not installed: pip install small-text (the 'bench' extra)") from err
    return {"random": RandomSampling, "entropy": PredictionEntropy, "embedding-kmeans": EmbeddingKMeans,
            "badge": lambda: BADGE(num_classes=num_labels)}[kind]()


@dataclasses.dataclass
class SmallTextStrategy:
    kind: str
    num_labels: int
    name: str = ""

    def __post_init__(self):
        if self.kind not in PEER_STRATEGIES:
            raise UserError(f"unknown small-text strategy '{self.kind}': choose one of {', '.join(PEER_STRATEGIES)}")
        self.name = self.name or f"small-text:{self.kind}"
        self.strategy = build_peer(self.kind, self.num_labels)

    def query(self, model, pool, labeled_idx, n, rng):
        free = unlabeled_indices(len(pool), labeled_idx, n)
        np.random.seed(int(rng.integers(2**31)))
        labeled = np.asarray(labeled_idx, dtype=np.int64)
        dummy_y = np.zeros(len(labeled), dtype=np.int64)  # none of these four strategies reads y
        kwargs = {"pbar": None} if self.kind in ("badge", "embedding-kmeans") else {}
        picked = self.strategy.query(SmallTextClassifier(model, pool), np.arange(len(pool)), free, labeled,
                                     dummy_y, n=n, **kwargs)
        return np.asarray(picked, dtype=np.int64)
