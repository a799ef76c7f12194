"""Per-sequence log-probabilities over response tokens, and the reference model's, computed once and cached."""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch

from tunelab.align.data import collate_groups


def token_logps(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """log p(token_t | tokens_<t) for t = 1..T-1, shape [N, T-1] (logit - logsumexp: no [N, T, V] log-softmax copy)."""
    logits = logits[:, :-1].float()
    targets = input_ids[:, 1:]
    picked = torch.gather(logits, -1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def masked_sequence_logps(per_token: torch.Tensor, completion_mask: torch.Tensor, average: bool = False) -> torch.Tensor:
    """Sum (or mean) of per-token log-probs over response tokens; completion_mask is [N, T] (shifted here)."""
    mask = completion_mask[:, 1:].to(per_token.dtype)
    total = (per_token * mask).sum(-1)
    return total / mask.sum(-1).clamp(min=1) if average else total


def sequence_logps(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor, average: bool = False
) -> torch.Tensor:
    """log pi(response | prompt) per row, summed over response tokens (average=True: per-token mean), shape [N]."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    return masked_sequence_logps(token_logps(logits, input_ids), completion_mask, average=average)


def is_peft_model(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


@contextlib.contextmanager
def reference_context(model) -> Iterator[None]:
    """The PEFT model with its adapters switched off is the reference; a plain model is used as it is."""
    if is_peft_model(model):
        with model.disable_adapter():
            yield
    else:
        yield


@torch.no_grad()
def group_reference_logps(
    model, groups: Sequence[dict], pad_token_id: int, batch_size: int = 8, average: bool = False, progress=None
) -> list[list[float]]:
    """Reference log-probs of every sequence of every group (list per group), in eval mode, adapters off.

    `progress`: optional callable wrapping the batch iterator (e.g. tunelab.progress.track).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    starts = range(0, len(groups), batch_size)
    if progress is not None:
        starts = progress(starts)
    out: list[list[float]] = []
    try:
        with reference_context(model):
            for start in starts:
                chunk = groups[start : start + batch_size]
                batch = collate_groups(chunk, pad_token_id)
                logps = sequence_logps(
                    model,
                    batch["input_ids"].to(device),
                    batch["attention_mask"].to(device),
                    batch["completion_mask"].to(device),
                    average=average,
                )
                out.extend(logps.view(len(chunk), -1).cpu().tolist())
    finally:
        model.train(was_training)
    return out


@torch.no_grad()
def response_logps(model, tokenizer, pairs, batch_size: int = 16, max_length: int = 512, average: bool = False,
                   reference: bool = False) -> torch.Tensor:
    """log pi(response | prompt) for a list of (prompt, response) pairs with the chat template, shape [N].

    reference=True switches PEFT adapters off (the reference model).
    """
    from tunelab.align.data import pad_sequences, tokenize_prompt_response

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = []
    context = reference_context(model) if reference else contextlib.nullcontext()
    try:
        with context:
            for start in range(0, len(pairs), batch_size):
                prompts, responses = [], []
                for prompt, response in pairs[start : start + batch_size]:
                    p_ids, r_ids = tokenize_prompt_response(tokenizer, prompt, response)
                    prompts.append(p_ids)
                    responses.append(r_ids[: max(1, max_length - len(p_ids))])
                batch = pad_sequences(prompts, responses, pad_id)
                out.append(sequence_logps(model, *(batch[k].to(device) for k in
                                                   ("input_ids", "attention_mask", "completion_mask")), average=average))
    finally:
        model.train(was_training)
    return torch.cat(out).cpu()
