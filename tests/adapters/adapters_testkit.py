"""Shared helpers for the adapters tests (models, perturbation, per-layer dense reference)."""

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from tunelab.adapters.reference import dense_bora_forward


class TwoLinear(nn.Module):
    """Two nn.Linear layers (one without bias) with a nonlinearity between."""

    def __init__(self, d_in=12, d_hidden=9, d_out=5):
        super().__init__()
        self.up = nn.Linear(d_in, d_hidden)
        self.down = nn.Linear(d_hidden, d_out, bias=False)

    def forward(self, x):
        return self.down(torch.tanh(self.up(x)))


class TwoConv1D(nn.Module):
    """GPT-2 style: transformers' Conv1D stores its weight as (in, out)."""

    def __init__(self, d_in=12, d_hidden=9, d_out=5):
        super().__init__()
        self.c_fc = Conv1D(d_hidden, d_in)
        self.c_proj = Conv1D(d_out, d_hidden)
        for layer in (self.c_fc, self.c_proj):
            nn.init.normal_(layer.weight, std=0.3)
            nn.init.normal_(layer.bias, std=0.1)

    def forward(self, x):
        return self.c_proj(torch.tanh(self.c_fc(x)))


def make_base(kind: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return TwoLinear() if kind == "linear" else TwoConv1D()


def targets(kind: str) -> list[str]:
    return ["up", "down"] if kind == "linear" else ["c_fc", "c_proj"]


def perturb(peft_model: nn.Module, seed: int = 1, scale: float = 0.3) -> None:
    """Move every adapter parameter away from its initial value (B = 0, gains = 1 would hide errors)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                noise = torch.randn(param.shape, generator=gen) * scale
                if "magnitude" in name:
                    param.mul_(1 + noise.abs())
                else:
                    param.add_(noise)


def layer_reference(layer, adapter: str, x: torch.Tensor) -> torch.Tensor:
    """The dense reference output of one adapted layer (fan_in_fan_out handled by transposing W0)."""
    base = layer.get_base_layer()
    weight = base.weight.T if layer.fan_in_fan_out else base.weight
    return dense_bora_forward(x, weight, base.bias, layer.lora_A[adapter].weight, layer.lora_B[adapter].weight,
                              layer.scaling[adapter], layer.lora_magnitude_out[adapter],
                              layer.lora_magnitude_in[adapter], layer.bidim_order[adapter])
