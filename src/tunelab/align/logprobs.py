"""Token log-probabilities without the fp32 [batch, seq, vocab] logits, and per-sequence sums over response tokens
(the reference model's, cached once per data set, are in preference/reference.py).

One kernel serves DPO / EPA and PoFT. `model_token_logps` runs the model with its LM head switched to the identity,
so the forward returns the final hidden states, and `linear_logps` projects only the scored positions through the
LM head weight, a chunk of rows at a time: per chunk it keeps the row's logsumexp, never the logits, and the
backward recomputes each chunk's logits. Peak extra memory is one [chunk, vocab] block instead of [N, T, vocab]
logits, their fp32 copy, the log-softmax and its gradient. Models whose head is more than a linear map (logit
soft-capping or scaling, a LoRA-wrapped head, offloading hooks) fall back to their logits and the row-chunked
`selective_logps`.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch

from tunelab.align.chat import pad_id_of, pad_sequences, tokenize_prompt_response

CHUNK_BYTES = 64 * 2**20  # fp32 logits per chunk; ~340 rows at a 49k vocabulary
# config fields that make the logits more than hidden @ W.T + b (the fused path would get them wrong)
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                     "logits_scaling")


def chunk_rows(vocab: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    return max(1, chunk_bytes // (4 * vocab))


def selective_logps(logits: torch.Tensor, targets: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """log_softmax(logits).gather(targets) for logits [..., V] and targets [...], a block of rows at a time (no
    full-size log-softmax or fp32 copy). Half precision is upcast: its logsumexp over a vocabulary loses the small
    differences."""
    flat, index = logits.reshape(-1, logits.size(-1)), targets.reshape(-1)
    chunk = chunk or chunk_rows(flat.size(-1))
    out = []
    for start in range(0, flat.size(0), chunk):
        rows = flat[start : start + chunk]
        rows = rows if rows.dtype in (torch.float32, torch.float64) else rows.float()
        picked = rows.gather(-1, index[start : start + chunk].unsqueeze(-1)).squeeze(-1)
        out.append(picked - torch.logsumexp(rows, dim=-1))
    if not out:
        return (flat.sum(-1) * 0).float().view(targets.shape)  # connected to the graph, so backward still runs
    return torch.cat(out).view(targets.shape)


class _LinearLogProbs(torch.autograd.Function):
    """log softmax(hidden @ weight.T + bias)[target] per row; saves hidden and one logsumexp per row."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk):
        lse = hidden.new_empty(hidden.size(0), dtype=torch.float32)
        picked = torch.empty_like(lse)
        for start in range(0, hidden.size(0), chunk):
            rows = slice(start, start + chunk)
            logits = torch.nn.functional.linear(hidden[rows], weight, bias).float()
            lse[rows] = torch.logsumexp(logits, dim=-1)
            picked[rows] = logits.gather(-1, targets[rows].unsqueeze(-1)).squeeze(-1)
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.chunk = chunk
        return picked - lse

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        grad_b = torch.zeros(weight.size(0), dtype=torch.float32, device=weight.device) if need_b else None
        for start in range(0, hidden.size(0), ctx.chunk):
            rows = slice(start, start + ctx.chunk)
            logits = torch.nn.functional.linear(hidden[rows], weight, bias).float()
            # d/dlogits of (logit[target] - logsumexp) = onehot - softmax, scaled by the incoming gradient
            grad_logits = torch.exp_(logits.sub_(lse[rows].unsqueeze(-1))).mul_(-grad_out[rows].unsqueeze(-1))
            grad_logits.scatter_add_(-1, targets[rows].unsqueeze(-1), grad_out[rows].unsqueeze(-1).float())
            if need_h:
                grad_h[rows] = (grad_logits.to(weight.dtype) @ weight).to(hidden.dtype)
            if need_w:
                grad_w.addmm_(grad_logits.t(), hidden[rows].float())
            if need_b:
                grad_b += grad_logits.sum(0)
        return (grad_h, None if grad_w is None else grad_w.to(weight.dtype),
                None if grad_b is None else grad_b.to(weight.dtype), None, None)


def linear_logps(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
                 chunk: int | None = None) -> torch.Tensor:
    """log softmax(hidden @ weight.T + bias)[targets] for hidden [M, H], weight [V, H], targets [M] -> [M] (fp32),
    differentiable in hidden, weight and bias, never holding more than [chunk, V] logits."""
    if hidden.size(0) == 0:
        return (hidden.sum(-1) + weight.sum() * 0).float()  # connected to the graph, so backward still runs
    return _LinearLogProbs.apply(hidden, weight, bias, targets, chunk or chunk_rows(weight.size(0)))


def unwrap(model):
    """The module inside DistributedDataParallel / DataParallel wrappers."""
    while isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
        model = model.module
    return model


def fusable_head(model) -> torch.nn.Linear | None:
    """The model's LM head when its logits are exactly hidden @ W.T + b, else None (use the logits)."""
    inner = unwrap(model)
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    config = getattr(inner, "config", None)
    if type(head) is not torch.nn.Linear or hasattr(head, "_hf_hook") or config is None:
        return None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    if any(getattr(text, name, None) not in (None, 1.0) for name in _LOGIT_TRANSFORMS):
        return None
    return head


@contextlib.contextmanager
def _head_as_identity(head: torch.nn.Module) -> Iterator[None]:
    # an instance attribute shadows the class's forward; the model's own forward (and any DDP wrapper) runs as usual
    head.forward = lambda hidden: hidden
    try:
        yield
    finally:
        del head.forward


def model_token_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, score_mask: torch.Tensor,
                      chunk: int | None = None) -> torch.Tensor:
    """log p(input_ids[:, t+1] | input_ids[:, :t+1]) where score_mask [N, T-1] is set, 0 elsewhere; shape [N, T-1].

    Only the scored positions are projected through the LM head (see the module docstring)."""
    targets, score_mask = input_ids[:, 1:], score_mask.bool()
    head = fusable_head(model)
    if head is None:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1]
        picked = selective_logps(logits[score_mask], targets[score_mask], chunk)
    else:
        with _head_as_identity(head):
            hidden = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1]
        picked = linear_logps(hidden[score_mask], head.weight, head.bias, targets[score_mask], chunk)
    # masked_scatter keeps the zeros connected to the graph even when nothing is scored
    return picked.new_zeros(score_mask.shape).masked_scatter(score_mask, picked)


def token_logps(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """log p(token_t | tokens_<t) for t = 1..T-1 from given logits [N, T, V], shape [N, T-1]."""
    return selective_logps(logits[:, :-1], input_ids[:, 1:])


def masked_sequence_logps(per_token: torch.Tensor, completion_mask: torch.Tensor, average: bool = False) -> torch.Tensor:
    """Sum (or mean) of per-token log-probs over response tokens; completion_mask is [N, T] (shifted here)."""
    mask = completion_mask[:, 1:].to(per_token.dtype)
    total = (per_token * mask).sum(-1)
    return total / mask.sum(-1).clamp(min=1) if average else total


def sequence_logps(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor, average: bool = False
) -> torch.Tensor:
    """log pi(response | prompt) per row, summed over response tokens (average=True: per-token mean), shape [N]."""
    per_token = model_token_logps(model, input_ids, attention_mask, completion_mask[:, 1:])
    return masked_sequence_logps(per_token, completion_mask, average=average)


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
def response_logps(model, tokenizer, pairs, batch_size: int = 16, max_length: int = 512, average: bool = False,
                   reference: bool = False) -> torch.Tensor:
    """log pi(response | prompt) for a list of (prompt, response) pairs with the chat template, shape [N].

    reference=True switches PEFT adapters off (the reference model).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad_id = pad_id_of(tokenizer)
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
