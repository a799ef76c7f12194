"""A dense, literal implementation of BoRA's weight, step by step as the method is written (for tests).

It builds the full adapted matrix, normalises it along one dimension, scales by that magnitude, normalises the
result along the other dimension and scales again. Nothing is shared with the factorised code in `gains.py`.
"""

from __future__ import annotations

import torch

from tunelab.adapters.gains import IN_FIRST, OUT_FIRST


def dense_bora_weight(base_weight: torch.Tensor, lora_A: torch.Tensor, lora_B: torch.Tensor, scaling: float,
                      magnitude_out: torch.Tensor, magnitude_in: torch.Tensor, order: str) -> torch.Tensor:
    """The (out, in) weight BoRA applies. Norms are detached (they are constants for the gradient)."""
    adapted = base_weight + scaling * (lora_B @ lora_A)
    if order == OUT_FIRST:
        rows = adapted / adapted.norm(dim=1, keepdim=True).detach() * magnitude_out.view(-1, 1)
        return rows / rows.norm(dim=0, keepdim=True).detach() * magnitude_in.view(1, -1)
    if order == IN_FIRST:
        cols = adapted / adapted.norm(dim=0, keepdim=True).detach() * magnitude_in.view(1, -1)
        return cols / cols.norm(dim=1, keepdim=True).detach() * magnitude_out.view(-1, 1)
    raise ValueError(order)


def dense_bora_forward(x: torch.Tensor, base_weight: torch.Tensor, bias: torch.Tensor | None, lora_A: torch.Tensor,
                       lora_B: torch.Tensor, scaling: float, magnitude_out: torch.Tensor,
                       magnitude_in: torch.Tensor, order: str) -> torch.Tensor:
    weight = dense_bora_weight(base_weight, lora_A, lora_B, scaling, magnitude_out, magnitude_in, order)
    return torch.nn.functional.linear(x, weight, bias)
