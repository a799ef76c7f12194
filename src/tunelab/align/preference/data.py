"""Preference records -> token ids: validation, weak-negative pairing, groups (the chat split and padding: align/chat.py).

A record has `prompt` (a string or a list of chat messages), `chosen` (a string, or the assistant's messages,
several turns allowed) and `rejected` (one such response or a list of them). Without `prompt`, the prompt is the
longest common start of chosen and rejected (TRL's implicit-prompt format). Every prompt becomes one group of
1 + ns + nw sequences that share the prompt: [chosen, strong negatives (the first ns rejected), weak negatives
(responses of other prompts)].
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any, Sequence

import torch

from tunelab.align.chat import (Messages, common_prefix_length, is_messages, pad_sequences,
                                response_text, tokenize_prompt_response)
from tunelab.align.preference.guards import too_similar
from tunelab.errors import UserError

REQUIRED_COLUMNS = ("chosen", "rejected")  # and `prompt`, unless it is implicit in both (TRL's implicit-prompt format)

@dataclasses.dataclass
class PreferenceExample:
    prompt: str | Messages
    chosen: str | Messages  # a string, or the assistant's turn(s) as messages (multi-turn completions too)
    rejected: list[str | Messages]


def _response(value: Any, what: str, index: int) -> str | Messages:
    if is_messages(value):
        if not all(isinstance(m.get("content"), str) and "role" in m for m in value):
            raise UserError(f"record {index}: every '{what}' message needs a 'role' and a string 'content'")
        if not any(m["content"].strip() for m in value):
            raise UserError(f"record {index}: '{what}' messages are all empty")
        return list(value)
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"record {index}: '{what}' must be a non-empty string or a list of chat messages")
    return value


def _text(value: Any, what: str, index: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"record {index}: '{what}' must be a non-empty string")
    return value


def _rejected_list(value: Any) -> list:
    """`rejected` as a list of responses: one string, one conversation, or a list of either."""
    if isinstance(value, str) or is_messages(value):
        return [value]
    return value if isinstance(value, list) else [value]


def split_implicit_prompt(chosen: Any, rejected: Sequence[Any]) -> tuple[Any, Any, list]:
    """(prompt, chosen, rejected) for records whose prompt is inside every response, as TRL's `extract_prompt`:
    the longest common prefix of messages (conversations) or characters (strings, a space before the split going
    with the responses)."""
    sequences = [chosen, *rejected]
    n = min(len(x) for x in sequences)
    idx = next((i for i in range(n) if any(x[i] != chosen[i] for x in sequences)), n)
    if isinstance(chosen, str) and idx > 0 and chosen[idx - 1] == " ":
        idx -= 1
    return chosen[:idx], chosen[idx:], [r[idx:] for r in rejected]


def normalize_record(record: dict, index: int = 0, ns: int = 1) -> PreferenceExample:
    """Check one record and bring it to (prompt, chosen, [rejected...]); UserError names the record."""
    missing = [c for c in REQUIRED_COLUMNS if c not in record]
    if missing:
        raise UserError(f"record {index}: missing column(s) {', '.join(missing)} (need chosen and rejected, and "
                        "prompt unless it is the conversation both start with)")
    chosen, rejected_raw = record["chosen"], _rejected_list(record["rejected"])
    prompt = record.get("prompt")
    # a string prompt next to conversations is a label, not the model's input (TRL reads it the same way)
    if prompt is None or (is_messages(chosen) and not is_messages(prompt)):
        kinds = {is_messages(x) for x in (chosen, *rejected_raw)}
        if kinds != {is_messages(chosen)} or not all(isinstance(x, (str, list)) for x in (chosen, *rejected_raw)):
            raise UserError(f"record {index}: without a 'prompt', chosen and rejected must all be strings or all "
                            "conversations")
        prompt, chosen, rejected_raw = split_implicit_prompt(chosen, rejected_raw)
        if not prompt:
            raise UserError(f"record {index}: no 'prompt' column and chosen and rejected share no prompt")
    if isinstance(prompt, list):
        if not prompt or not all(isinstance(m, dict) and m.get("content") for m in prompt):
            raise UserError(f"record {index}: 'prompt' messages must be non-empty dicts with 'content'")
    else:
        prompt = _text(prompt, "prompt", index)
    chosen = _response(chosen, "chosen", index)
    rejected = [_response(r, "rejected", index) for r in rejected_raw]
    if len(rejected) < ns:
        raise UserError(f"record {index}: {len(rejected)} rejected response(s), fewer than ns={ns} strong negatives")
    return PreferenceExample(prompt=prompt, chosen=chosen, rejected=rejected)


def normalize_records(records: Sequence[dict], ns: int = 1) -> list[PreferenceExample]:
    if not records:
        raise UserError("the preference data set is empty")
    return [normalize_record(r, i, ns) for i, r in enumerate(records)]


def choose_weak_negatives(
    examples: Sequence[PreferenceExample], nw: int, source: str = "both", seed: int = 0,
    max_similarity: float | None = None,
) -> list[list[str | Messages]]:
    """For each prompt, nw responses drawn (without replacement) from the other prompts' responses.

    source: "chosen", "rejected" or "both" (the pool those responses come from). Fixed by `seed`, so the
    reference log-probs of the resulting sequences can be computed once and cached. `max_similarity`: drop
    candidates whose edit similarity to the prompt's chosen response exceeds it (None: keep all).
    """
    if nw <= 0:
        return [[] for _ in examples]
    if source not in ("chosen", "rejected", "both"):
        raise UserError(f"unknown weak-negative source '{source}' (chosen, rejected or both)")
    if len(examples) < 2:
        raise UserError("weak negatives need at least 2 prompts in the data set")
    pool: list[tuple[str | Messages, str | Messages]] = []
    for ex in examples:
        if source in ("chosen", "both"):
            pool.append((ex.prompt, ex.chosen))
        if source in ("rejected", "both"):
            pool.extend((ex.prompt, r) for r in ex.rejected)
    rng = random.Random(seed)
    weak = []
    for i, ex in enumerate(examples):
        # by prompt, not record: multi-pair data repeats a prompt, whose own responses are no weak negatives
        others = [text for prompt, text in pool if prompt != ex.prompt]
        if len(others) < nw:
            raise UserError(f"only {len(others)} responses of other prompts available, fewer than nw={nw}")
        if max_similarity is None:
            weak.append(rng.sample(others, nw))
            continue
        # a random order, taken until nw pass the filter: uniform over the admitted ones, similarity computed lazily
        kept = []
        for text in rng.sample(others, len(others)):
            if not too_similar(response_text(text), response_text(ex.chosen), max_similarity):
                kept.append(text)
                if len(kept) == nw:
                    break
        if len(kept) < nw:
            raise UserError(f"record {i}: only {len(kept)} responses of other prompts are at most {max_similarity} "
                            f"similar to its chosen response, fewer than nw={nw} (raise the limit or lower nw)")
        weak.append(kept)
    return weak


def tokenize_group(
    tokenizer, example: PreferenceExample, ns: int, weak: Sequence[str | Messages], max_length: int | None,
    index: int = 0
) -> dict:
    """One prompt's group: {"prompt_ids", "responses_ids": [chosen, strong..., weak...], "num_strong", "num_weak"}.

    Responses are cut so prompt + response fits `max_length` (keep the start; None: no cut); a prompt that leaves
    no room for a single response token is a UserError.
    """
    responses = [example.chosen, *example.rejected[:ns], *weak]
    splits = [tokenize_prompt_response(tokenizer, example.prompt, r) for r in responses]
    # A response's leading whitespace can merge with the prompt's last characters, so sequences may split at
    # different points: all share the common prompt prefix and the rest of each prompt joins its response.
    first_prompt = splits[0][0]
    n = min(common_prefix_length(first_prompt, p_ids) for p_ids, _ in splits)
    if max_length is None:
        max_length = max(len(p_ids) + len(r_ids) for p_ids, r_ids in splits)
    elif n >= max_length:
        raise UserError(f"record {index}: prompt is {n} tokens, not shorter than max_length={max_length}")
    prompt_ids = first_prompt[:n]
    responses_ids = [(p_ids[n:] + r_ids)[: max_length - n] for p_ids, r_ids in splits]
    return {"prompt_ids": prompt_ids, "responses_ids": responses_ids, "num_strong": ns, "num_weak": len(weak)}


def collate_groups(groups: Sequence[dict], pad_token_id: int) -> dict:
    """Flatten B groups of G = 1 + ns + nw sequences into one padded [B*G, T] batch (group-major order)."""
    sizes = {len(g["responses_ids"]) for g in groups}
    if len(sizes) != 1:
        raise ValueError("all groups in a batch need the same number of responses")
    prompts, responses = [], []
    for g in groups:
        for r in g["responses_ids"]:
            prompts.append(g["prompt_ids"])
            responses.append(r)
    batch = pad_sequences(prompts, responses, pad_token_id)
    batch["group_size"] = torch.tensor(sizes.pop())
    batch["num_strong"] = torch.tensor(groups[0]["num_strong"])
    if "reference_logps" in groups[0]:
        batch["reference_logps"] = torch.tensor([g["reference_logps"] for g in groups], dtype=torch.float32)
    return batch
