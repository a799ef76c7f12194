"""Readouts against neuralpredictors' reference implementations with the same parameters; losses against torch's."""

import numpy as np
import pytest
import torch

from tunelab.cortex.model import (FactorisedReadout, GaussianReadout, ModelConfig, bilinear_readout, build_model,
                                  correlation_loss, poisson_loss)
from tunelab.errors import UserError

np_readouts = pytest.importorskip("neuralpredictors.layers.readouts")


def test_factorised_readout_matches_neuralpredictors():
    torch.manual_seed(0)
    ours = FactorisedReadout((5, 6, 6), 7)
    reference = np_readouts.FullFactorized2d((5, 6, 6), 7, bias=True, normalize=True)
    with torch.no_grad():
        reference.spatial.copy_(ours.spatial)
        reference._features.copy_(ours.features)
        ours.bias.normal_()
        reference.bias.copy_(ours.bias)
    x = torch.randn(3, 5, 6, 6)
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-5)
    # regulariser: ours is mean_n |m_n|_1 |w_n|_1. neuralpredictors 0.3 broadcasts [n, 1] * [n] and so sums
    # |m_n|_1 |w_k|_1 over all pairs (n, k); both are checked against their explicit formulas.
    mask_l1 = ours.masks.flatten(1).abs().sum(1)
    feature_l1 = ours.features.abs().sum(1)
    torch.testing.assert_close(ours.regularizer(), (mask_l1 * feature_l1).mean())
    torch.testing.assert_close(reference.l1(reduction="sum"), mask_l1.sum() * feature_l1.sum(), rtol=1e-4, atol=1e-6)


def test_gaussian_readout_matches_neuralpredictors_at_evaluation():
    torch.manual_seed(1)
    ours = GaussianReadout((4, 8, 8), 9, coords=None)
    reference = np_readouts.FullGaussian2d((4, 8, 8), 9, bias=True, gauss_type="isotropic")
    with torch.no_grad():
        ours.mu_free.uniform_(-0.9, 0.9)
        ours.features.normal_()
        reference._mu.copy_(ours.mu_free.view(1, 9, 1, 2))
        reference._features.copy_(ours.features.T.reshape(1, 4, 1, 9))
        reference.bias.copy_(ours.bias)
    ours.eval()
    reference.eval()
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-5)


def test_gaussian_readout_reads_the_feature_at_its_position():
    readout = GaussianReadout((1, 5, 5), 1, coords=None).eval()
    with torch.no_grad():
        readout.mu_free.copy_(torch.tensor([[0.5, -1.0]]))  # x = column 3 of 0..4, y = row 0
        readout.features.fill_(1.0)
    x = torch.arange(25.0).view(1, 1, 5, 5)
    assert readout(x).item() == pytest.approx(3.0)


def test_cortical_positions_are_smooth_functions_of_coordinates():
    coords = np.stack(np.divmod(np.arange(64), 8), 1)
    readout = GaussianReadout((2, 4, 4), 64, coords=coords)
    mu = readout.mu.detach().numpy().reshape(8, 8, 2)
    assert np.abs(np.diff(mu, axis=0)).max() < 0.5 and np.abs(mu).max() <= 1


def test_losses_match_torch_and_numpy():
    torch.manual_seed(2)
    prediction = torch.rand(16, 3) + 0.1
    target = torch.poisson(torch.rand(16, 3) * 3)
    expected = torch.nn.PoissonNLLLoss(log_input=False, full=False, eps=1e-8)(prediction, target)
    torch.testing.assert_close(poisson_loss(prediction, target), expected)
    r = np.mean([np.corrcoef(prediction[:, i], target[:, i])[0, 1] for i in range(3)])
    assert correlation_loss(prediction, target).item() == pytest.approx(1 - r, abs=1e-5)


def test_model_shapes_and_bad_config():
    model = build_model(ModelConfig(), 64, 10, np.stack(np.divmod(np.arange(10), 5), 1)).eval()
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 10)
    with pytest.raises(UserError, match="unknown readout"):
        ModelConfig(readout="attention")



@pytest.mark.parametrize("size", [(1, 1), (5, 7), (16, 16)])
def test_fast_evaluation_readout_equals_grid_sample_with_gradients(size):
    torch.manual_seed(3)
    mu = torch.cat([torch.rand(20, 2) * 2 - 1, torch.tensor([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0], [0.0, 1.0]])])
    mu.requires_grad_(True)
    features = torch.randn(len(mu), 3, requires_grad=True)
    feature_map = torch.randn(2, 3, *size, requires_grad=True)
    ours = bilinear_readout(feature_map, mu, features)
    sampled = torch.nn.functional.grid_sample(feature_map, mu.expand(2, -1, -1).unsqueeze(2), align_corners=True)
    reference = (sampled[..., 0] * features.T).sum(1)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    probe = torch.randn_like(ours)
    grads = torch.autograd.grad((ours * probe).sum(), [feature_map, features, mu])
    expected = torch.autograd.grad((reference * probe).sum(), [feature_map, features, mu])
    for got, want in zip(grads[:2], expected[:2]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    if min(size) > 1:  # grid_sample's position gradient differs only at exact grid lines, which random mu avoid
        torch.testing.assert_close(grads[2][:20], expected[2][:20], rtol=1e-4, atol=1e-4)


def test_weight_decay_spares_positions_scales_and_biases_in_both_implementations():
    """Decay on log-sigma pulls the Gaussian readout towards sigma = 1 (the whole feature map); the rule names the
    spared parameters in our naming and in neuralpredictors'."""
    from neuralpredictors.layers.readouts import FullGaussian2d

    from tunelab.cortex.fit import parameter_groups

    model = build_model(ModelConfig(), 64, 10, coords=np.random.default_rng(0).random((10, 2)))
    decayed, spared = parameter_groups(model, 1e-5)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decayed["weight_decay"] == 1e-5 and spared["weight_decay"] == 0.0
    assert {names[id(p)] for p in spared["params"]} >= {"readout.log_sigma", "readout.bias", "core.layers.1.weight"}
    assert not any("position_net" in names[id(p)] for p in decayed["params"])
    assert {"readout.features", "core.layers.0.weight"} <= {names[id(p)] for p in decayed["params"]}
    peer = FullGaussian2d((32, 16, 16), 10, bias=True, gauss_type="isotropic")
    decayed, spared = parameter_groups(peer, 1e-5)
    peer_names = {id(p): n for n, p in peer.named_parameters()}
    assert {peer_names[id(p)] for p in decayed["params"]} == {"_features"}
    assert {peer_names[id(p)] for p in spared["params"]} == {"_mu", "sigma", "bias"}


def test_lr_factor_is_a_half_cosine_from_one_to_the_final_fraction():
    from tunelab.cortex.fit import lr_factor

    total = 101
    factors = np.array([lr_factor(step, total, "cosine", 0.05) for step in range(total + 5)])
    assert factors[0] == 1.0 and abs(factors[total - 1] - 0.05) < 1e-12 and np.all(factors[total:] == factors[total - 1])
    assert abs(factors[50] - (1 + 0.05) / 2) < 1e-12  # the cosine's midpoint
    assert np.all(np.diff(factors[:total]) < 0)
    np.testing.assert_allclose(factors[25], 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi / 4)))
    assert lr_factor(70, total, "constant", 0.05) == 1.0


def test_fit_decays_the_learning_rate_over_the_epoch_budget():
    from tunelab.cortex.fit import FitConfig, fit_model
    from tunelab.cortex.pipeline import simulate_recording
    from tunelab.cortex.simulate import SheetConfig

    _, recording = simulate_recording(SheetConfig(height=12, width=12, calibration_images=32), 80, 2, seed=0)
    config = FitConfig(epochs=3, batch_size=16, patience=10, lr=1e-2, final_lr_fraction=0.1)
    fitted, _ = fit_model(recording, ModelConfig(), config)
    lrs = [h["lr"] for h in fitted.history]
    assert len(lrs) == 3 and lrs[0] < 1e-2 and abs(lrs[-1] - 1e-3) < 1e-12 and lrs[0] > lrs[1] > lrs[2]
    fitted, _ = fit_model(recording, ModelConfig(), FitConfig(epochs=2, batch_size=16, lr_schedule="constant"))
    assert [h["lr"] for h in fitted.history] == [5e-3, 5e-3]
    with pytest.raises(UserError, match="lr schedule"):
        FitConfig(lr_schedule="step")
