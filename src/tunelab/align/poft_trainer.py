"""PoFTTrainer: transformers' Trainer with the PoFT loss, so LoRA or full fine-tuning, `accelerate launch`,
gradient accumulation and checkpoint resume all work unchanged (checkpoints are written atomically).

Each training example carries `input_ids`, `labels` (IGNORE_INDEX on the prompt) and its precomputed
`reference_score` s_ref (see `poft_scoring`); the aligned models are never loaded during training, so a PoFT step
costs what an SFT step costs.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import torch
from transformers import Trainer

from tunelab.align.poft import masked_mean, model_token_logprobs, poft_loss, poft_weight, token_mean_nll
from tunelab.align.poft_chat import encode_example, pad_batch
from tunelab.align.poft_config import PoFTConfig
from tunelab.checkpointing import AtomicCheckpoints


class PoFTCollator:
    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        return pad_batch(features, self.pad_token_id)


def build_dataset(tokenizer, pairs: Sequence[tuple[str, str]], reference: Sequence[float] | None,
                  max_length: int = 512) -> list[dict]:
    """Tokenised training examples with the target's own chat template; reference None for SFT."""
    rows = []
    for i, (prompt, response) in enumerate(pairs):
        input_ids, labels = encode_example(tokenizer, prompt, response, max_length)
        row = {"input_ids": input_ids, "labels": labels}
        if reference is not None:
            row["reference_score"] = float(reference[i])
        rows.append(row)
    return rows


class PoFTTrainer(AtomicCheckpoints, Trainer):
    """Trainer whose loss is PoFT's -log sigmoid(beta (s_theta - s_ref) + gamma), or SFT with loss_type='sft'."""

    def __init__(self, model=None, args: PoFTConfig | None = None, data_collator=None, processing_class=None, **kwargs):
        args = args or PoFTConfig(output_dir="poft-output")
        if data_collator is None and processing_class is not None:
            data_collator = PoFTCollator(processing_class.pad_token_id)
        super().__init__(model=model, args=args, data_collator=data_collator, processing_class=processing_class,
                         **kwargs)
        self._poft_metrics: dict[str, list[float]] = defaultdict(list)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        logprobs, mask = model_token_logprobs(model, inputs["input_ids"], inputs["attention_mask"], labels)
        outputs = {"token_logprobs": logprobs}  # the fused head builds no logits
        if self.args.loss_type == "sft":
            loss = token_mean_nll(logprobs, mask)
        else:
            if "reference_score" not in inputs:
                from tunelab.errors import UserError

                raise UserError("PoFT training needs a reference_score per example: score the data first")
            s_theta = masked_mean(logprobs, mask)
            s_ref = inputs["reference_score"]
            loss = poft_loss(s_theta, s_ref, self.args.beta, self.args.gamma).mean()
            with torch.no_grad():  # how strongly PoFT is weighting this batch, for the training log
                self._poft_metrics["poft/weight"].append(poft_weight(s_theta, s_ref, self.args.beta,
                                                                     self.args.gamma).mean().item())
                self._poft_metrics["poft/s_theta"].append(s_theta.mean().item())
                self._poft_metrics["poft/s_ref"].append(s_ref.float().mean().item())
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        for key, values in self._poft_metrics.items():
            if values:
                logs[key] = sum(values) / len(values)
        self._poft_metrics.clear()
        super().log(logs, start_time)
