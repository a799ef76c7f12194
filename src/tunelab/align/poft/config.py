"""PoFTConfig: transformers TrainingArguments plus the PoFT knobs (the TRL config/trainer pairing)."""

from __future__ import annotations

import dataclasses

from transformers import TrainingArguments


@dataclasses.dataclass
class PoFTConfig(TrainingArguments):
    """Training arguments for `PoFTTrainer`.

    loss_type: "poft" (the paper's loss) or "sft" (plain token-mean cross-entropy on the same batches: the baseline,
    run through the very same code path so that step times and results compare like with like).
    """

    beta: float = dataclasses.field(default=1.0, metadata={"help": "PoFT temperature on s_theta - s_ref."})
    gamma: float = dataclasses.field(default=0.0, metadata={"help": "PoFT margin added inside the sigmoid."})
    loss_type: str = dataclasses.field(default="poft", metadata={"help": "'poft' or 'sft'."})
    max_length: int = dataclasses.field(default=512, metadata={"help": "Tokens per example (right-truncated)."})
    # Trainer would drop the reference_score column as "unused by the model".
    remove_unused_columns: bool = False
    report_to: str | list[str] | None = "none"

    def __post_init__(self):
        super().__post_init__()
        if self.loss_type not in ("poft", "sft"):
            from tunelab.errors import UserError

            raise UserError(f"loss_type must be 'poft' or 'sft', not '{self.loss_type}'")
