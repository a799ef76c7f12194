"""Preferred-image search against brute force, MEIs against the analytic optimum of a linear unit, domain
clustering and labelling against planted ground truth, verification arithmetic."""

import numpy as np
import pytest
import torch

from tunelab.cortex import mapping, verify
from tunelab.errors import UserError


def test_streaming_top_k_equals_full_sort():
    rng = np.random.default_rng(0)
    images = rng.random((300, 3, 8, 8)).astype(np.float32)
    weights = torch.from_numpy(rng.normal(size=(3 * 8 * 8, 50)).astype(np.float32))
    predict = lambda batch: batch.flatten(1) @ weights
    indices, values, speed = mapping.top_k_preferred(predict, images, k=7, batch_size=64)
    full = images.reshape(300, -1) @ weights.numpy()
    expected = np.argsort(-full, axis=0)[:7].T
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(values, np.take_along_axis(full.T, expected, 1), rtol=1e-5)
    assert speed > 0
    with pytest.raises(UserError, match="top-k of 500"):
        mapping.top_k_preferred(predict, images, k=500)


def test_mei_of_a_linear_unit_is_its_weight_direction():
    """max <w, x - 0.5> subject to ||x - 0.5|| <= r is x = 0.5 + r w / ||w|| (inside [0, 1] for small r)."""
    rng = np.random.default_rng(1)
    w = torch.from_numpy(rng.normal(size=(1, 3, 16, 16)).astype(np.float32))
    objective = lambda images: ((images - 0.5) * w).flatten(1).sum(1)
    image, trace = mapping.most_exciting_image(objective, 16, steps=60, lr=0.02, jitter=0, tv_weight=0.0,
                                               norm=2.0, blur_sigma=0.0)
    optimum = 0.5 + 2.0 * w[0].numpy() / np.linalg.norm(w.numpy())
    cosine = np.dot((image - 0.5).ravel(), (optimum - 0.5).ravel()) / (
        np.linalg.norm(image - 0.5) * np.linalg.norm(optimum - 0.5))
    assert cosine > 0.99
    assert trace[-1] > 0.98 * 2.0 * np.linalg.norm(w.numpy())  # reaches the constrained maximum
    smooth, _ = mapping.most_exciting_image(objective, 16, steps=60, lr=0.02, jitter=2, tv_weight=0.5, norm=2.0)
    assert mapping.total_variation(torch.from_numpy(smooth)) < mapping.total_variation(torch.from_numpy(image))


def _planted_map():
    domain_map = np.zeros((20, 20), dtype=int)
    domain_map[:, 10:] = 1
    domain_map[12:, :] = 2
    domain_map[:6, :6] = 3
    return domain_map


def test_clustering_recovers_planted_contiguous_domains():
    rng = np.random.default_rng(2)
    domain_map = _planted_map()
    prototypes = rng.normal(size=(4, 60))
    pixels = np.arange(400)
    pixels = pixels[pixels % 37 != 0]  # some masked pixels
    profiles = prototypes[domain_map.ravel()[pixels]] + rng.normal(scale=1.5, size=(len(pixels), 60))
    recovered, info = mapping.cluster_domains(profiles, pixels, (20, 20), candidates=range(2, 8))
    assert info["n_domains"] == 4
    assert verify.map_agreement(domain_map, recovered) > 0.9
    assert (recovered.ravel()[np.setdiff1d(np.arange(400), pixels)] == -1).all()


def test_labels_follow_the_raised_statistic():
    rng = np.random.default_rng(3)
    stats = {name: rng.normal(size=200) for name in ("colour", "texture", "edges", "curvature", "face")}
    preferred = {0: np.argsort(-stats["texture"])[:20], 1: np.argsort(-stats["colour"])[:20]}
    labels, scores = mapping.label_domains(preferred, bank_images=None, stats=stats)
    assert labels == {0: "texture", 1: "colour"}
    assert scores[0]["texture"] > 1.0


def test_domain_preferred_images_rank_by_mean_domain_response():
    predictions = np.zeros((5, 4))
    predictions[3, :2] = 5  # image 3 drives domain 0's units
    predictions[1, 2:] = 5
    preferred = mapping.domain_preferred_images(predictions + np.arange(5)[:, None] * 0.01, np.array([0, 0, 1, 1]), k=1)
    assert preferred == {0: [3], 1: [1]}


def test_selectivity_and_agreement_arithmetic():
    domain_map = _planted_map()
    per_set = np.ones((4, 400))
    for d in range(4):
        per_set[d, domain_map.ravel() == d] = 3.0  # each domain answers its own set
    result = verify.domain_selectivity(per_set, domain_map, [0, 1, 2, 3])
    assert result["fraction_preferring_own_set"] == 1.0 and result["median_d_prime"] > 10
    permuted = (domain_map + 1) % 4
    assert verify.map_agreement(domain_map, permuted) == pytest.approx(1.0)
    families = ["colour", "edges", "texture", "face"]
    labels = {1: "colour", 2: "edges", 3: "texture", 0: "curvature"}  # domain 3 (permuted 0) mislabelled
    expected = 1 - (domain_map == 3).mean()
    assert verify.preferred_feature_accuracy(domain_map, families, permuted, labels) == pytest.approx(expected)
    session = np.stack([np.full((2, 400), v) for v in [1.0, 2.0, 3.0]])
    np.testing.assert_allclose(verify.set_responses(session, np.array([0, 1, 1])), [[1.0] * 400, [2.5] * 400])


def test_tree_cut_matches_sklearn_at_every_count():
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_rand_score

    points = np.random.default_rng(4).normal(size=(120, 3))
    tree = AgglomerativeClustering(n_clusters=1, compute_full_tree=True).fit(points)
    for count in (2, 4, 7):
        expected = AgglomerativeClustering(n_clusters=count).fit_predict(points)
        assert adjusted_rand_score(expected, mapping._cut_tree(tree.children_, 120, count)) == 1.0


def test_readout_profiles_are_unit_length_feature_directions():
    from types import SimpleNamespace

    from tunelab.cortex.mapping import readout_profiles

    features = torch.tensor([[3.0, 4.0], [0.0, -2.0], [1.0, 1.0]])
    fitted = SimpleNamespace(model=SimpleNamespace(readout=SimpleNamespace(features=torch.nn.Parameter(features))))
    expected = np.array([[0.6, 0.8], [0.0, -1.0], [2 ** -0.5, 2 ** -0.5]])
    np.testing.assert_allclose(readout_profiles(fitted), expected, rtol=1e-6)
