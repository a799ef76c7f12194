"""Guards against likelihood displacement: pure functions the DPO / EPA loss adds when their options are on.

On near-identical pairs ("34 + 7 = 41" vs "34 + 7 = 42") a contrastive loss can lower the chosen response's
likelihood as long as the rejected one falls faster (DPO-Positive, arXiv 2402.13228; NCA, arXiv 2402.05369).

* DPO-Positive (eq. 3 of 2402.13228): inside the loss the chosen reward becomes
  r+ - beta * lambda * max(0, log pi_ref(y+|x) - log pi(y+|x)). Since r+ = beta * (log pi - log pi_ref) this is
  r+ - lambda * max(0, -r+): the chosen response is penalised only while it is less likely than under the reference.
* NLL term: weight * (-log pi(y+|x) / |y+|), the chosen response's mean token negative log-likelihood (an SFT term
  as in RPO; per-token so that long and short responses weigh alike).
* Weak-negative filter: a weak negative whose text is too similar to the positive (normalised edit similarity above
  a threshold) is dropped, so the loss does not push down what the positive itself says.
(The weak-negative weight c(y-) is `weak_weight` in the EPA loss itself, `tunelab.align.preference.losses`.)
"""

from __future__ import annotations

import torch


def dpop_chosen_rewards(chosen_rewards: torch.Tensor, dpop_lambda: float) -> torch.Tensor:
    """r+ - lambda * max(0, -r+): the chosen implicit reward with the DPO-Positive penalty folded in (any shape)."""
    return chosen_rewards - dpop_lambda * torch.clamp(-chosen_rewards, min=0)


def chosen_nll(policy_chosen_logps: torch.Tensor, chosen_tokens: torch.Tensor) -> torch.Tensor:
    """Mean token NLL of each chosen response: -log pi(y+|x) / |y+| (|y+| >= 1), shape of the inputs."""
    return -policy_chosen_logps / chosen_tokens.clamp(min=1).to(policy_chosen_logps.dtype)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions of characters)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_similarity(a: str, b: str) -> float:
    """1 - Levenshtein(a, b) / max(|a|, |b|): 1 for equal texts, 0 for texts with nothing in place in common."""
    longest = max(len(a), len(b))
    return 1.0 if longest == 0 else 1.0 - edit_distance(a, b) / longest


def too_similar(candidate: str, positive: str, max_similarity: float | None) -> bool:
    """Whether a weak-negative candidate is dropped: its similarity to the positive exceeds `max_similarity`.

    The distance is at least the length difference, so a cheap bound settles most pairs of unequal length first.
    """
    if max_similarity is None:
        return False
    longest = max(len(candidate), len(positive))
    if longest and min(len(candidate), len(positive)) / longest <= max_similarity:
        return False
    return edit_similarity(candidate, positive) > max_similarity
