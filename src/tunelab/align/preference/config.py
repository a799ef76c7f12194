"""Training arguments of the DPO / EPA trainer (transformers' TrainingArguments plus the preference knobs)."""

from __future__ import annotations

import dataclasses

from transformers import TrainingArguments

from tunelab.align.preference.guard_config import check_guards
from tunelab.align.preference.options import DEFAULT_WEAK, PreferenceOptions
from tunelab.errors import UserError

METHODS = ("dpo", "epa")
WEAK_SOURCES = ("chosen", "rejected", "both")
# TRL DPOConfig.loss_type values with the same meaning here: TRL's "sigmoid" is DPO
LOSS_TYPES = {"sigmoid": "dpo", "epa": "epa"}


@dataclasses.dataclass
class AlignConfig(PreferenceOptions, TrainingArguments):
    """Defaults: beta 0.1 (TRL's DPO default); EPA w = 1 (the positive's own term, so ns=1, nw=0 is DPO);
    ns = 1 strong negative (offline data rarely has more); nw = 2 weak negatives drawn from the other
    prompts' chosen and rejected responses (the theory experiment shows weak negatives are what makes the
    solution unique; more of them cost one extra sequence each per prompt). The displacement guards'
    options (nll_weight, dpop_lambda, weak_max_similarity) come from DisplacementGuards, all off by default; every
    preference field (and its default) is PreferenceOptions'.

    TRL's DPOConfig names mean the same here: beta, max_length (None: no cut), precompute_ref_log_probs and
    loss_type ("sigmoid" is DPO, also as TRL's one-element list; it sets `method` when that is not given)."""

    loss_type: str | list[str] | None = dataclasses.field(
        default=None, metadata={"help": "TRL's name for the loss: sigmoid (= dpo) or epa"})
    reference_batch_size: int = dataclasses.field(default=8, metadata={"help": "groups per reference batch"})
    remove_unused_columns: bool = False
    report_to: str | list[str] | None = "none"

    def __post_init__(self):
        self.method = resolve_method(self.method, self.loss_type)
        if launched_without_accelerator():
            # transformers would give each process a world of one: the same training run N times, unsharded
            self.use_cpu = True
        super().__post_init__()
        if self.num_weak is None:
            self.num_weak = DEFAULT_WEAK[self.method] if self.method in DEFAULT_WEAK else 0
        check_preference_options(self)


def launched_without_accelerator() -> bool:
    """True under a multi-process launch (torchrun / accelerate set WORLD_SIZE) on a machine with no GPU: the
    processes must then join one CPU (gloo) group."""
    import os

    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    xpu = getattr(torch, "xpu", None)
    return not torch.cuda.is_available() and not (xpu is not None and xpu.is_available())


def resolve_method(method: str | None, loss_type: str | list[str] | None) -> str:
    """The method from `method` and TRL's `loss_type` (either may be None; both given must agree)."""
    if loss_type is None:
        return method or "epa"
    names = [loss_type] if isinstance(loss_type, str) else list(loss_type)
    if len(names) != 1 or names[0] not in LOSS_TYPES:
        raise UserError(f"loss_type {loss_type!r} is not supported: use 'sigmoid' (DPO) or 'epa'")
    implied = LOSS_TYPES[names[0]]
    if method is not None and method != implied:
        raise UserError(f"loss_type {names[0]!r} means method '{implied}', but method is '{method}'")
    return implied


def check_preference_options(cfg) -> None:
    """UserError for inconsistent options (shared by the CLI and the config)."""
    if cfg.method not in METHODS:
        raise UserError(f"unknown method '{cfg.method}' (dpo or epa)")
    if cfg.beta <= 0:
        raise UserError("beta must be > 0")
    if cfg.num_strong < 1:
        raise UserError("num_strong (ns) must be >= 1")
    if cfg.num_weak < 0:
        raise UserError("num_weak (nw) must be >= 0")
    if cfg.method == "dpo" and (cfg.num_strong != 1 or cfg.num_weak != 0):
        raise UserError("DPO uses exactly one rejected response: set num_strong=1 and num_weak=0 (or use epa)")
    if cfg.w < 0 or cfg.weak_weight < 0:
        raise UserError("w and weak_weight must be >= 0")
    if cfg.weak_source not in WEAK_SOURCES:
        raise UserError(f"unknown weak source '{cfg.weak_source}' (chosen, rejected or both)")
    check_guards(cfg)
    if cfg.max_length is not None and cfg.max_length < 2:
        raise UserError("max_length must be >= 2")
