"""The one chat-template split of a conversation into prompt and response tokens, and the one padding.

Every method (DPO / EPA groups, PoFT examples, the study's scoring) tokenises a (prompt, response) pair here and pads
with `pad_sequences`, whose `completion_mask` (1 on response tokens) is the single mask convention of align/: the
log-prob kernel scores exactly the masked tokens. The split follows TRL's DPOTrainer: render the prompt (with the
generation prompt) and the whole conversation, tokenise both and split where the token ids diverge, so tokens that
merge across the boundary go with the response.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from tunelab.errors import UserError

Messages = list  # a conversation: [{"role": ..., "content": ...}, ...]


def is_messages(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) for m in value)


def response_text(response: str | Messages) -> str:
    """A response as plain text (for similarity checks): the contents of its messages, one per line."""
    return response if isinstance(response, str) else "\n".join(str(m.get("content", "")) for m in response)


def prompt_messages(prompt: str | list[dict]) -> list[dict]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def response_messages(response: str | Messages) -> list[dict]:
    return [{"role": "assistant", "content": response}] if isinstance(response, str) else list(response)


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def prompt_text(tokenizer, prompt: str | Messages) -> str:
    """The text a response follows: the chat template's generation prompt, or the raw prompt without a template
    (the same rule for training, scoring and generation)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(prompt_messages(prompt), tokenize=False, add_generation_prompt=True)
    return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)


def tokenize_prompt_response(tokenizer, prompt: str | Messages, response: str | Messages,
                             trailing_layout: bool = True) -> tuple[list[int], list[int]]:
    """(prompt_ids, response_ids) with the tokenizer's chat template, split where the two renderings diverge.

    A response given as messages (several turns too) is scored whole: every token after the prompt.
    Without a chat template: raw prompt text, then the response followed by EOS. `trailing_layout=False` drops
    the whitespace some templates print after the final end-of-turn token (layout, not something the model says).
    """
    if getattr(tokenizer, "chat_template", None):
        full_text = tokenizer.apply_chat_template(prompt_messages(prompt) + response_messages(response),
                                                  tokenize=False)
        if not trailing_layout:
            full_text = full_text.rstrip()
        prompt_ids = tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False)["input_ids"]
        full_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    else:
        prompt_ids = tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False)["input_ids"]
        full_ids = (prompt_ids + tokenizer(response_text(response), add_special_tokens=False)["input_ids"]
                    + [tokenizer.eos_token_id])
    split = common_prefix_length(prompt_ids, full_ids)
    return list(full_ids[:split]), list(full_ids[split:])


def encode_pair(tokenizer, prompt: str | Messages, response: str | Messages, max_length: int | None = None,
                trailing_layout: bool = True) -> tuple[list[int], list[int]]:
    """`tokenize_prompt_response` cut so prompt + response fits max_length (the response's start is kept); a prompt
    that leaves no room for one response token is a UserError."""
    prompt_ids, response_ids = tokenize_prompt_response(tokenizer, prompt, response, trailing_layout)
    if max_length is not None:
        if len(prompt_ids) >= max_length:
            raise UserError(f"the prompt alone fills max_length={max_length} tokens, nothing of the response is "
                            f"left to score: raise --max-length or shorten the prompt")
        response_ids = response_ids[: max_length - len(prompt_ids)]
    return prompt_ids, response_ids


def pad_id_of(tokenizer) -> int:
    """The id padding uses: the tokenizer's pad token, else its EOS (padding is masked out either way)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


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
