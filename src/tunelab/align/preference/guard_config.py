"""Options of the displacement guards (tunelab.align.preference.guards), shared by AlignConfig and the CLI.

A plain dataclass without torch or transformers, so `tunelab align train` derives its guard options from these
fields without importing either. Every default leaves the DPO / EPA loss exactly as it is without guards.
"""

from __future__ import annotations

import dataclasses

from tunelab.errors import UserError


@dataclasses.dataclass
class DisplacementGuards:
    nll_weight: float = dataclasses.field(
        default=0.0, metadata={"help": "weight of the chosen response's mean token NLL added to the loss (0: off)"})
    dpop_lambda: float = dataclasses.field(
        default=0.0, metadata={"help": "DPO-Positive: the chosen reward less lambda*beta*max(0, log pi_ref(y+) - "
                                       "log pi(y+)) inside the loss (0: off)"})
    weak_max_similarity: float | None = dataclasses.field(
        default=None, metadata={"help": "drop weak negatives whose edit similarity to the chosen response "
                                        "exceeds this, in [0, 1]"})


def check_guards(cfg) -> None:
    """UserError for out-of-range guard options (any object with the DisplacementGuards attributes)."""
    if cfg.nll_weight < 0 or cfg.dpop_lambda < 0:
        raise UserError("nll_weight and dpop_lambda must be >= 0")
    if cfg.weak_max_similarity is not None and not 0 <= cfg.weak_max_similarity <= 1:
        raise UserError("weak_max_similarity must be between 0 and 1 (or none)")
