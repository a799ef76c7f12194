"""Every strategy returns n unique unlabeled indices; bad input gives one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from tunelab.active.strategies import STRATEGIES, make_strategy
from tunelab.errors import UserError


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@pytest.mark.parametrize("setup", ["pooled_setup", "token_setup"])
def test_strategy_returns_unique_unlabeled_indices(name, setup, request):
    clf, pool, labels, labeled = request.getfixturevalue(setup)
    picked = make_strategy(name).query(clf, pool, labeled, 7, np.random.default_rng(0))
    assert len(picked) == 7
    assert len(set(picked.tolist())) == 7
    assert not set(picked.tolist()) & set(labeled.tolist())
    assert all(0 <= i < len(pool) for i in picked)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategy_can_take_the_whole_rest_of_the_pool(name, pooled_setup):
    clf, pool, labels, labeled = pooled_setup
    rest = len(pool) - len(labeled)
    picked = make_strategy(name).query(clf, pool, labeled, rest, np.random.default_rng(0))
    assert sorted(picked.tolist()) == sorted(set(range(len(pool))) - set(labeled.tolist()))


def test_uncertainty_strategies_pick_the_most_uncertain(pooled_setup):
    clf, pool, labels, labeled = pooled_setup
    free = np.setdiff1d(np.arange(len(pool)), labeled)
    probs = clf.predict_proba(pool, free)
    ent = -(probs * np.log(probs)).sum(1)
    picked = make_strategy("entropy").query(clf, pool, labeled, 5, np.random.default_rng(0))
    assert set(picked.tolist()) == set(free[np.argsort(-ent)[:5]].tolist())
    picked = make_strategy("least-confidence").query(clf, pool, labeled, 5, np.random.default_rng(0))
    assert set(picked.tolist()) == set(free[np.argsort(probs.max(1))[:5]].tolist())


def test_vapal_badge_weights_by_local_smoothness(pooled_setup):
    clf, pool, labels, labeled = pooled_setup
    free = np.setdiff1d(np.arange(len(pool)), labeled)
    strategy = make_strategy("vapal-badge")
    reps = strategy.representations(clf, pool, free, seed=0)
    out = clf.vap(pool, free, xi=strategy.xi, eps=strategy.eps, power_iterations=1, seed=0)
    np.testing.assert_allclose(np.linalg.norm(reps, axis=1), out["smoothness"], rtol=1e-5)
    # the first k-means++ seed is the least smooth point
    picked = strategy.query(clf, pool, labeled, 3, np.random.default_rng(0))
    assert picked[0] == free[np.argmax(np.linalg.norm(
        strategy.representations(clf, pool, free, seed=int(np.random.default_rng(0).integers(2**31))), axis=1))]


def test_too_many_requested(pooled_setup):
    clf, pool, labels, labeled = pooled_setup
    with pytest.raises(UserError, match="only 78 unlabeled"):
        make_strategy("entropy").query(clf, pool, labeled, 79, np.random.default_rng(0))


def test_unknown_strategy_and_options():
    with pytest.raises(UserError, match="unknown strategy 'bald'"):
        make_strategy("bald")
    with pytest.raises(UserError, match="unknown VAPAL selector"):
        make_strategy("vapal", selector="nope")
    with pytest.raises(UserError, match="takes no options"):
        make_strategy("random", eps=1.0)


def test_single_class_labeled_set(pooled_setup):
    clf, pool, labels, _ = pooled_setup
    idx = np.flatnonzero(labels == 0)[:5]
    with pytest.raises(UserError, match="single class"):
        clf.fit(pool, idx, labels[idx], seed=0)
    assert "\n" not in str(UserError("a\nb"))


@pytest.mark.parametrize("kind", ["random", "entropy", "badge", "embedding-kmeans"])
def test_small_text_peers_run_on_our_classifier(kind, pooled_setup):
    pytest.importorskip("small_text")
    from tunelab.active.peers import SmallTextStrategy

    clf, pool, labels, labeled = pooled_setup
    picked = SmallTextStrategy(kind, num_labels=3).query(clf, pool, labeled, 6, np.random.default_rng(0))
    assert len(set(picked.tolist())) == 6 and not set(picked.tolist()) & set(labeled.tolist())
    if kind == "entropy":
        assert set(picked.tolist()) == set(make_strategy("entropy").query(clf, pool, labeled, 6, None).tolist())


def test_vapal_representations_are_unit_directions_times_the_magnitude():
    from tunelab.active.strategies import Vapal

    rng = np.random.default_rng(0)
    r = rng.normal(size=(30, 8)).astype(np.float32)
    smooth, grad = rng.uniform(0.1, 2, 30).astype(np.float32), rng.uniform(0.1, 2, 30).astype(np.float32)

    class FakeModel:
        def vap(self, pool, idx, **_):
            return {"r": r.copy(), "smoothness": smooth, "grad_norm": grad, "probs": None}

    unit = r / np.linalg.norm(r, axis=1, keepdims=True)
    alps = Vapal(selector="alps").representations(FakeModel(), None, np.arange(30), 0)
    np.testing.assert_allclose(alps, unit, rtol=1e-6)
    by_smooth = Vapal(selector="badge").representations(FakeModel(), None, np.arange(30), 0)
    np.testing.assert_allclose(by_smooth, unit * smooth[:, None], rtol=1e-6)
    by_grad = Vapal(selector="badge", magnitude="grad-norm").representations(FakeModel(), None, np.arange(30), 0)
    np.testing.assert_allclose(by_grad, unit * grad[:, None], rtol=1e-6)
