"""BoRA as a variant of PEFT's LoRA: a `LoraVariant` plus the LoRA layer that resolves it.

PEFT picks a variant per adapter from the config (`resolve_lora_variant`) and calls the variant's init / forward /
merge / unmerge; everything else (injection, several adapters, `save_pretrained`, `PeftModel.from_pretrained`,
`merge_and_unload`) is PEFT's own code. The layer is handed to PEFT through the config's custom-module
registration (`BidimLoraConfig` does it), so this file never patches PEFT.

Parameters per adapted layer, besides LoRA's A and B: `lora_magnitude_out[adapter]` (out,) and
`lora_magnitude_in[adapter]` (in,). Both are `lora_*` parameter dicts listed in `adapter_layer_names`, so PEFT marks
them trainable, casts, saves and loads them like A and B.

Forward. With one BoRA adapter active (the training case) the layer's forward is replaced by the factorised form
    y = g_out * (W0 (g_in * x) + s B A (g_in * x)) + b
which costs one base GEMM, as plain LoRA does: the base output is not computed and then thrown away, and no dense
adapted weight is kept for the backward pass (it is only materialised, without gradient, to take its norms).
With several adapters active at once, or a mixed batch, the variant's `forward` adds BoRA's difference to the base
output instead, which needs one more GEMM.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from peft.tuners.lora.layer import Linear as LoraLinear
from peft.tuners.lora.layer import LoraVariant
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils.integrations import dequantize_module_weight
from torch import nn
from transformers.pytorch_utils import Conv1D

from tunelab.adapters.gains import gains, initial_magnitudes, scale_weight, unscale_weight

# Config field (LoraConfig subclass) that turns the variant on, and the one that picks the normalisation order.
# The name says what the method does, so it cannot be mistaken for PEFT's unrelated "BoRA" (Block-Diversified LoRA).
from tunelab.adapters.registry import ORDER_FIELD, VARIANT_FIELD

MAGNITUDE_OUT = "lora_magnitude_out"
MAGNITUDE_IN = "lora_magnitude_in"


def _out_in(weight: torch.Tensor, fan_in_fan_out: bool) -> torch.Tensor:
    """A weight in PyTorch's (out, in) layout; transformers' Conv1D stores (in, out)."""
    return weight.T if fan_in_fan_out else weight


def _lora_delta(module: LoraLinear, adapter: str) -> torch.Tensor:
    """s * B @ A in (out, in) layout and float32."""
    lora_A = module.lora_A[adapter].weight.float()
    lora_B = module.lora_B[adapter].weight.float()
    return (lora_B @ lora_A) * module.scaling[adapter]


def _adapted_weight(module: LoraLinear, adapter: str, base_weight: torch.Tensor | None = None) -> torch.Tensor:
    """W0 + s*B*A, (out, in), float32, no gradient (only its norms are used)."""
    if base_weight is None:
        base_weight = dequantize_module_weight(module.get_base_layer())
    with torch.no_grad():
        return _out_in(base_weight, module.fan_in_fan_out).float() + _lora_delta(module, adapter).detach()


def adapter_gains(module: LoraLinear, adapter: str,
                  base_weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(g_out, g_in) of one adapter on one layer (float32, differentiable in the magnitudes)."""
    return gains(_adapted_weight(module, adapter, base_weight), module.lora_magnitude_out[adapter],
                 module.lora_magnitude_in[adapter], module.bidim_order[adapter])


def factorised_output(module: LoraLinear, adapter: str, x: torch.Tensor) -> torch.Tensor:
    """g_out * (W0 (g_in * x) + s B (A diag(g_in)) drop(x)), without bias, in x's dtype.

    This is g_out * (W0 + s B A)(g_in * x) with dropout on the LoRA branch. g_in goes into A's small (r, in) weight
    rather than into the LoRA branch's input: the branch's matmul then keeps x for backward, which the product
    g_in * x keeps anyway (for g_in's gradient), instead of a second activation of the input's size. Dropout is an
    elementwise mask, so drop(g_in * x) = g_in * drop(x) with the same mask.
    """
    gain_out, gain_in = adapter_gains(module, adapter)
    base_weight = _out_in(module.get_base_layer().weight, module.fan_in_fan_out)
    lora_A = module.lora_A[adapter].weight
    base_part = F.linear(x * gain_in.to(x.dtype), base_weight.to(x.dtype))
    lora_x = module.lora_dropout[adapter](x).to(lora_A.dtype)
    lora_h = F.linear(lora_x, lora_A * gain_in.to(lora_A.dtype))
    lora_part = module.lora_B[adapter](lora_h) * module.scaling[adapter]
    return (base_part + lora_part.to(base_part.dtype)) * gain_out.to(base_part.dtype)


class BidimLinearVariant(LoraVariant):
    """BoRA's hooks into PEFT's LoRA layer (init, forward, merge, unmerge)."""

    def supports_lora_conversion(self) -> bool:
        return False  # the gains rescale the base weight: not expressible as a plain low-rank delta

    @staticmethod
    def init(module: LoraLinear, adapter_name: str, config: Any = None, **kwargs: Any) -> None:
        if MAGNITUDE_OUT not in module._modules:
            module.lora_magnitude_out = nn.ParameterDict()
            module.lora_magnitude_in = nn.ParameterDict()
            module.adapter_layer_names = module.adapter_layer_names[:] + (MAGNITUDE_OUT, MAGNITUDE_IN)
            module.other_param_names = module.other_param_names[:] + (ORDER_FIELD,)
            module.bidim_order = {}
        order = getattr(config, ORDER_FIELD)
        module.bidim_order[adapter_name] = order
        magnitude_out, magnitude_in = initial_magnitudes(_adapted_weight(module, adapter_name), order)
        device = module.lora_A[adapter_name].weight.device
        module.lora_magnitude_out[adapter_name] = nn.Parameter(magnitude_out.to(device))
        module.lora_magnitude_in[adapter_name] = nn.Parameter(magnitude_in.to(device))

    @staticmethod
    def _merge_gains(module: LoraLinear, active_adapter: str, safe_merge: bool) -> tuple[torch.Tensor, torch.Tensor]:
        # The norms come from the unmerged base weight, as in forward, even when other adapters are merged already;
        # the gains are cached because unmerge cannot recompute them from the merged weight.
        with module._unmerged_base_weight(safe_merge=safe_merge) as base_weight:
            gain_out, gain_in = (g.detach() for g in adapter_gains(module, active_adapter, base_weight))
        module._cache_store(f"{active_adapter}-bidim-gains", (gain_out, gain_in))
        return gain_out, gain_in

    @staticmethod
    def _merged(module: LoraLinear, active_adapter: str, current: torch.Tensor, gain_out, gain_in) -> torch.Tensor:
        """diag(g_out) (current + s B A) diag(g_in), in the stored layout and dtype."""
        weight = _out_in(current, module.fan_in_fan_out).float() + _lora_delta(module, active_adapter).detach()
        return _out_in(scale_weight(weight, gain_out, gain_in), module.fan_in_fan_out).to(current.dtype)

    @staticmethod
    def merge_safe(module: LoraLinear, active_adapter: str, orig_weight: torch.Tensor) -> torch.Tensor:
        gain_out, gain_in = BidimLinearVariant._merge_gains(module, active_adapter, safe_merge=True)
        # `orig_weight` was copied before the replay inside _unmerged_base_weight rebuilt the base weight, and in
        # low precision the two can differ: continue from the rebuilt one (as PEFT's DoRA does)
        current = dequantize_module_weight(module.get_base_layer()).detach()
        return BidimLinearVariant._merged(module, active_adapter, current, gain_out, gain_in)

    @staticmethod
    def merge_unsafe(module: LoraLinear, active_adapter: str, orig_weight: torch.Tensor) -> None:
        gain_out, gain_in = BidimLinearVariant._merge_gains(module, active_adapter, safe_merge=False)
        orig_weight.data = BidimLinearVariant._merged(module, active_adapter, orig_weight.data, gain_out, gain_in)

    @staticmethod
    def unmerge(module: LoraLinear, active_adapter: str, orig_weight: torch.Tensor) -> torch.Tensor:
        gain_out, gain_in = module._cache_pop(f"{active_adapter}-bidim-gains")
        weight = unscale_weight(_out_in(orig_weight.data, module.fan_in_fan_out).float(), gain_out, gain_in)
        weight = weight - _lora_delta(module, active_adapter).detach()
        return _out_in(weight, module.fan_in_fan_out).to(orig_weight.dtype)

    @staticmethod
    def forward(module: LoraLinear, active_adapter: str, x: torch.Tensor, result: torch.Tensor,
                **kwargs: Any) -> torch.Tensor:
        """`result` plus BoRA's change of this layer's output (used when it is not the only active adapter)."""
        base_weight = _out_in(module.get_base_layer().weight, module.fan_in_fan_out)
        change = factorised_output(module, active_adapter, x) - F.linear(x, base_weight.to(x.dtype))
        return result + change.to(result.dtype)


class BidimLoraLinear(LoraLinear):
    """PEFT's LoRA layer for nn.Linear and transformers' Conv1D that also knows the BoRA variant.

    Adapters without the BoRA flag (plain LoRA, DoRA, ...) resolve exactly as in PEFT, so one layer can hold
    several adapters of different kinds.
    """

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: Any, **kwargs: Any) -> None:
        if kwargs.get("parameter_name") is not None:
            raise ValueError("BoRA adapts modules, not bare parameters (target_parameters)")
        target = base_layer.get_base_layer() if isinstance(base_layer, BaseTunerLayer) else base_layer
        if not target.weight.dtype.is_floating_point:
            raise ValueError(f"BoRA needs a floating-point weight; {type(target).__name__} is quantised")
        is_conv1d = isinstance(target, Conv1D)
        if is_conv1d != bool(config.fan_in_fan_out):
            # same correction as PEFT's default dispatch: the layout is a property of the layer, not a choice
            warnings.warn(f"fan_in_fan_out set to {is_conv1d} for {type(target).__name__}")
            config.fan_in_fan_out = is_conv1d
        super().__init__(base_layer, adapter_name, config=config, is_target_conv_1d_layer=is_conv1d, **kwargs)

    def resolve_lora_variant(self, *, config: Any, **kwargs: Any):
        if getattr(config, VARIANT_FIELD, False):
            if config.use_dora:
                raise ValueError(f"use_dora and {VARIANT_FIELD} are exclusive: pick DoRA or BoRA")
            return BidimLinearVariant()
        return super().resolve_lora_variant(config=config, **kwargs)

    def _sole_bidim_adapter(self, kwargs: dict) -> str | None:
        """The adapter to run in factorised form, when exactly one BoRA adapter is active and unmerged."""
        if self.disable_adapters or self.merged or kwargs.get("adapter_names") is not None:
            return None
        active = [name for name in self.active_adapters if name in self.lora_A]
        if len(active) == 1 and isinstance(self.lora_variant.get(active[0]), BidimLinearVariant):
            return active[0]
        return None

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        adapter = self._sole_bidim_adapter(kwargs)
        if adapter is None:
            return super().forward(x, *args, **kwargs)
        self._check_forward_args(x, *args, **kwargs)
        result = factorised_output(self, adapter, x)
        bias = self.get_base_layer().bias
        if bias is not None:
            result = result + bias.to(result.dtype)
        return result.to(x.dtype)

    def __repr__(self) -> str:
        return "bidim_" + super().__repr__()
