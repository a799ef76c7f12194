"""Preference records of the enumerable task as index tensors: the exact expectation and N sampled records.

A RecordSet is a weighted list of (x, y+, y- strong, [weak...]) index tuples. The exact expected loss is a
RecordSet too (every (x, y) with weight p*(y|x) / P, times a fixed table of weak draws), so one loss path
serves both the exact and the finite-N studies.

Weak negatives, two rules:
  "uniform": u ~ Uniform(Y), the response space itself (the distribution under which EPA's minimiser is r* + c(x));
  "other":   a response recorded for a *different* prompt (its chosen or rejected), uniformly over those
             records: the trainer's rule (`tunelab.align.preference.data.choose_weak_negatives`, source "both"),
             drawn here with replacement.
"""

from __future__ import annotations

import dataclasses

import torch

from tunelab.align.preference.enumerable_config import WEAK_RULES
from tunelab.align.preference.enumerable_task import EnumerableTask


@dataclasses.dataclass
class RecordSet:
    prompt: torch.Tensor  # [R] long
    chosen: torch.Tensor  # [R] long
    rejected: torch.Tensor  # [R] long
    weak: torch.Tensor  # [R, nw] long (nw may be 0)
    weight: torch.Tensor  # [R] float64, sums to 1

    def __len__(self) -> int:
        return self.prompt.shape[0]


def rejected_distribution(task: EnumerableTask) -> torch.Tensor:
    """p_s(u|x) = sum_y p*(y|x) [s(x, y) = u]: how often u is recorded as the rejected response of x."""
    out = torch.zeros_like(task.positive_prob)
    return out.scatter_add_(1, task.partner, task.positive_prob)


def other_prompt_distribution(task: EnumerableTask) -> torch.Tensor:
    """q_x(u): the population law of the "other" rule, the mean over x' != x of (p*(u|x') + p_s(u|x')) / 2."""
    per_prompt = (task.positive_prob + rejected_distribution(task)) / 2
    P = task.prompts
    return (per_prompt.sum(0, keepdim=True) - per_prompt) / (P - 1)


def weak_table(task: EnumerableTask, rule: str, draws: int, nw: int, gen: torch.Generator) -> torch.Tensor:
    """[P, K, draws, nw] weak-negative indices for the exact loss: a fixed seeded table, so the objective is
    deterministic (as in tunelab.align.preference.theory)."""
    P, K = task.prompts, task.size
    if rule == "uniform":
        return torch.randint(0, K, (P, K, draws, nw), generator=gen)
    if rule == "other":
        q = other_prompt_distribution(task)  # [P, K]
        flat = torch.multinomial(q, K * draws * nw, replacement=True, generator=gen)
        return flat.view(P, K, draws, nw)
    raise ValueError(f"unknown weak rule '{rule}' ({', '.join(WEAK_RULES)})")


def expected_records(task: EnumerableTask, weak: torch.Tensor | None = None) -> RecordSet:
    """Every (x, y+) with weight p*(y+|x) / P; with a weak table [P, K, D, nw], one record per draw d (weight / D)."""
    P, K = task.prompts, task.size
    D = 1 if weak is None else weak.shape[2]
    prompt = torch.arange(P).view(P, 1, 1).expand(P, K, D).reshape(-1)
    chosen = torch.arange(K).view(1, K, 1).expand(P, K, D).reshape(-1)
    rejected = task.partner.unsqueeze(-1).expand(P, K, D).reshape(-1)
    weight = (task.positive_prob / (P * D)).unsqueeze(-1).expand(P, K, D).reshape(-1)
    weak_idx = torch.zeros(len(prompt), 0, dtype=torch.long) if weak is None else weak.reshape(P * K * D, -1)
    return RecordSet(prompt, chosen, rejected, weak_idx, weight)


def sample_records(task: EnumerableTask, n: int, gen: torch.Generator) -> RecordSet:
    """N records per prompt: y+ ~ p*(.|x), rejected = s(x, y+); equal weights; no weak negatives yet."""
    P = task.prompts
    chosen = torch.multinomial(task.positive_prob, n, replacement=True, generator=gen)  # [P, n]
    prompt = torch.arange(P).unsqueeze(-1).expand(P, n)
    rejected = torch.gather(task.partner, 1, chosen)
    R = P * n
    return RecordSet(prompt.reshape(-1), chosen.reshape(-1), rejected.reshape(-1),
                     torch.zeros(R, 0, dtype=torch.long), torch.full((R,), 1.0 / R, dtype=torch.float64))


def other_prompt_draws(records: RecordSet, nw: int, gen: torch.Generator) -> torch.Tensor:
    """[R, nw]: for each record, nw responses drawn uniformly from the chosen and rejected responses of the
    records of other prompts (the trainer's pool, source "both")."""
    pool_prompt = torch.cat([records.prompt, records.prompt])
    pool_response = torch.cat([records.chosen, records.rejected])
    order = torch.argsort(pool_prompt, stable=True)
    pool_prompt, pool_response = pool_prompt[order], pool_response[order]
    P = int(pool_prompt.max()) + 1
    counts = torch.bincount(pool_prompt, minlength=P)
    starts = torch.cumsum(counts, 0) - counts
    own = counts[records.prompt].unsqueeze(-1)  # [R, 1]
    if bool((len(pool_prompt) - own == 0).any()):
        raise ValueError("weak negatives from other prompts need records of at least 2 prompts")
    # a uniform index into the pool with the record's own prompt block cut out, then shifted past that block
    j = (torch.rand(len(records), nw, generator=gen, dtype=torch.float64) * (len(pool_prompt) - own)).long()
    j = j + own * (j >= starts[records.prompt].unsqueeze(-1))
    return pool_response[j]


def with_weak(records: RecordSet, task: EnumerableTask, rule: str, nw: int, gen: torch.Generator) -> RecordSet:
    """The records with nw weak negatives each, drawn once (fixed for training, as in the trainer)."""
    if rule == "uniform":
        weak = torch.randint(0, task.size, (len(records), nw), generator=gen)
    elif rule == "other":
        weak = other_prompt_draws(records, nw, gen)
    else:
        raise ValueError(f"unknown weak rule '{rule}' ({', '.join(WEAK_RULES)})")
    return dataclasses.replace(records, weak=weak)
