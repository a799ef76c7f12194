"""Held-out accuracy of a chat model on verifiable problems: greedy answers, checked against the truth."""

from __future__ import annotations

from typing import Sequence

import torch

from tunelab.align.chat import prompt_text
from tunelab.align.poft.tasks import is_correct


@torch.no_grad()
def generate_answers(model, tokenizer, prompts: Sequence[str], batch_size: int = 32, max_new_tokens: int = 16
                     ) -> list[str]:
    """Greedy completions of each prompt under the model's chat template (left-padded batches)."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    answers: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            texts = [prompt_text(tokenizer, p) for p in prompts[start:start + batch_size]]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            batch = {k: v.to(next(model.parameters()).device) for k, v in batch.items()}
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            answers += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers


def accuracy(model, tokenizer, problems: Sequence[dict], batch_size: int = 32) -> float:
    """Fraction of problems whose greedy answer's first integer equals the true answer."""
    answers = generate_answers(model, tokenizer, [p["prompt"] for p in problems], batch_size)
    return sum(is_correct(a, p["answer"]) for a, p in zip(answers, problems)) / len(problems)
