"""The math of BoRA's dual normalisation, as small pure functions on (out, in) weight matrices.

BoRA (Bi-dimensional Weight-Decomposed Low-Rank Adaptation, arXiv 2412.06441) normalises the adapted weight
W' = W0 + s*B*A twice, once per output row and once per input column, and rescales by two trainable magnitudes
m_out (one per output) and m_in (one per input). Whatever the order, the result factorises as

    W = diag(g_out) @ W' @ diag(g_in),   so   y = g_out * (W' @ (g_in * x)) + b,

with gains g_out = m_out / row_norm and g_in = m_in / col_norm. The norms are detached from the gradient, as DoRA
does, so only the magnitudes (and A, B through W') receive gradients through the gains.

  out_first: row_norm = ||W'[i, :]||,            col_norm = ||(diag(m_out / row_norm) W')[:, j]||
  in_first:  col_norm = ||W'[:, j]||,            row_norm = ||(W' diag(m_in / col_norm))[i, :]||
"""

from __future__ import annotations

import torch

OUT_FIRST = "out_first"
IN_FIRST = "in_first"
ORDERS = (OUT_FIRST, IN_FIRST)

# Keeps an all-zero row or column from turning its gain into 0/0; far below any real weight norm.
NORM_FLOOR = 1e-12


def check_order(order: str) -> str:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    return order


@torch.no_grad()
def dual_norms(weight: torch.Tensor, order: str, magnitude_out: torch.Tensor | None = None,
               magnitude_in: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(row_norm (out,), col_norm (in,)) of the two normalisation steps, in float32 and without gradient.

    The second norm of each order is the norm after the first step rescaled by its magnitude; it is computed from
    the squared weight with one matrix-vector product instead of materialising the intermediate matrix.
    """
    squared = weight.float().square()
    if check_order(order) == OUT_FIRST:
        row_norm = squared.sum(dim=1).sqrt().clamp_min(NORM_FLOOR)
        if magnitude_out is None:
            magnitude_out = row_norm
        col_norm = ((magnitude_out.float() / row_norm).square() @ squared).sqrt().clamp_min(NORM_FLOOR)
    else:
        col_norm = squared.sum(dim=0).sqrt().clamp_min(NORM_FLOOR)
        if magnitude_in is None:
            magnitude_in = col_norm
        row_norm = (squared @ (magnitude_in.float() / col_norm).square()).sqrt().clamp_min(NORM_FLOOR)
    return row_norm, col_norm


def initial_magnitudes(weight: torch.Tensor, order: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(m_out, m_in) that make both gains exactly 1 for `weight`: BoRA starts as the layer it adapts.

    The first magnitude is the first norm; the second is the second norm computed with that first magnitude
    (which, at initialisation, is just the other norm of `weight`).
    """
    row_norm, col_norm = dual_norms(weight, order)
    return row_norm.clone(), col_norm.clone()


def gains(weight: torch.Tensor, magnitude_out: torch.Tensor, magnitude_in: torch.Tensor,
          order: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(g_out, g_in) in float32; differentiable in the magnitudes, constant in `weight` (detached norms)."""
    row_norm, col_norm = dual_norms(weight, order, magnitude_out.detach(), magnitude_in.detach())
    return magnitude_out.float() / row_norm, magnitude_in.float() / col_norm


def scale_weight(weight: torch.Tensor, gain_out: torch.Tensor, gain_in: torch.Tensor) -> torch.Tensor:
    """diag(g_out) @ weight @ diag(g_in) for an (out, in) matrix."""
    return gain_out.view(-1, 1) * weight * gain_in.view(1, -1)


def unscale_weight(weight: torch.Tensor, gain_out: torch.Tensor, gain_in: torch.Tensor) -> torch.Tensor:
    """The inverse of `scale_weight`."""
    return weight / gain_out.view(-1, 1) / gain_in.view(1, -1)
