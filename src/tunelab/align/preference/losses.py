"""Preference losses as pure functions of per-sequence log-probabilities (sums over response tokens).

Implicit reward (DPO, EPA): r(x, y) = beta * (log pi_theta(y|x) - log pi_ref(y|x)).

DPO:  -log sigmoid(r(x, y+) - r(x, y-))
EPA:  log(w + sum_{y- in S(x) u W(x)} c(y-) * exp(r(x, y-) - r(x, y+)))

In the EPA form `w` plays the part of the positive's own term exp(r+ - r+) = 1: with one strong negative,
no weak ones and w = 1 it is DPO exactly (log(1 + e^{-m}) = -log sigmoid(m)). Writing the positive's term
separately, log(1 + w' + sum ...), the same identity reads "w' -> 0", which is how the method is often stated.
`c(y-)` is 1 for strong negatives and `weak_weight` for weak ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def implicit_rewards(policy_logps: torch.Tensor, reference_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """beta * log(pi_theta / pi_ref) per sequence (any shape)."""
    return beta * (policy_logps - reference_logps)


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """Per-example DPO (sigmoid) loss, shape [B]."""
    margin = implicit_rewards(policy_chosen_logps, reference_chosen_logps, beta) - implicit_rewards(
        policy_rejected_logps, reference_rejected_logps, beta
    )
    return -F.logsigmoid(margin)


def epa_loss_from_rewards(
    chosen_rewards: torch.Tensor,
    strong_rewards: torch.Tensor,
    weak_rewards: torch.Tensor | None = None,
    w: float = 1.0,
    weak_weight: float = 1.0,
) -> torch.Tensor:
    """Per-example EPA loss from implicit rewards: chosen [B], strong [B, ns], weak [B, nw] (or None).

    Computed as a logsumexp over [log w] + [r- - r+ + log c(y-)] so large margins stay finite.
    """
    if w < 0 or weak_weight < 0:
        raise ValueError("w and weak_weight must be >= 0")
    logits = [strong_rewards - chosen_rewards.unsqueeze(-1)]
    if weak_rewards is not None and weak_rewards.shape[-1] > 0 and weak_weight > 0:
        logits.append(weak_rewards - chosen_rewards.unsqueeze(-1) + math.log(weak_weight))
    if w > 0:
        logits.append(torch.full_like(chosen_rewards, math.log(w)).unsqueeze(-1))
    return torch.logsumexp(torch.cat(logits, dim=-1), dim=-1)


def epa_loss(
    policy_chosen_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    policy_strong_logps: torch.Tensor,
    reference_strong_logps: torch.Tensor,
    policy_weak_logps: torch.Tensor | None = None,
    reference_weak_logps: torch.Tensor | None = None,
    beta: float = 0.1,
    w: float = 1.0,
    weak_weight: float = 1.0,
) -> torch.Tensor:
    """Per-example EPA loss, shape [B]; strong log-probs [B, ns], weak [B, nw] (optional)."""
    weak = None
    if policy_weak_logps is not None:
        weak = implicit_rewards(policy_weak_logps, reference_weak_logps, beta)
    return epa_loss_from_rewards(
        implicit_rewards(policy_chosen_logps, reference_chosen_logps, beta),
        implicit_rewards(policy_strong_logps, reference_strong_logps, beta),
        weak,
        w=w,
        weak_weight=weak_weight,
    )
