"""PoFTTrainer: transformers' Trainer with the PoFT loss, so LoRA or full fine-tuning, `accelerate launch`,
gradient accumulation and checkpoint resume all work unchanged (checkpoints are written atomically).

Each training example carries its `prompt_ids` and `response_ids` (align.chat's split; the collator pads them into
input_ids / attention_mask / completion_mask) and its precomputed `reference_score` s_ref (see `poft.scoring`);
the aligned models are never loaded during training, so a PoFT step costs what an SFT step costs.

`train` runs one PoFT (or SFT) training end to end: data -> reference scores -> target model (+ LoRA) -> saved model.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import torch
from transformers import Trainer

from tunelab.align.poft.config import PoFTConfig
from tunelab.align.poft.scoring import AlignedScores, encode_example, pad_examples
from tunelab.align.poft.loss import (masked_mean, model_token_logprobs, poft_loss, poft_weight, token_mean_nll,
                                     validate_examples)
from tunelab.checkpointing import AtomicCheckpoints
from tunelab.errors import UserError
from tunelab.resume import last_checkpoint, run_train_loss

class PoFTCollator:
    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        return pad_examples(features, self.pad_token_id)


def build_dataset(tokenizer, pairs: Sequence[tuple[str, str]], reference: Sequence[float] | None,
                  max_length: int = 512) -> list[dict]:
    """Tokenised training examples with the target's own chat template; reference None for SFT."""
    rows = []
    for i, (prompt, response) in enumerate(pairs):
        prompt_ids, response_ids = encode_example(tokenizer, prompt, response, max_length)
        row = {"prompt_ids": prompt_ids, "response_ids": response_ids}
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
        logprobs, mask = model_token_logprobs(model, inputs["input_ids"], inputs["attention_mask"],
                                              inputs["completion_mask"])
        outputs = {"token_logprobs": logprobs}  # the fused head builds no logits
        if self.args.loss_type == "sft":
            loss = token_mean_nll(logprobs, mask)
        else:
            if "reference_score" not in inputs:
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


# --------------------------------------------------------------------------- one run end to end

@dataclasses.dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str | list[str] = "all-linear"


def attach_lora(model, lora: LoraSettings | None):
    """Wrap `model` in a PEFT LoRA adapter through the shared path (None: full fine-tuning)."""
    if lora is None:
        return model
    from tunelab.models.lora import attach_lora as attach

    return attach(model, lora.r, lora.alpha, lora.target_modules, lora.dropout)


def load_target(name_or_path: str, seed: int = 0):
    from tunelab.models.lora import load_for_training

    return load_for_training(name_or_path, seed=seed, role="target model")


def make_trainer(model, tokenizer, pairs: Sequence[tuple[str, str]], scores: AlignedScores | None,
                 config: PoFTConfig, callbacks=None) -> PoFTTrainer:
    """A PoFTTrainer on `pairs`; PoFT needs scores computed for exactly these pairs, SFT needs none."""
    reference = None
    if config.loss_type == "poft":
        if scores is None:
            raise UserError("PoFT needs reference scores: pass --scores FILE or --aligned-model NAME")
        scores.check_matches(pairs)
        reference = scores.reference
    dataset = build_dataset(tokenizer, pairs, reference, config.max_length)
    return PoFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                       callbacks=callbacks)


def train(records: list[dict], target: str, config: PoFTConfig, scores: AlignedScores | None = None,
          lora: LoraSettings | None = LoraSettings(), resume: bool = False, save_to: Path | None = None) -> dict:
    """Train and (if save_to) save the model/adapter there atomically; returns the run's summary."""
    from tunelab.align.preference.trainer import name_base_model
    from tunelab.io import atomic_write_json, staged_dir

    pairs = validate_examples(records)
    model, tokenizer = load_target(target, seed=config.seed)
    name_base_model(model, target)
    model = attach_lora(model, lora)
    trainer = make_trainer(model, tokenizer, pairs, scores, config)
    checkpoint = last_checkpoint(config.output_dir) if resume else None
    resumed_from = str(checkpoint) if checkpoint else None
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resumed_from)
    train_loss = run_train_loss(trainer.state.log_history, result.training_loss)  # all steps, not this process's
    summary = {"loss_type": config.loss_type, "target": target, "examples": len(pairs), "steps": result.global_step,
               "train_loss": train_loss, "seconds": time.perf_counter() - start,
               "resumed_from": resumed_from, "lora": dataclasses.asdict(lora) if lora else None,
               "beta": config.beta, "gamma": config.gamma,
               "aligned_models": scores.models if scores is not None and config.loss_type == "poft" else []}
    if save_to is not None:
        with staged_dir(save_to) as tmp:
            trainer.save_model(str(tmp))
            tokenizer.save_pretrained(str(tmp))
            atomic_write_json(tmp / "poft_summary.json", summary)
    return summary

