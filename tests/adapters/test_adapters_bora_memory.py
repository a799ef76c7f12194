"""BoRA's factorised layer: dropout on the LoRA branch as written, and what it keeps for backward."""

import copy

import torch
import torch.nn.functional as F
from peft import get_peft_model
from tunelab.adapters import BidimLoraConfig, BidimLoraLinear
from tunelab.adapters.bora import adapter_gains

from adapters_testkit import make_base, perturb, targets


def first_bora_layer(kind, order, dropout=0.0, r=3):
    model = get_peft_model(copy.deepcopy(make_base(kind)), BidimLoraConfig(
        r=r, lora_alpha=2 * r, bidim_order=order, lora_dropout=dropout, target_modules=targets(kind)))
    perturb(model)
    return next(m for m in model.modules() if isinstance(m, BidimLoraLinear)).train()


def literal_output(layer, x, mask):
    """g_out * (W0 (g_in * x) + s B A (mask * g_in * x)) + b: dropout applied to the scaled input itself."""
    gain_out, gain_in = adapter_gains(layer, "default")
    base = layer.get_base_layer()
    weight = base.weight.T if layer.fan_in_fan_out else base.weight
    scaled = gain_in * x
    low_rank = F.linear(F.linear(mask * scaled, layer.lora_A["default"].weight), layer.lora_B["default"].weight)
    return gain_out * (F.linear(scaled, weight) + layer.scaling["default"] * low_rank) + base.bias


def test_dropout_output_and_gradients_match_literal_formula(kind, order):
    layer = first_bora_layer(kind, order, dropout=0.4)
    x = torch.randn(6, 5, layer.in_features, requires_grad=True)
    torch.manual_seed(7)
    fast = layer(x)
    torch.manual_seed(7)  # the same draw: dropout's mask, scaled by 1 / (1 - p)
    mask = F.dropout(torch.ones_like(x), p=0.4, training=True)
    assert (mask == 0).any() and (mask != 0).any()
    expected = literal_output(layer, x, mask)
    assert (fast - expected).abs().max().item() < 1e-5
    params = [layer.lora_A["default"].weight, layer.lora_B["default"].weight,
              layer.lora_magnitude_out["default"], layer.lora_magnitude_in["default"], x]
    weights = torch.randn_like(fast)
    for g_fast, g_ref in zip(torch.autograd.grad((fast * weights).sum(), params),
                             torch.autograd.grad((expected * weights).sum(), params)):
        assert g_ref.abs().max() > 0
        assert torch.allclose(g_fast, g_ref, atol=1e-5, rtol=1e-4)


def saved_bytes(layer, x) -> int:
    """Bytes of the storages autograd keeps for backward of one layer forward, parameters excluded."""
    params = {p.untyped_storage().data_ptr() for p in layer.parameters()}
    seen = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x)
    return sum(seen.values())


def test_backward_keeps_the_input_once_not_a_rescaled_copy(kind, order):
    """Kept: x, the pre-gain output z (n, out), A's output (n, r), A diag(g_in) and four gain / norm vectors.
    Keeping g_in * x as well (the LoRA branch's input) would add n * in floats."""
    r, n = 3, 64
    layer = first_bora_layer(kind, order, r=r)
    d_in, d_out = layer.in_features, layer.out_features
    x = torch.randn(n, d_in, requires_grad=True)
    expected = 4 * (n * (d_in + d_out + r) + r * d_in + 2 * (d_in + d_out))
    assert saved_bytes(layer, x) <= expected
