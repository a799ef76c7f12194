"""Preference records -> token ids: validation, chat templates, response masks, weak-negative pairing, padding.

A record has `prompt` (a string or a list of chat messages), `chosen` (a string) and `rejected` (a string
or a list of strings). Every prompt becomes one group of 1 + ns + nw sequences that share the prompt:
[chosen, strong negatives (the first ns rejected), weak negatives (responses of other prompts)].
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any, Sequence

import torch

from tunelab.align.preference.guards import too_similar
from tunelab.errors import UserError

REQUIRED_COLUMNS = ("prompt", "chosen", "rejected")


@dataclasses.dataclass
class PreferenceExample:
    prompt: str | list[dict]
    chosen: str
    rejected: list[str]


def _text(value: Any, what: str, index: int) -> str:
    if isinstance(value, list) and value and isinstance(value[-1], dict):  # conversational: take the last message
        value = value[-1].get("content")
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"record {index}: '{what}' must be a non-empty string")
    return value


def normalize_record(record: dict, index: int = 0, ns: int = 1) -> PreferenceExample:
    """Check one record and bring it to (prompt, chosen, [rejected...]); UserError names the record."""
    missing = [c for c in REQUIRED_COLUMNS if c not in record]
    if missing:
        raise UserError(f"record {index}: missing column(s) {', '.join(missing)} (need prompt, chosen, rejected)")
    prompt = record["prompt"]
    if isinstance(prompt, list):
        if not prompt or not all(isinstance(m, dict) and m.get("content") for m in prompt):
            raise UserError(f"record {index}: 'prompt' messages must be non-empty dicts with 'content'")
    else:
        prompt = _text(prompt, "prompt", index)
    chosen = _text(record["chosen"], "chosen", index)
    rejected_raw = record["rejected"]
    if isinstance(rejected_raw, str) or (isinstance(rejected_raw, list) and rejected_raw and isinstance(rejected_raw[0], dict)):
        rejected_raw = [rejected_raw]
    if not isinstance(rejected_raw, list):
        raise UserError(f"record {index}: 'rejected' must be a string or a list of strings")
    rejected = [_text(r, "rejected", index) for r in rejected_raw]
    if len(rejected) < ns:
        raise UserError(f"record {index}: {len(rejected)} rejected response(s), fewer than ns={ns} strong negatives")
    return PreferenceExample(prompt=prompt, chosen=chosen, rejected=rejected)


def normalize_records(records: Sequence[dict], ns: int = 1) -> list[PreferenceExample]:
    if not records:
        raise UserError("the preference data set is empty")
    return [normalize_record(r, i, ns) for i, r in enumerate(records)]


def prompt_messages(prompt: str | list[dict]) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def tokenize_prompt_response(tokenizer, prompt: str | list[dict], response: str) -> tuple[list[int], list[int]]:
    """(prompt_ids, response_ids) with the tokenizer's chat template, split where the two renderings diverge.

    Without a chat template: raw prompt text, then the response followed by EOS.
    """
    if getattr(tokenizer, "chat_template", None):
        messages = prompt_messages(prompt)
        prompt_text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        full_text = tokenizer.apply_chat_template(
            messages + [{"role": "assistant", "content": response}], tokenize=False
        )
        prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        full_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    else:
        text = prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
        prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        full_ids = prompt_ids + tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    split = common_prefix_length(prompt_ids, full_ids)
    return list(full_ids[:split]), list(full_ids[split:])


def choose_weak_negatives(
    examples: Sequence[PreferenceExample], nw: int, source: str = "both", seed: int = 0,
    max_similarity: float | None = None,
) -> list[list[str]]:
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
    pool: list[tuple[str | list[dict], str]] = []
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
            if not too_similar(text, ex.chosen, max_similarity):
                kept.append(text)
                if len(kept) == nw:
                    break
        if len(kept) < nw:
            raise UserError(f"record {i}: only {len(kept)} responses of other prompts are at most {max_similarity} "
                            f"similar to its chosen response, fewer than nw={nw} (raise the limit or lower nw)")
        weak.append(kept)
    return weak


def tokenize_group(
    tokenizer, example: PreferenceExample, ns: int, weak: Sequence[str], max_length: int, index: int = 0
) -> dict:
    """One prompt's group: {"prompt_ids", "responses_ids": [chosen, strong..., weak...], "num_strong", "num_weak"}.

    Responses are cut so prompt + response fits `max_length` (keep the start); a prompt that leaves no
    room for a single response token is a UserError.
    """
    responses = [example.chosen, *example.rejected[:ns], *weak]
    splits = [tokenize_prompt_response(tokenizer, example.prompt, r) for r in responses]
    # A response's leading whitespace can merge with the prompt's last characters, so sequences may split at
    # different points: all share the common prompt prefix and the rest of each prompt joins its response.
    first_prompt = splits[0][0]
    n = min(common_prefix_length(first_prompt, p_ids) for p_ids, _ in splits)
    if n >= max_length:
        raise UserError(f"record {index}: prompt is {n} tokens, not shorter than max_length={max_length}")
    prompt_ids = first_prompt[:n]
    responses_ids = [(p_ids[n:] + r_ids)[: max_length - n] for p_ids, r_ids in splits]
    return {"prompt_ids": prompt_ids, "responses_ids": responses_ids, "num_strong": ns, "num_weak": len(weak)}


def pad_sequences(prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]], pad_token_id: int) -> dict:
    """Right-padded batch: input_ids, attention_mask, completion_mask (1 on response tokens)."""
    lengths = [len(p) + len(r) for p, r in zip(prompt_ids, response_ids)]
    width = max(lengths)
    n = len(lengths)
    input_ids = torch.full((n, width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    completion_mask = torch.zeros((n, width), dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompt_ids, response_ids)):
        ids = list(p) + list(r)
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[i, : len(ids)] = 1
        completion_mask[i, len(p) : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "completion_mask": completion_mask}


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
