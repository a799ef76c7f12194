"""Tiny causal transformers whose output is restricted to the enumerable response set, E of them at once.

Vocabulary: P prompt tokens, then V response tokens. A sequence is [prompt token, y_1, ..., y_L]; at each
response position the next-token distribution is the softmax over the V response logits only, so
pi(y|x) = prod_t softmax_V(logits_t)[y_t] sums to exactly 1 over the V^L responses, and one forward over
all P * V^L sequences gives the whole policy table. Log-probs go through the product's kernel
(`tunelab.align.logprobs`), so the study exercises the same code as the trainer.

Why a hand-written ensemble rather than transformers' Llama: at this size a step is all per-op overhead, and
E independent LMs (every size x initialisation of one study cell) stacked on a leading axis cost about as
much as one. Adam is elementwise, so training the stack on the sum of the members' losses is E independent runs.
Member e is initialised from its own seed, whatever else is in the stack.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from tunelab.align.logprobs import masked_sequence_logps, token_logps


@dataclasses.dataclass(frozen=True)
class LMShape:
    hidden: int = 32
    layers: int = 2
    heads: int = 4
    intermediate: int = 64
    logit_scale: float = 1.0  # std of the initial next-token logits: how far a random LM is from uniform


def _member_params(vocab: int, length: int, shape: LMShape, seed: int) -> dict[str, torch.Tensor]:
    """One LM's weights: N(0, 1/fan_in) matrices, zero biases, unit layer norms; head std logit_scale/sqrt(d)."""
    gen = torch.Generator().manual_seed(seed)
    d, f = shape.hidden, shape.intermediate

    def normal(*size, std):
        return torch.randn(*size, generator=gen) * std

    p = {"tok": normal(vocab, d, std=1.0), "pos": normal(length, d, std=1.0),
         "head_w": normal(d, vocab, std=shape.logit_scale / math.sqrt(d)), "head_b": torch.zeros(vocab),
         "lnf_w": torch.ones(d), "lnf_b": torch.zeros(d)}
    for i in range(shape.layers):
        p |= {f"{i}.ln1_w": torch.ones(d), f"{i}.ln1_b": torch.zeros(d),
              f"{i}.qkv_w": normal(d, 3 * d, std=1 / math.sqrt(d)), f"{i}.qkv_b": torch.zeros(3 * d),
              f"{i}.o_w": normal(d, d, std=1 / math.sqrt(d)), f"{i}.o_b": torch.zeros(d),
              f"{i}.ln2_w": torch.ones(d), f"{i}.ln2_b": torch.zeros(d),
              f"{i}.up_w": normal(d, f, std=1 / math.sqrt(d)), f"{i}.up_b": torch.zeros(f),
              f"{i}.down_w": normal(f, d, std=1 / math.sqrt(f)), f"{i}.down_b": torch.zeros(d)}
    return p


class EnsembleLM(nn.Module):
    """E independent pre-LN causal transformers (learned positions); forward(ids [N, T]) -> logits [E, N, T, vocab]."""

    def __init__(self, vocab: int, length: int, shape: LMShape, seeds: list[int]):
        super().__init__()
        self.shape, self.members = shape, len(seeds)
        members = [_member_params(vocab, length, shape, s) for s in seeds]
        self.params = nn.ParameterDict({k.replace(".", "_"): nn.Parameter(torch.stack([m[k] for m in members]))
                                        for k in members[0]})

    def _p(self, name: str) -> torch.Tensor:
        return self.params[name.replace(".", "_")]

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        w, b = self._p(name + "_w"), self._p(name + "_b")
        return F.layer_norm(x, x.shape[-1:]) * w[:, None] + b[:, None]

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        # one [E, N*T, d] x [E, d, out] bmm: a broadcast matmul over [E, N, T, d] would be E*N tiny products
        return torch.baddbmm(self._p(name + "_b")[:, None], x, self._p(name + "_w"))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        E, (N, T), h = self.members, ids.shape, self.shape.heads
        x = (self._p("tok")[:, ids] + self._p("pos")[:, None, :T]).reshape(E, N * T, -1)  # [E, N*T, d]
        d = x.shape[-1]
        for i in range(self.shape.layers):
            qkv = self._linear(self._norm(x, f"{i}.ln1"), f"{i}.qkv").view(E * N, T, 3, h, d // h)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [E*N, h, T, d/h]
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self._linear(att.transpose(1, 2).reshape(E, N * T, d), f"{i}.o")
            x = x + self._linear(F.gelu(self._linear(self._norm(x, f"{i}.ln2"), f"{i}.up")), f"{i}.down")
        return self._linear(self._norm(x, "lnf"), "head").view(E, N, T, -1)


def build_lm(prompts: int, tokens: int, positions: int, shape: LMShape, seeds: list[int]) -> EnsembleLM:
    """len(seeds) random LMs over P prompt + V response tokens, sequences of 1 + positions tokens."""
    return EnsembleLM(prompts + tokens, positions + 1, shape, list(seeds))


def sequence_grid(prompts: int, responses: list[tuple[int, ...]]) -> torch.Tensor:
    """[P * K, 1 + L] token ids, prompt-major: row x * K + k is prompt x followed by response k."""
    resp = torch.tensor(responses, dtype=torch.long) + prompts  # response tokens follow the prompt tokens
    K = resp.shape[0]
    head = torch.arange(prompts).repeat_interleave(K).unsqueeze(-1)
    return torch.cat([head, resp.repeat(prompts, 1)], dim=-1)


def log_policy_table(model: EnsembleLM, grid: torch.Tensor, prompts: int) -> torch.Tensor:
    """[E, P, K] log pi(y|x) over the response set, differentiable, float32."""
    E, (N, T) = model.members, grid.shape
    logits = model(grid)[..., prompts:].reshape(E * N, T, -1)  # restrict to the response tokens
    targets = (grid - prompts).clamp(min=0).repeat(E, 1)  # column 0 (the prompt) is never a target after the shift
    completion = torch.ones_like(targets)
    completion[:, 0] = 0
    return masked_sequence_logps(token_logps(logits, targets), completion).view(E, prompts, -1)
