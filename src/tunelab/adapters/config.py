"""`BidimLoraConfig`: PEFT's LoraConfig with BoRA's two options, and the registration of BoRA's layer.

    from peft import get_peft_model
    from tunelab.adapters import BidimLoraConfig
    model = get_peft_model(base, BidimLoraConfig(r=8, target_modules=["q_proj", "v_proj"]))

The config is saved as a LoRA config (peft_type LORA) with the two extra keys. PEFT's own `LoraConfig` does not
know them, so pass this class's config when loading:

    config = BidimLoraConfig.from_pretrained(path)
    model = PeftModel.from_pretrained(base, path, config=config)      # or tunelab.adapters.load_adapter(base, path)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from peft import LoraConfig
from peft.utils import CONFIG_NAME
from torch import nn
from transformers.pytorch_utils import Conv1D

from tunelab.adapters.bora import BidimLoraLinear
from tunelab.adapters.gains import OUT_FIRST, check_order


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
        super().__post_init__()
        check_order(self.bidim_order)
        if self.use_bidim_weight_decomposition and self.use_dora:
            raise ValueError("use_dora and use_bidim_weight_decomposition are exclusive: pick DoRA or BoRA")
        # Every Linear/Conv1D this config targets gets the layer that knows BoRA; it behaves as PEFT's own
        # LoRA layer for any other adapter added to it later.
        self._register_custom_module({nn.Linear: BidimLoraLinear, Conv1D: BidimLoraLinear})

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str, subfolder: str | None = None, **kwargs):
        """Read a saved adapter config as this class (PEFT's loader would build a plain LoraConfig)."""
        path = Path(pretrained_model_name_or_path) / (subfolder or "") / CONFIG_NAME
        saved = json.loads(path.read_text())
        known = {f.name for f in fields(cls) if f.init}
        return cls(**{k: v for k, v in {**saved, **kwargs}.items() if k in known})


def is_bidim_config_dict(saved: dict) -> bool:
    return bool(saved.get("use_bidim_weight_decomposition", False))
