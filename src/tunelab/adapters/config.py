"""`BidimLoraConfig`: PEFT's LoraConfig with BoRA's two options, and the registration of BoRA's layer.

    from peft import get_peft_model
    from tunelab.adapters import BidimLoraConfig
    model = get_peft_model(base, BidimLoraConfig(r=8, target_modules=["q_proj", "v_proj"]))

In memory the config is a LoRA config (peft_type LORA), so PEFT runs its LoRA code. On disk a BoRA config is written
with `"peft_type": "TUNELAB_BIDIM_LORA"` (see `tunelab.adapters.registry`): with tunelab imported, PEFT and
transformers map it back to this class and rebuild BoRA from `adapter_config.json` alone,

    model = PeftModel.from_pretrained(base, path)          # or base.load_adapter(path) in transformers

and a PEFT without tunelab refuses the file instead of loading it as plain LoRA.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path

from peft import LoraConfig
from peft.utils import CONFIG_NAME, PeftType
from torch import nn
from transformers.pytorch_utils import Conv1D

from tunelab.adapters.bora import BidimLoraLinear
from tunelab.adapters.gains import OUT_FIRST, check_order
from tunelab.adapters.registry import (ORDER_FIELD, PEFT_TYPE, VARIANT_FIELD, is_bidim_config_dict,
                                      register_with_peft)

__all__ = ["BidimLoraConfig", "PEFT_TYPE", "is_bidim_config_dict", "mark_saved_config"]


@dataclass
class BidimLoraConfig(LoraConfig):
    """LoRA with BoRA's bi-dimensional weight decomposition (arXiv 2412.06441) on nn.Linear and Conv1D layers.

    Not PEFT's "BoRA" proposal (Block-Diversified LoRA), which is a different method.
    """

    use_bidim_weight_decomposition: bool = field(
        default=True,
        metadata={
            "help": "BoRA: two trainable magnitudes, one per output row and one per input column of W0 + s*B*A, "
            "each applied after normalising along its dimension (norms detached). False gives plain LoRA/DoRA.",
            "is_lora_variant": True,
        },
    )
    bidim_order: str = field(
        default=OUT_FIRST,
        metadata={"help": "Which normalisation comes first: 'out_first' (rows, then columns) or 'in_first'."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()  # sets peft_type to LORA, also when read from a file with BoRA's marker
        check_order(self.bidim_order)
        if self.use_bidim_weight_decomposition and self.use_dora:
            raise ValueError("use_dora and use_bidim_weight_decomposition are exclusive: pick DoRA or BoRA")
        # Every Linear/Conv1D this config targets gets the layer that knows BoRA; it behaves as PEFT's own
        # LoRA layer for any other adapter added to it later.
        self._register_custom_module({nn.Linear: BidimLoraLinear, Conv1D: BidimLoraLinear})

    def save_pretrained(self, save_directory: str, **kwargs) -> None:
        """PEFT's save, then the file marked as BoRA (or written as the plain LoRA/DoRA it is, without the flag)."""
        super().save_pretrained(save_directory, **kwargs)
        mark_saved_config(save_directory, self.use_bidim_weight_decomposition)

    @classmethod
    def from_peft_type(cls, **kwargs):
        """This class from saved keys: BoRA's marker, or a LoRA file (BoRA only if it has the flag set, as files
        written before the marker do). Keys this class does not know are dropped with a warning, as PEFT does."""
        peft_type = kwargs.pop("peft_type", None)
        if peft_type not in (None, PEFT_TYPE, PeftType.LORA):
            raise ValueError(f"not a LoRA or BoRA adapter config (peft_type {peft_type})")
        if peft_type == PeftType.LORA:
            kwargs.setdefault(VARIANT_FIELD, False)
        known = {f.name for f in fields(cls) if f.init}
        unexpected = sorted(set(kwargs) - known)
        if unexpected:
            warnings.warn(f"Unexpected keys {unexpected} for {cls.__name__} are ignored (saved by a newer PEFT?)")
        return cls(**{k: v for k, v in kwargs.items() if k in known})


def mark_saved_config(path: str | Path, bidim: bool | None = None) -> None:
    """Rewrite `path/adapter_config.json` so that its kind is unambiguous: a BoRA config gets BoRA's peft_type (a
    PEFT without tunelab then refuses it), a config without the BoRA flag loses the two BoRA keys (a plain PEFT
    loads it as the LoRA/DoRA adapter it is). `bidim=None` reads the flag from the file; use that to upgrade an
    adapter saved by an older tunelab (peft_type LORA plus the flag)."""
    config_file = Path(path) / CONFIG_NAME
    saved = json.loads(config_file.read_text())
    if bidim is None:
        bidim = is_bidim_config_dict(saved)
    if bidim:
        saved["peft_type"] = PEFT_TYPE
        saved[VARIANT_FIELD] = True
    else:
        saved.pop(VARIANT_FIELD, None)
        saved.pop(ORDER_FIELD, None)
    config_file.write_text(json.dumps(saved, indent=2, sort_keys=True))


register_with_peft()
