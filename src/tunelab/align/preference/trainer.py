"""DPO and EPA on transformers' Trainer: one batched forward over each prompt's 1 + ns + nw sequences.

Reference log-probs are computed once before training and stored with the data (the default), or on
every step from the adapter-disabled PEFT model / a frozen copy. Runs under `accelerate launch` as it is,
and checkpoints / resumes through Trainer (`resume_from_checkpoint`); checkpoints are written atomically.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from functools import partial
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from transformers import Trainer

from tunelab.align.preference.config import AlignConfig
from tunelab.align.preference.data import choose_weak_negatives, collate_groups, normalize_records, tokenize_group
from tunelab.align.logprobs import is_peft_model, reference_context, sequence_logps
from tunelab.align.preference.reference import group_reference_logps
from tunelab.align.preference.losses import epa_loss_from_rewards
from tunelab.align.preference.guards import chosen_nll, dpop_chosen_rewards
from tunelab.checkpointing import AtomicCheckpoints
from tunelab.errors import UserError


class GroupDataset(Dataset):
    """Tokenised prompt groups (dicts from `tokenize_group`, optionally with `reference_logps`)."""

    def __init__(self, groups: Sequence[dict]):
        self.groups = list(groups)

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> dict:
        return self.groups[index]


def prepare_groups(records: Sequence[dict], tokenizer, args: AlignConfig) -> list[dict]:
    """Validate records, draw weak negatives (fixed by args.seed) and tokenise every group."""
    examples = normalize_records(records, ns=args.num_strong)
    weak = choose_weak_negatives(examples, args.num_weak, args.weak_source, seed=args.seed,
                                 max_similarity=args.weak_max_similarity)
    return [tokenize_group(tokenizer, ex, args.num_strong, weak[i], args.max_length, index=i)
            for i, ex in enumerate(examples)]


def _collate(groups: Sequence[dict], pad_token_id: int) -> dict:
    batch = collate_groups(groups, pad_token_id)
    batch.pop("group_size")
    batch.pop("num_strong")
    return batch


def preference_loss(rewards: torch.Tensor, args: AlignConfig, chosen_logps: torch.Tensor | None = None,
                    chosen_tokens: torch.Tensor | None = None) -> torch.Tensor:
    """Per-prompt loss from implicit rewards [B, 1 + ns + nw] laid out [chosen, strong..., weak...], with the
    displacement guards that are on: DPO-Positive (dpop_lambda) and the chosen NLL term (nll_weight, which needs
    the policy's chosen log-probs [B] and response lengths [B]). Guards at 0 leave the loss untouched."""
    chosen, strong, weak = rewards[:, 0], rewards[:, 1 : 1 + args.num_strong], rewards[:, 1 + args.num_strong :]
    if args.dpop_lambda > 0:
        chosen = dpop_chosen_rewards(chosen, args.dpop_lambda)
    if args.method == "dpo":
        loss = -F.logsigmoid(chosen - strong[:, 0])
    else:
        loss = epa_loss_from_rewards(chosen, strong, weak, w=args.w, weak_weight=args.weak_weight)
    if args.nll_weight > 0:
        loss = loss + args.nll_weight * chosen_nll(chosen_logps, chosen_tokens)
    return loss


def response_lengths(completion_mask: torch.Tensor, group: int) -> torch.Tensor:
    """Response tokens per sequence, [B, group] (the tokens `sequence_logps` sums over)."""
    return completion_mask[:, 1:].sum(-1).view(-1, group)


def name_base_model(model, name: str) -> None:
    """Make saved adapters (adapter_config.json's base_model_name_or_path) and configs name the model as the user
    gave it, so it loads again: a hub id or embedded name as is, a folder as its absolute path, never the cache
    folder it was read from. Call it before PEFT wraps the model."""
    from pathlib import Path

    if getattr(model, "config", None) is None:
        return  # not a transformers model: nothing records its origin
    loadable = str(Path(name).resolve()) if Path(name).is_dir() else name
    model.config._name_or_path = loadable
    model.name_or_path = loadable  # what PEFT copies into its config


class PreferenceTrainer(AtomicCheckpoints, Trainer):
    """Trainer for `method` in {dpo, epa}, called like TRL's DPOTrainer (keywords): `model` (or its name),
    `args`, `train_dataset` / `eval_dataset` (records or a datasets.Dataset with prompt / chosen / rejected, or
    TRL's implicit-prompt conversations), `processing_class`, `ref_model`, `peft_config`, `callbacks`.
    Evaluation logs TRL's metric names with the eval_ prefix (eval_rewards/chosen, eval_rewards/margins, ...)."""

    def __init__(self, model, args: AlignConfig | None = None, train_dataset: Sequence[dict] | None = None,
                 processing_class=None, ref_model=None, peft_config=None, callbacks=None, reference_progress=None,
                 eval_dataset: Sequence[dict] | None = None):
        if isinstance(model, str):
            from tunelab.models.lora import load_for_training

            model, tokenizer = load_for_training(model)
            processing_class = processing_class or tokenizer
        if processing_class is None:
            raise UserError("PreferenceTrainer needs processing_class (the tokenizer)")
        if train_dataset is None:
            raise UserError("PreferenceTrainer needs a train_dataset")
        args = args or AlignConfig(output_dir="tunelab-align")
        if peft_config is not None:
            from tunelab.models.lora import attach_adapter

            model = attach_adapter(model, peft_config)
        self.ref_model = ref_model
        pad_id = processing_class.pad_token_id
        if pad_id is None:
            pad_id = processing_class.eos_token_id
        self._pad_id, self._reference_progress = pad_id, reference_progress
        if not args.precompute_ref_log_probs and ref_model is None and not is_peft_model(model):
            self.ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        # before any update, the model itself (adapters off under PEFT) is the reference
        train = self._groups(train_dataset, processing_class, args, model)
        evaluation = None if eval_dataset is None else self._groups(eval_dataset, processing_class, args, model)
        self._align_metrics: dict[str, dict[str, list[float]]] = {"train": defaultdict(list), "eval": defaultdict(list)}
        super().__init__(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                         data_collator=partial(_collate, pad_token_id=pad_id),
                         processing_class=processing_class, callbacks=callbacks)

    def _groups(self, records, tokenizer, args: AlignConfig, model) -> GroupDataset:
        """Tokenised groups of `records`, with their reference log-probs when those are precomputed."""
        groups = prepare_groups(list(records), tokenizer, args)
        if args.precompute_ref_log_probs:
            reference = self.ref_model if self.ref_model is not None else model
            logps = group_reference_logps(reference, groups, self._pad_id, args.reference_batch_size,
                                          progress=self._reference_progress)
            for group, row in zip(groups, logps):
                group["reference_logps"] = row
        return GroupDataset(groups)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        if eval_dataset is not None and not isinstance(eval_dataset, GroupDataset):
            if (self.args.precompute_ref_log_probs and self.ref_model is None and not is_peft_model(self.model)
                    and self.state.global_step > 0):
                raise UserError("reference log-probs of a new eval set need the reference model, gone after training "
                                "started: pass eval_dataset when building the trainer, or a ref_model")
            eval_dataset = self._groups(eval_dataset, self.processing_class, self.args, self.model)
        return super().evaluate(eval_dataset=eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    def _reference_logps(self, model, batch: dict) -> torch.Tensor:
        with torch.no_grad():
            if self.ref_model is not None:
                return sequence_logps(self.ref_model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
            unwrapped = self.accelerator.unwrap_model(model)
            with reference_context(unwrapped):
                return sequence_logps(model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"])

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        args: AlignConfig = self.args
        group = 1 + args.num_strong + args.num_weak
        logps = sequence_logps(model, inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"])
        logps = logps.view(-1, group)
        if "reference_logps" in inputs:
            ref = inputs["reference_logps"].to(logps.dtype)
        else:
            ref = self._reference_logps(model, inputs).view(-1, group)
        rewards = args.beta * (logps - ref)
        chosen_tokens = response_lengths(inputs["completion_mask"], group)[:, 0] if args.nll_weight > 0 else None
        per_prompt = preference_loss(rewards, args, logps[:, 0], chosen_tokens)
        loss = per_prompt.mean()
        if not torch.isfinite(loss):
            raise UserError(f"the {args.method} loss became {float(loss)} at step {self.state.global_step}: "
                            "lower the learning rate or beta")
        self._record(rewards.detach(), per_prompt.detach(), logps.detach())
        return (loss, {"rewards": rewards}) if return_outputs else loss

    def _record(self, rewards: torch.Tensor, per_prompt: torch.Tensor, logps: torch.Tensor) -> None:
        """TRL's metric names (rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies, logps/chosen,
        logps/rejected); with several strong negatives `rejected` averages them and accuracy needs all beaten."""
        ns = self.args.num_strong
        mode = "train" if self.model.training else "eval"
        gather = self.accelerator.gather_for_metrics
        chosen, strong, weak = rewards[:, 0], rewards[:, 1 : 1 + ns], rewards[:, 1 + ns :]
        m = self._align_metrics[mode]
        m["rewards/chosen"].append(float(gather(chosen).mean()))
        m["rewards/rejected"].append(float(gather(strong).mean()))
        m["rewards/margins"].append(float(gather(chosen - strong.mean(-1)).mean()))
        m["rewards/accuracies"].append(float(gather((chosen.unsqueeze(-1) > strong).all(-1).float()).mean()))
        m["logps/chosen"].append(float(gather(logps[:, 0]).mean()))  # falls under displacement
        m["logps/rejected"].append(float(gather(logps[:, 1 : 1 + ns]).mean()))
        if weak.shape[-1] > 0:
            m["rewards/weak"].append(float(gather(weak).mean()))
            m["rewards/weak_accuracies"].append(float(gather((chosen.unsqueeze(-1) > weak).all(-1).float()).mean()))

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "eval" if any(k.startswith("eval_") for k in logs) else "train"
        prefix = "eval_" if mode == "eval" else ""
        for key, values in self._align_metrics[mode].items():
            if values:
                logs[prefix + key] = sum(values) / len(values)
        self._align_metrics[mode].clear()
        super().log(logs, start_time)
