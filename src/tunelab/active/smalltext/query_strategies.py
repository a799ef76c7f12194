"""VAPAL and factorised BADGE as small-text `QueryStrategy` classes.

small-text calls `query(clf, dataset, indices_unlabeled, indices_labeled, y, n)`; the strategies
turn (clf, dataset) into tunelab's model interface and let tunelab's own strategy choose among
`indices_unlabeled`, so a small-text loop selects exactly what tunelab's loop would from the
same model. Each strategy draws from its own generator (`seed`), one draw sequence per learner.
"""

from __future__ import annotations

import numpy as np
from small_text.query_strategies import QueryStrategy, constraints

from tunelab.active.strategies import Badge, Vapal
from tunelab.active.vap import DEFAULT_EPS, DEFAULT_POWER_ITERATIONS, DEFAULT_XI


def model_view(clf, dataset, batch_size: int = 32):
    """(model, pool) with tunelab's predict_proba / embed / vap for a small-text classifier and dataset."""
    from transformers import PreTrainedModel

    from tunelab.active.smalltext.classification import TunelabClassification

    if isinstance(clf, TunelabClassification):
        return clf.fitted_model(), dataset.pool
    if isinstance(getattr(clf, "model", None), PreTrainedModel):
        from tunelab.active.smalltext.transformer_view import TransformerView

        return TransformerView(clf, batch_size), dataset
    raise TypeError(f"{type(clf).__name__} is not supported: use small-text's TransformerBasedClassification "
                    "or tunelab.active.smalltext.TunelabClassification (and train it first)")


class _TunelabStrategy(QueryStrategy):
    def __init__(self, strategy, seed: int | None, batch_size: int):
        self.strategy = strategy
        self.rng = np.random.default_rng(seed)
        self.batch_size = batch_size

    def query(self, clf, dataset, indices_unlabeled, indices_labeled, y, n=10):
        self._validate_query_input(indices_unlabeled, n)
        model, pool = model_view(clf, dataset, self.batch_size)
        candidates = np.asarray(indices_unlabeled, dtype=np.int64)
        return self.strategy.select(model, pool, candidates, n, self.rng)


@constraints(classification_type="single-label")
class VAPAL(_TunelabStrategy):
    """VAPAL (arXiv 2210.14576): virtual adversarial perturbations as uncertainty, clustered for diversity.

    With small-text's transformer classifier the input token embeddings are perturbed; with
    tunelab's classifier the cached states its trainable part reads. Options as in
    `tunelab.active.strategies.Vapal`.
    """

    def __init__(self, selector: str = "badge", xi: float = DEFAULT_XI, eps: float = DEFAULT_EPS,
                 power_iterations: int = DEFAULT_POWER_ITERATIONS, magnitude: str = "smoothness",
                 seed: int | None = None, batch_size: int = 32):
        super().__init__(Vapal(selector=selector, xi=xi, eps=eps, power_iterations=power_iterations,
                               magnitude=magnitude), seed, batch_size)

    def __str__(self):
        s = self.strategy
        return (f"VAPAL(selector={s.selector}, xi={s.xi}, eps={s.eps}, power_iterations={s.power_iterations}, "
                f"magnitude={s.magnitude})")


@constraints(classification_type="single-label")
class FactorisedBADGE(_TunelabStrategy):
    """BADGE with factorised gradient-embedding distances: memory O(n (C + d)), binary tasks included.

    Unlike small-text's `BADGE` it never builds the n x (C d) matrix and sets "p - 1" at each
    example's predicted class.
    """

    def __init__(self, seed: int | None = None, batch_size: int = 32):
        super().__init__(Badge(), seed, batch_size)

    def __str__(self):
        return "FactorisedBADGE()"
