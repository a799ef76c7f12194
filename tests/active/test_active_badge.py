"""Factorised BADGE distances against the dense gradient-embedding matrix, and the selectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tunelab.active import badge, clustering


def softmax_rows(rng, n, c):
    z = rng.normal(size=(n, c)) * 2
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


@pytest.mark.parametrize("classes", [2, 3, 7])
def test_factorised_distances_equal_dense(classes):
    rng = np.random.default_rng(classes)
    probs, hidden = softmax_rows(rng, 40, classes), rng.normal(size=(40, 5))
    a, h = badge.gradient_factors(probs, hidden)
    dense = badge.dense_gradient_embedding(a, h)
    want = ((dense[:, None, :] - dense[None, :, :]) ** 2).sum(-1)
    fact = badge.FactorisedDistances(a, h)
    got = np.stack([fact.to(j) for j in range(40)], axis=1)
    np.testing.assert_allclose(got, want, atol=1e-10)
    np.testing.assert_allclose(fact.sq_norms, (dense ** 2).sum(1), atol=1e-12)


def test_gradient_factors_are_the_last_layer_gradient_at_the_predicted_label():
    torch.manual_seed(0)
    head = torch.nn.Linear(6, 4, bias=False)
    h = torch.randn(5, 6)
    logits = head(h)
    probs = F.softmax(logits, -1).detach().numpy()
    a, hh = badge.gradient_factors(probs, h.numpy())
    for i in range(5):
        head.zero_grad()
        F.cross_entropy(head(h[i:i + 1]), logits[i:i + 1].argmax(-1)).backward()
        np.testing.assert_allclose(badge.dense_gradient_embedding(a[i:i + 1], hh[i:i + 1])[0],
                                   head.weight.grad.numpy().ravel(), atol=1e-6)


def test_binary_gradient_embedding_shrinks_with_confidence():
    hidden = np.ones((3, 4))
    probs = np.array([[0.5, 0.5], [0.9, 0.1], [0.999, 0.001]])
    a, h = badge.gradient_factors(probs, hidden)
    norms = np.sqrt(badge.FactorisedDistances(a, h).sq_norms)
    np.testing.assert_allclose(norms, np.sqrt(2) * (1 - probs.max(1)) * 2.0)


def test_kmeanspp_seeding_factorised_equals_dense_draws():
    rng = np.random.default_rng(0)
    a, h = badge.gradient_factors(softmax_rows(rng, 200, 5), rng.normal(size=(200, 6)))
    dense = badge.dense_gradient_embedding(a, h)
    fact = clustering.kmeanspp_seeding(badge.FactorisedDistances(a, h), 20, np.random.default_rng(1))
    ref = clustering.kmeanspp_seeding(badge.DenseDistances(dense), 20, np.random.default_rng(1))
    np.testing.assert_array_equal(fact, ref)
    assert len(set(fact.tolist())) == 20
    assert fact[0] == np.argmax((dense ** 2).sum(1))


def test_kmeanspp_fills_with_unique_points_when_all_duplicates():
    x = np.ones((10, 3))
    picked = clustering.kmeanspp_seeding(badge.DenseDistances(x), 10, np.random.default_rng(0))
    assert sorted(picked.tolist()) == list(range(10))


def test_greedy_k_center_matches_brute_force():
    rng = np.random.default_rng(2)
    x, centers = rng.normal(size=(60, 3)), rng.normal(size=(4, 3))
    picked = clustering.greedy_k_center(x, centers, 5)
    current = centers.copy()
    for j in picked:
        dist = ((x[:, None, :] - current[None]) ** 2).sum(-1).min(1)
        assert j == int(np.argmax(dist))
        current = np.vstack([current, x[j]])


def test_nearest_to_centroids_is_unique():
    x = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]])
    picked = clustering.nearest_to_centroids(x, np.array([[0.0, 0.0], [0.0, 0.0]]))
    assert picked.tolist() == [0, 1]


def test_dense_distances_keep_float32_and_match_float64():
    x = np.random.default_rng(3).normal(size=(200, 24))
    exact = badge.DenseDistances(x)
    single = badge.DenseDistances(x.astype(np.float32))
    assert single.x.dtype == np.float32 and exact.x.dtype == np.float64  # no float64 copy of a float32 matrix
    brute = ((x[:, None, :] - x[None, 7, :]) ** 2).sum(-1)[:, 0]
    np.testing.assert_allclose(exact.to(7), brute, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(single.to(7), brute, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(single.sq_norms, (x * x).sum(1), rtol=1e-5)
