"""The enumerable preference task: a finite response set, so every expectation and the optimum are exact.

P prompts; a response is a string of `positions` tokens over an alphabet of `tokens` symbols, so the
response set Y has K = tokens ** positions elements for every prompt. True reward r*(x, y) ~ N(0, scale^2).
Preferred responses follow the energy-based preference model y+ ~ p*(y|x) = softmax_y r*(x, y); each
response has ONE fixed rejected partner s(x, y) != y, so a record is (x, y+, s(x, y+)): the comparison
graph is one-directional and not strongly connected, the case where the Bradley-Terry MLE is not unique.

Exact quantities for a policy table log pi [P, K] against log pi_ref [P, K] (means over prompts):
  KL(pi || pi_ref),  J(pi) = E_pi[r*] - beta KL,  pi* = pi_ref exp(r*/beta) / Z  (the maximiser of J),
  J(pi*) = beta log Z.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import torch

from tunelab.align.preference.theory import centred, slope_and_pearson


@dataclasses.dataclass
class EnumerableTask:
    true_reward: torch.Tensor  # [P, K] float64
    partner: torch.Tensor  # [P, K] long: the fixed rejected response s(x, y)
    responses: list[tuple[int, ...]]  # K token tuples, index k -> response k

    @property
    def prompts(self) -> int:
        return self.true_reward.shape[0]

    @property
    def size(self) -> int:
        return self.true_reward.shape[1]

    @property
    def positive_prob(self) -> torch.Tensor:
        """p*(y|x) = softmax r*(x, .): the distribution of preferred responses."""
        return torch.softmax(self.true_reward, dim=-1)


def response_set(positions: int, tokens: int) -> list[tuple[int, ...]]:
    return list(itertools.product(range(tokens), repeat=positions))


def make_task(prompts: int, positions: int, tokens: int, seed: int, reward_scale: float = 1.0) -> EnumerableTask:
    gen = torch.Generator().manual_seed(seed)
    responses = response_set(positions, tokens)
    K = len(responses)
    true_reward = reward_scale * torch.randn(prompts, K, generator=gen, dtype=torch.float64)
    offsets = torch.randint(1, K, (prompts, K), generator=gen)  # partner != y
    partner = (torch.arange(K).unsqueeze(0) + offsets) % K
    return EnumerableTask(true_reward, partner, responses)


def kl_divergence(log_pi: torch.Tensor, log_ref: torch.Tensor) -> float:
    """Mean over prompts of KL(pi(.|x) || pi_ref(.|x)), exact sums over the response set."""
    return float((log_pi.exp() * (log_pi - log_ref)).sum(-1).mean())


def rlhf_objective(log_pi: torch.Tensor, log_ref: torch.Tensor, true_reward: torch.Tensor, beta: float) -> float:
    """J(pi) = mean_x (E_{y~pi}[r*(x, y)] - beta KL(pi || pi_ref)), exact."""
    expected_reward = float((log_pi.exp() * true_reward).sum(-1).mean())
    return expected_reward - beta * kl_divergence(log_pi, log_ref)


def optimal_log_policy(log_ref: torch.Tensor, true_reward: torch.Tensor, beta: float) -> torch.Tensor:
    """log pi*(y|x) = log pi_ref + r*/beta - log Z(x): the KL-constrained optimum."""
    return torch.log_softmax(log_ref + true_reward / beta, dim=-1)


def optimal_objective(log_ref: torch.Tensor, true_reward: torch.Tensor, beta: float) -> float:
    """J(pi*) = mean_x beta log sum_y pi_ref(y|x) exp(r*(x, y)/beta)."""
    return float(beta * torch.logsumexp(log_ref + true_reward / beta, dim=-1).mean())


def reward_recovery(learned: torch.Tensor, true_reward: torch.Tensor) -> dict[str, float]:
    """Slope and Pearson r of learned on true reward, and the slope-1 error: the RMS residual of
    learned = true + c(x). All centred per prompt, since an implicit reward is defined up to c(x)."""
    a, b = centred(learned).numpy(), centred(true_reward).numpy()
    slope, pearson = slope_and_pearson(a, b)
    return {"slope": slope, "pearson": pearson, "slope1_error": float(np.sqrt(np.mean((a - b) ** 2)))}
