"""Virtual adversarial perturbation (VAP) of hidden states, batched, with padding masks.

For hidden states h (B, T, d) with a mask of real tokens, and a function f(h, mask) -> logits
(the rest of the network and the classifier head, in eval mode):

    p = softmax(f(h));  d ~ N(0, I) on real tokens, normalised per example
    repeat K times:  d <- grad_d KL(p || softmax(f(h + xi * d))), normalised per example
    r = eps * d

Examples do not interact in eval mode (attention and layer norm act within an example), so one
backward pass of the summed KL gives every example its own gradient.  r has norm eps by
construction, so its magnitude is carried separately: the local smoothness KL(p || p(h + r))
and the norm of the last gradient.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.nn.functional as F

LogitsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Defaults from virtual adversarial training on text embeddings (Miyato et al.): xi = 0.1, eps = 5, K = 1.
DEFAULT_XI = 0.1
DEFAULT_EPS = 5.0
DEFAULT_POWER_ITERATIONS = 1


@dataclasses.dataclass
class VAPResult:
    perturbation: torch.Tensor  # r, (B, T, d), zero on padding
    smoothness: torch.Tensor  # KL(p || p(h + r)), (B,)
    grad_norm: torch.Tensor  # norm of the last power-iteration gradient, (B,)
    probs: torch.Tensor  # p, (B, C)


def kl_per_example(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """KL(p || q) for each row, from log-probabilities."""
    return (logp.exp() * (logp - logq)).sum(-1)


def normalise_per_example(d: torch.Tensor, tiny: float = 1e-12) -> torch.Tensor:
    norms = d.flatten(1).norm(dim=1).clamp_min(tiny)
    return d / norms.view(-1, *([1] * (d.dim() - 1)))


def virtual_adversarial_perturbation(
    logits_fn: LogitsFn,
    hidden: torch.Tensor,
    mask: torch.Tensor,
    xi: float = DEFAULT_XI,
    eps: float = DEFAULT_EPS,
    power_iterations: int = DEFAULT_POWER_ITERATIONS,
    generator: torch.Generator | None = None,
    init: torch.Tensor | None = None,
) -> VAPResult:
    """VAP of `hidden` (B, T, d) under `logits_fn`; `mask` (B, T) marks real tokens."""
    if power_iterations < 1:
        raise ValueError("power_iterations must be >= 1")
    hidden = hidden.detach()
    token_mask = mask.to(hidden.dtype).unsqueeze(-1)
    with torch.no_grad():
        logp = F.log_softmax(logits_fn(hidden, mask), dim=-1)
    if init is None:
        init = torch.randn(hidden.shape, generator=generator, dtype=hidden.dtype, device=hidden.device)
    d = normalise_per_example(init * token_mask)
    grad_norm = torch.zeros(hidden.shape[0], dtype=hidden.dtype)
    for _ in range(power_iterations):
        d = d.detach().requires_grad_(True)
        with torch.enable_grad():
            logq = F.log_softmax(logits_fn(hidden + xi * d, mask), dim=-1)
            kl = kl_per_example(logp, logq).sum()
            (grad,) = torch.autograd.grad(kl, d)
        grad = grad * token_mask
        grad_norm = grad.flatten(1).norm(dim=1)
        d = normalise_per_example(grad)
    r = eps * d.detach()
    with torch.no_grad():
        smoothness = kl_per_example(logp, F.log_softmax(logits_fn(hidden + r, mask), dim=-1))
    return VAPResult(perturbation=r, smoothness=smoothness, grad_norm=grad_norm.detach(), probs=logp.exp())
