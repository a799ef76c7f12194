"""VAP against finite differences of the KL and against padding."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tunelab.active.classifier import TopClassifier, encoder_top_layers
from tunelab.active.vap import kl_per_example, virtual_adversarial_perturbation


def tiny_model(make_tiny_bert, seed: int = 0) -> TopClassifier:
    layers = encoder_top_layers(make_tiny_bert(seed=seed), 1)
    torch.manual_seed(seed)
    model = TopClassifier(layers, hidden_size=8, num_labels=3).double().eval()
    with torch.no_grad():
        model.head.weight.mul_(4.0)  # a sharper head so the KL has a clear curvature
    return model


def finite_difference_hessian(model, hidden, mask, step=1e-3) -> np.ndarray:
    """Hessian of D(r) = KL(p || p(h + r)) at r = 0 over the real-token coordinates, by central differences."""
    with torch.no_grad():
        logp = F.log_softmax(model(hidden, mask), -1)
    coords = [(t, k) for t in range(hidden.shape[1]) if mask[0, t] for k in range(hidden.shape[2])]

    m = len(coords)
    eye = np.eye(m) * step
    signs = [(1, 1), (1, -1), (-1, 1), (-1, -1)]
    pairs = [(i, j) for i in range(m) for j in range(i, m)]
    # every perturbation of the 4-point stencil in one batch: B = 4 * m(m+1)/2 forward passes at once
    flat = np.stack([si * eye[i] + sj * eye[j] for i, j in pairs for si, sj in signs])
    r = torch.zeros(len(flat), *hidden.shape[1:], dtype=hidden.dtype)
    for col, (t, k) in enumerate(coords):
        r[:, t, k] = torch.as_tensor(flat[:, col])
    batch_mask = mask.expand(len(flat), -1)
    with torch.no_grad():
        div = kl_per_example(logp.expand(len(flat), -1), F.log_softmax(model(hidden + r, batch_mask), -1))
    div = div.numpy().reshape(len(pairs), 4)
    hess = np.zeros((m, m))
    for (i, j), (pp, pm, mp, mm) in zip(pairs, div):
        hess[i, j] = hess[j, i] = (pp - pm - mp + mm) / (4 * step * step)
    return hess, coords


def test_vap_direction_matches_finite_difference_hessian(make_tiny_bert):
    model = tiny_model(make_tiny_bert)
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(1, 4, 8, generator=g, dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False]])  # one padding token
    hess, coords = finite_difference_hessian(model, hidden, mask)
    init = torch.randn(1, 4, 8, generator=g, dtype=torch.float64)

    def flat(r):
        return np.array([float(r[0, t, k]) for t, k in coords])

    # one power iteration with a small xi: d1 is proportional to H d0
    d0 = flat(init * mask[..., None]) / np.linalg.norm(flat(init * mask[..., None]))
    expected = hess @ d0
    expected /= np.linalg.norm(expected)
    one = virtual_adversarial_perturbation(model, hidden, mask, xi=1e-5, eps=1.0, power_iterations=1, init=init)
    assert np.dot(flat(one.perturbation[0][None]), expected) > 0.999
    assert one.perturbation[0, 3].abs().max() == 0  # nothing on the padding token

    # many power iterations: the top eigenvector of H (sign free); its KL at eps matches 0.5 * eps^2 * lambda_max
    eigvals, eigvecs = np.linalg.eigh(hess)
    many = virtual_adversarial_perturbation(model, hidden, mask, xi=1e-5, eps=1e-2, power_iterations=60, init=init)
    direction = flat(many.perturbation[0][None]) / 1e-2
    assert abs(np.dot(direction, eigvecs[:, -1])) > 0.999
    assert np.isclose(float(many.smoothness[0]), 0.5 * 1e-4 * eigvals[-1], rtol=2e-2)


def test_vap_is_the_same_padded_in_a_batch_or_alone(make_tiny_bert):
    model = tiny_model(make_tiny_bert, seed=3)
    g = torch.Generator().manual_seed(0)
    short = torch.randn(1, 2, 8, generator=g, dtype=torch.float64)
    long = torch.randn(1, 4, 8, generator=g, dtype=torch.float64)
    init_short = torch.randn(1, 2, 8, generator=g, dtype=torch.float64)
    init_long = torch.randn(1, 4, 8, generator=g, dtype=torch.float64)
    batch = torch.cat([torch.cat([short, torch.full((1, 2, 8), 7.0, dtype=torch.float64)], 1), long])
    mask = torch.tensor([[True, True, False, False], [True] * 4])
    init = torch.cat([torch.cat([init_short, torch.randn(1, 2, 8, dtype=torch.float64)], 1), init_long])
    both = virtual_adversarial_perturbation(model, batch, mask, power_iterations=2, init=init)
    alone = virtual_adversarial_perturbation(model, short, torch.ones(1, 2, dtype=torch.bool), power_iterations=2,
                                             init=init_short)
    torch.testing.assert_close(both.perturbation[0, :2], alone.perturbation[0])
    torch.testing.assert_close(both.smoothness[0], alone.smoothness[0])
    assert both.perturbation[0, 2:].abs().max() == 0
    norms = both.perturbation.flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.full_like(norms, 5.0))
