"""The preference options of DPO / EPA and the run schedule of `tunelab align train`, as plain dataclasses.

No torch or transformers here, so the command line derives its options (defaults, help) from these fields without
importing either; AlignConfig inherits PreferenceOptions, so each default is written once.
"""

from __future__ import annotations

import dataclasses

from tunelab.align.preference.guard_config import DisplacementGuards


@dataclasses.dataclass
class PreferenceOptions(DisplacementGuards):
    method: str | None = dataclasses.field(default=None, metadata={"help": "dpo or epa (default: epa)"})
    beta: float = dataclasses.field(default=0.1, metadata={"help": "KL strength in r = beta*log(pi/pi_ref)"})
    num_strong: int = dataclasses.field(default=1, metadata={"help": "strong negatives per prompt (ns)"})
    num_weak: int | None = dataclasses.field(
        default=None, metadata={"help": "weak negatives per prompt (nw); default 2 for EPA, 0 for DPO"}
    )
    w: float = dataclasses.field(default=1.0, metadata={"help": "EPA stabiliser inside the log"})
    weak_weight: float = dataclasses.field(default=1.0, metadata={"help": "weight of each weak term"})
    weak_source: str = dataclasses.field(default="both", metadata={"help": "pool of weak negatives"})
    max_length: int | None = dataclasses.field(
        default=512, metadata={"help": "prompt+response tokens (responses cut; None: no cut)"})
    precompute_ref_log_probs: bool = dataclasses.field(
        default=True, metadata={"help": "reference log-probs once before training (else every step)"}
    )

    def resolved(self) -> "PreferenceOptions":
        """A copy with `method` and `num_weak` filled in where left None (epa; 2 weak negatives for EPA, 0 for DPO)."""
        method = self.method or "epa"
        num_weak = self.num_weak if self.num_weak is not None else DEFAULT_WEAK.get(method, 0)
        return dataclasses.replace(self, method=method, num_weak=num_weak)


DEFAULT_WEAK = {"dpo": 0, "epa": 2}
TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(PreferenceOptions))
# the command-line flags of `tunelab align train` that are not the field's own name
TRAIN_FLAGS = {"num_strong": "--ns", "num_weak": "--nw",
               "precompute_ref_log_probs": "--precompute-ref/--no-precompute-ref"}


@dataclasses.dataclass
class TrainSchedule:
    """How `tunelab align train` runs: the adapter, the optimiser schedule and checkpoints (-> AlignConfig's
    TrainingArguments fields; tunelab's defaults, not transformers')."""

    lora_r: int = dataclasses.field(default=8, metadata={"help": "LoRA rank; 0 = full fine-tuning"})
    steps: int = dataclasses.field(default=-1, metadata={"help": "optimiser steps (-1: use --epochs)"})
    epochs: float = dataclasses.field(default=1.0, metadata={"help": "passes over the data"})
    batch_size: int = dataclasses.field(default=4, metadata={"help": "prompts per step (each brings 1+ns+nw "
                                                                     "sequences)"})
    lr: float = dataclasses.field(default=5e-4, metadata={"help": "learning rate"})
    save_steps: int = dataclasses.field(default=0, metadata={"help": "checkpoint every N steps into "
                                                                     "--checkpoint-dir (0: none)"})
    eval_steps: int = dataclasses.field(default=0, metadata={"help": "also evaluate every N steps (0: only at "
                                                                     "the end)"})
    seed: int = 0

    def training_arguments(self) -> dict:
        """The TrainingArguments keywords these settings stand for."""
        return dict(max_steps=self.steps, num_train_epochs=self.epochs, per_device_train_batch_size=self.batch_size,
                    per_device_eval_batch_size=self.batch_size, learning_rate=self.lr, seed=self.seed,
                    save_strategy="steps" if self.save_steps else "no", save_steps=self.save_steps or 500)
