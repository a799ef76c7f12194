"""Chat-template encoding of an SFT example with labels on the response (assistant turn) only.

Every model, target or aligned, encodes the same (prompt, response) with its own chat template, so each mean-token
log-probability is over what that model would itself emit as the assistant turn: the response text and the
template's end-of-turn token.
"""

from __future__ import annotations

import torch

from tunelab.align.poft import IGNORE_INDEX
from tunelab.errors import UserError


def split_chat(tokenizer, prompt: str, response: str) -> tuple[str, str]:
    """(prompt text up to the assistant header, response text with the end-of-turn marker) under the template."""
    if getattr(tokenizer, "chat_template", None):
        user = [{"role": "user", "content": prompt}]
        head = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": response}], tokenize=False)
        if full.startswith(head):
            return head, full[len(head):].rstrip()  # trailing newline after the end-of-turn token is layout only
    # No template (base models), or one that rewrites earlier turns: plain text with an explicit end token.
    return prompt + "\n", response + (tokenizer.eos_token or "")


def encode_example(tokenizer, prompt: str, response: str, max_length: int = 512) -> tuple[list[int], list[int]]:
    """(input_ids, labels) with labels = IGNORE_INDEX on the prompt; truncated on the right to max_length."""
    head, tail = split_chat(tokenizer, prompt, response)
    head_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    tail_ids = tokenizer(tail, add_special_tokens=False)["input_ids"]
    input_ids = (head_ids + tail_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(head_ids) + tail_ids)[:max_length]
    if all(label == IGNORE_INDEX for label in labels[1:]):
        raise UserError(f"the prompt alone fills max_length={max_length} tokens, nothing of the response is left "
                        f"to score: raise --max-length or shorten the prompt")
    return input_ids, labels


def pad_batch(features: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad input_ids / labels (and carry any float field such as reference_score) into tensors."""
    width = max(len(f["input_ids"]) for f in features)
    batch = {
        "input_ids": torch.tensor([f["input_ids"] + [pad_token_id] * (width - len(f["input_ids"])) for f in features]),
        "attention_mask": torch.tensor([[1] * len(f["input_ids"]) + [0] * (width - len(f["input_ids"]))
                                        for f in features]),
        "labels": torch.tensor([f["labels"] + [IGNORE_INDEX] * (width - len(f["labels"])) for f in features]),
    }
    if "reference_score" in features[0]:
        batch["reference_score"] = torch.tensor([float(f["reference_score"]) for f in features], dtype=torch.float32)
    return batch
