"""PoFT (Preference-Oriented Supervised Fine-Tuning, AAAI 2025, arXiv 2412.12865): the loss and its pure helpers.

For an SFT example (x, y) the target model's score is its mean log-probability per response token,

    s_theta = 1/|y| * sum_t log pi_theta(y_t | x, y_<t)

and the reference score s_ref is the mean, over K aligned models, of each model's own mean-token log-probability of
the same response (each model with its own tokenizer and chat template, computed once in `poft.scoring`). Then

    loss = -log sigmoid(beta * (s_theta - s_ref) + gamma)          (beta = 1, gamma = 0 in the paper)

d loss / d s_theta = -beta * sigmoid(beta * (s_ref - s_theta) - gamma): the SFT gradient of the per-example mean
log-likelihood, weighted per example. Responses the aligned models find unlikely (low s_ref) get a small weight, which
is why PoFT tolerates noisy SFT data.

Response tokens on both sides: the official code averages the target over prompt + response tokens (every non-pad
token) but the aligned models over the response only, so the two scores it compares are means over different token
sets. Here both are means over the response tokens (the assistant turn, its end-of-turn token included).
"""

from __future__ import annotations

import hashlib
import json
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F

from tunelab.align.logprobs import model_token_logps, selective_logps
from tunelab.errors import UserError

def poft_loss(policy_scores: torch.Tensor, reference_scores: torch.Tensor, beta: float = 1.0,
              gamma: float = 0.0) -> torch.Tensor:
    """Per-example PoFT loss -log sigmoid(beta * (s_theta - s_ref) + gamma) (reduce it yourself)."""
    reference_scores = reference_scores.to(policy_scores)
    return -F.logsigmoid(beta * (policy_scores - reference_scores) + gamma)


def poft_weight(policy_scores: torch.Tensor, reference_scores: torch.Tensor, beta: float = 1.0,
                gamma: float = 0.0) -> torch.Tensor:
    """The per-example factor w with d loss / d s_theta = -beta * w: sigmoid(beta * (s_ref - s_theta) - gamma)."""
    return torch.sigmoid(beta * (reference_scores.to(policy_scores) - policy_scores) - gamma)


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(token t+1 | tokens up to t) per position (0 where not scored), and the mask of scored positions.

    `logits` (B, T, V) come from the model on the full sequence; `completion_mask` (B, T) is 1 on response tokens
    (align.chat.pad_sequences); position t's logits predict token t + 1, hence the shift.
    """
    targets, mask = input_ids[:, 1:], completion_mask[:, 1:].bool()
    picked = selective_logps(logits[:, :-1][mask], targets[mask])
    return picked.new_zeros(mask.shape).masked_scatter(mask, picked), mask


def model_token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """`token_logprobs` straight from the model, without its [B, T, V] logits (the shared log-prob kernel)."""
    mask = completion_mask[:, 1:].bool()
    return model_token_logps(model, input_ids, attention_mask, mask), mask


def masked_mean(logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sequence mean log-probability over the scored tokens: the PoFT score s."""
    counts = mask.sum(-1)
    if bool((counts == 0).any()):
        raise UserError("a sequence has no response tokens to score (empty response, or the prompt fills max_length)")
    return logprobs.sum(-1) / counts


def token_mean_nll(logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Standard SFT loss: mean negative log-likelihood over all scored tokens of the batch."""
    return -logprobs.sum() / mask.sum().clamp_min(1)


def mean_response_logprob(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor
                           ) -> torch.Tensor:
    """Per-sequence mean log-probability over the response tokens: the PoFT score s."""
    return masked_mean(*token_logprobs(logits, input_ids, completion_mask))


def sft_loss(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Standard SFT loss: mean negative log-likelihood over all response tokens of the batch."""
    return token_mean_nll(*token_logprobs(logits, input_ids, completion_mask))


def reference_score(per_model_scores: Sequence[Sequence[float]]) -> list[float]:
    """s_ref per example: the mean over the K aligned models (rows: models, columns: examples)."""
    if not per_model_scores:
        raise UserError("PoFT needs at least one aligned model's scores")
    lengths = {len(row) for row in per_model_scores}
    if len(lengths) != 1:
        raise UserError(f"aligned models scored different numbers of examples: {sorted(lengths)}")
    return [sum(column) / len(column) for column in zip(*per_model_scores)]


# --------------------------------------------------------------------------- examples and hashing

def validate_examples(examples: Iterable[dict], prompt_key: str = "prompt", response_key: str = "response"
                      ) -> list[tuple[str, str]]:
    """(prompt, response) pairs from records, with a one-line error naming the first bad record."""
    pairs = []
    for index, record in enumerate(examples):
        prompt, response = record.get(prompt_key), record.get(response_key)
        if not isinstance(prompt, str) or not isinstance(response, str):
            raise UserError(f"example {index}: needs string fields '{prompt_key}' and '{response_key}' "
                            f"(found {sorted(record)})")
        if not response.strip():
            raise UserError(f"example {index}: empty response; PoFT scores responses, remove or fill it")
        pairs.append((prompt, response))
    if not pairs:
        raise UserError("no examples: the SFT data is empty")
    return pairs


def example_key(prompt: str, response: str) -> str:
    """Content hash of one example: the cache key of its score, so edited data never hits a stale score."""
    return hashlib.sha256(json.dumps([prompt, response]).encode("utf-8")).hexdigest()


def data_hash(pairs: Sequence[tuple[str, str]]) -> str:
    """Hash of the ordered dataset: reference scores are only valid for exactly this data."""
    digest = hashlib.sha256()
    for prompt, response in pairs:
        digest.update(example_key(prompt, response).encode("ascii"))
    return digest.hexdigest()
