"""BoRA as a PEFT LoRA variant: identity at init, equality with the dense reference, merge, save/load, gradients."""

import copy

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from tunelab.adapters import BidimLoraConfig, BidimLoraLinear
from tunelab.adapters.gains import gains, initial_magnitudes
from tunelab.adapters.reference import dense_bora_weight

from adapters_testkit import layer_reference, make_base, perturb, targets


def bora_model(kind, order, seed=0, r=3, alpha=6):
    base = make_base(kind, seed)
    return base, get_peft_model(copy.deepcopy(base), BidimLoraConfig(r=r, lora_alpha=alpha, bidim_order=order,
                                                                     target_modules=targets(kind)))


def bora_layers(model):
    return [m for m in model.modules() if isinstance(m, BidimLoraLinear)]


def test_identity_at_initialisation(kind, order):
    base, model = bora_model(kind, order)
    x = torch.randn(6, 12)
    assert (model(x) - base(x)).abs().max().item() < 1e-6


def test_conv1d_gets_fan_in_fan_out(kind):
    _, model = bora_model(kind, "out_first")
    assert all(layer.fan_in_fan_out == (kind == "conv1d") for layer in bora_layers(model))


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_forward_matches_dense_reference_float32(kind, order, seed):
    _, model = bora_model(kind, order, seed=seed)
    perturb(model, seed=seed + 10)
    x = torch.randn(2, 7, 12)
    for layer in bora_layers(model):
        d_in = layer.in_features
        h = torch.randn(2, 7, d_in)
        assert (layer(h) - layer_reference(layer, "default", h)).abs().max().item() < 1e-5
    assert torch.isfinite(model(x)).all()


def test_gradients_match_dense_reference_and_reach_both_magnitudes(kind, order):
    _, model = bora_model(kind, order)
    perturb(model)
    layer = bora_layers(model)[0]
    h = torch.randn(5, layer.in_features)
    params = [layer.lora_A["default"].weight, layer.lora_B["default"].weight,
              layer.lora_magnitude_out["default"], layer.lora_magnitude_in["default"]]
    fast = torch.autograd.grad(layer(h).square().sum(), params)
    ref = torch.autograd.grad(layer_reference(layer, "default", h).square().sum(), params)
    for name, g_fast, g_ref in zip(["A", "B", "m_out", "m_in"], fast, ref):
        assert g_fast.abs().max() > 0, f"no gradient reaches {name}"
        assert torch.allclose(g_fast, g_ref, atol=1e-5, rtol=1e-4), name


def test_both_magnitudes_get_gradients_through_the_whole_model(kind):
    _, model = bora_model(kind, "out_first")
    model(torch.randn(4, 12)).square().sum().backward()
    for layer in bora_layers(model):
        assert layer.lora_magnitude_out["default"].grad.abs().sum() > 0
        assert layer.lora_magnitude_in["default"].grad.abs().sum() > 0


def test_bfloat16_within_rounding_of_reference(kind, order):
    _, model = bora_model(kind, order)
    perturb(model)
    layer = bora_layers(model)[0]
    h = torch.randn(16, layer.in_features)
    exact = layer_reference(layer, "default", h).detach()  # float32 truth
    low = copy.deepcopy(layer).to(torch.bfloat16)
    fast = low(h.to(torch.bfloat16)).float()
    # the dense reference run in bfloat16 sets the size of bfloat16 rounding for this layer
    base_low = low.get_base_layer()
    weight = base_low.weight.T if low.fan_in_fan_out else base_low.weight
    dense_low = torch.nn.functional.linear(
        h.to(torch.bfloat16),
        dense_bora_weight(weight, low.lora_A["default"].weight, low.lora_B["default"].weight,
                          low.scaling["default"], low.lora_magnitude_out["default"],
                          low.lora_magnitude_in["default"], order),
        base_low.bias).float()
    rounding = (dense_low - exact).abs().max().item()
    eps = torch.finfo(torch.bfloat16).eps
    assert (fast - exact).abs().max().item() <= max(2 * rounding, 4 * eps * exact.abs().max().item())


def test_merge_unmerge_restores_weights_and_merged_output_matches(kind, order):
    _, model = bora_model(kind, order)
    perturb(model)
    x = torch.randn(6, 12)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "base_layer" in n}
    unmerged_out = model(x).detach()
    model.merge_adapter()
    assert (model(x) - unmerged_out).abs().max().item() < 1e-5
    model.unmerge_adapter()
    for name, param in model.named_parameters():
        if name in before:
            assert (param - before[name]).abs().max().item() < 1e-5, name
    assert (model(x) - unmerged_out).abs().max().item() < 1e-5


def test_merged_weight_equals_dense_reference_weight(kind, order):
    _, model = bora_model(kind, order)
    perturb(model)
    layer = bora_layers(model)[0]
    base = layer.get_base_layer()
    w0 = (base.weight.T if layer.fan_in_fan_out else base.weight).detach().clone()
    expected = dense_bora_weight(w0, layer.lora_A["default"].weight, layer.lora_B["default"].weight,
                                 layer.scaling["default"], layer.lora_magnitude_out["default"],
                                 layer.lora_magnitude_in["default"], order).detach()
    layer.merge(safe_merge=True)
    merged = base.weight.T if layer.fan_in_fan_out else base.weight
    assert (merged - expected).abs().max().item() < 1e-5


def test_merge_and_unload_gives_plain_model_with_same_output(kind, order):
    base, model = bora_model(kind, order)
    perturb(model)
    x = torch.randn(6, 12)
    expected = model(x).detach()
    plain = model.merge_and_unload()
    assert type(plain) is type(base)
    assert not bora_layers(plain)
    assert (plain(x) - expected).abs().max().item() < 1e-5


def test_save_and_load_gives_identical_outputs(tmp_path, kind, order):
    base, model = bora_model(kind, order)
    perturb(model)
    x = torch.randn(6, 12)
    expected = model(x).detach()
    model.save_pretrained(tmp_path)
    config = BidimLoraConfig.from_pretrained(str(tmp_path))
    assert config.bidim_order == order and config.use_bidim_weight_decomposition
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path), config=config)
    assert torch.equal(loaded(x), expected)
    saved = set(__import__("safetensors.torch", fromlist=["load_file"]).load_file(
        tmp_path / "adapter_model.safetensors"))
    assert any(k.endswith("lora_magnitude_out") for k in saved) and any(k.endswith("lora_magnitude_in") for k in saved)


def test_several_adapters_switch_and_combine(kind):
    base, model = bora_model(kind, "out_first")
    perturb(model, seed=3)
    model.add_adapter("second", BidimLoraConfig(r=2, bidim_order="in_first", target_modules=targets(kind)))
    model.add_adapter("plain", LoraConfig(r=2, target_modules=targets(kind)))
    perturb(model, seed=4)  # moves all three
    x = torch.randn(6, 12)
    outs = {}
    for name in ["default", "second", "plain"]:
        model.set_adapter(name)
        outs[name] = model(x).detach()
    assert (outs["default"] - outs["second"]).abs().max() > 1e-3

    # each adapter alone through the dense reference, layer by layer
    for name in ["default", "second"]:
        model.set_adapter(name)
        for layer in bora_layers(model):
            h = torch.randn(3, layer.in_features)
            assert (layer(h) - layer_reference(layer, name, h)).abs().max().item() < 1e-5

    # several active at once: BoRA's change adds to the base output (the variant's non-fast path)
    layer = bora_layers(model)[0]
    h = torch.randn(3, layer.in_features)
    base_out = layer.get_base_layer()(h)
    layer.set_adapter(["default", "second"])
    combined = layer(h)
    expected = base_out + (layer_reference(layer, "default", h) - base_out) + (
        layer_reference(layer, "second", h) - base_out)
    assert (combined - expected).abs().max().item() < 1e-5


def test_variant_path_equals_fast_path(kind, order):
    """A zero plain LoRA adapter active beside BoRA forces the additive path; the output must not change."""
    _, model = bora_model(kind, order)
    perturb(model)
    model.add_adapter("zero", LoraConfig(r=2, target_modules=targets(kind)))  # B = 0: contributes nothing
    layer = bora_layers(model)[0]
    h = torch.randn(4, layer.in_features)
    layer.set_adapter(["default"])
    fast = layer(h)
    layer.set_adapter(["default", "zero"])
    assert (layer(h) - fast).abs().max().item() < 1e-5


def test_plain_and_dora_adapters_on_bidim_layer_match_peft():
    base = make_base("linear")
    x = torch.randn(6, 12)
    for use_dora in (False, True):
        ours = get_peft_model(copy.deepcopy(base), BidimLoraConfig(
            r=3, use_dora=use_dora, use_bidim_weight_decomposition=False, target_modules=targets("linear")))
        peft_own = get_peft_model(copy.deepcopy(base), LoraConfig(r=3, use_dora=use_dora,
                                                                  target_modules=targets("linear")))
        perturb(peft_own, seed=5)
        ours.load_state_dict(peft_own.state_dict())  # same keys: the same parameters in both layouts
        assert (ours(x) - peft_own(x)).abs().max().item() < 1e-6


def test_bora_and_dora_flags_are_exclusive():
    with pytest.raises(ValueError, match="exclusive"):
        BidimLoraConfig(r=2, use_dora=True, target_modules=["up"])


def test_gains_are_one_for_initial_magnitudes(order):
    weight = torch.randn(7, 11)
    m_out, m_in = initial_magnitudes(weight, order)
    g_out, g_in = gains(weight, m_out, m_in, order)
    assert torch.equal(g_out, torch.ones(7)) and torch.equal(g_in, torch.ones(11))


def test_factorisation_identity(order):
    """diag(g_out) W diag(g_in) from gains.py equals the literal normalise-scale-normalise-scale reference."""
    weight = torch.randn(7, 11)
    m_out, m_in = torch.rand(7) + 0.5, torch.rand(11) + 0.5
    g_out, g_in = gains(weight, m_out, m_in, order)
    zeros_a, zeros_b = torch.zeros(1, 11), torch.zeros(7, 1)
    expected = dense_bora_weight(weight, zeros_a, zeros_b, 1.0, m_out, m_in, order)
    assert (g_out[:, None] * weight * g_in[None, :] - expected).abs().max() < 1e-5


def test_merging_two_bora_adapters_then_unmerging_restores_the_base(kind):
    _, model = bora_model(kind, "out_first")
    model.add_adapter("second", BidimLoraConfig(r=2, bidim_order="in_first", target_modules=targets(kind)))
    perturb(model, seed=6)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "base_layer" in n}
    model.base_model.merge_adapter(adapter_names=["default", "second"])
    changed = max((p - before[n]).abs().max().item() for n, p in model.named_parameters() if n in before)
    assert changed > 1e-3
    model.base_model.unmerge_adapter()
    for name, param in model.named_parameters():
        if name in before:
            assert (param - before[name]).abs().max().item() < 1e-5, name


def test_bora_on_a_layer_made_for_plain_lora_fails_loudly():
    """PEFT's own layer does not know the variant: it must refuse, not silently train plain LoRA."""
    model = get_peft_model(make_base("linear"), LoraConfig(r=2, target_modules=targets("linear")))
    with pytest.raises(ValueError, match="use_bidim_weight_decomposition"):
        model.add_adapter("bora", BidimLoraConfig(r=2, target_modules=targets("linear")))
