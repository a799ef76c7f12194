"""Build the LoRA / DoRA / BoRA config for a model, attach it, and load a saved adapter, with one-line errors.

LoRA and DoRA use PEFT's own `LoraConfig` (they are the peers BoRA is measured against); BoRA uses
`BidimLoraConfig`. Attaching goes through the shared `tunelab.models.lora.attach_adapter`.
"""

from __future__ import annotations

import json
from pathlib import Path

from peft import LoraConfig, PeftModel
from peft.utils import CONFIG_NAME
from torch import nn

from tunelab.adapters.config import BidimLoraConfig, is_bidim_config_dict
from tunelab.adapters.gains import ORDERS, OUT_FIRST
from tunelab.errors import UserError
from tunelab.models.lora import attach_adapter, lora_config

ADAPTERS = ("lora", "dora", "bora")


def make_config(adapter: str, r: int, target_modules: list[str] | str, alpha: float | None = None,
                dropout: float = 0.0, order: str = OUT_FIRST, modules_to_save: list[str] | None = None,
                task_type: str | None = None) -> LoraConfig:
    """The adapter config; `alpha` defaults to r (scaling 1), the same for all three so they differ only in kind."""
    if adapter not in ADAPTERS:
        raise UserError(f"unknown adapter '{adapter}': choose one of {', '.join(ADAPTERS)}")
    if not isinstance(r, int) or r <= 0:
        raise UserError(f"rank must be a positive integer, got {r}")
    if order not in ORDERS:
        raise UserError(f"order must be one of {', '.join(ORDERS)}, got '{order}'")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"dropout must be in [0, 1), got {dropout}")
    common = dict(r=r, lora_alpha=alpha if alpha is not None else r, lora_dropout=dropout,
                  target_modules=target_modules, modules_to_save=modules_to_save, task_type=task_type)
    if adapter == "bora":
        return BidimLoraConfig(bidim_order=order, **common)
    return lora_config(r, alpha, target_modules, dropout, task_type, use_dora=adapter == "dora",
                       modules_to_save=modules_to_save)


def attach(model: nn.Module, config: LoraConfig, adapter_name: str = "default") -> PeftModel:
    """The shared attach path (one-line error when no module matches the targets)."""
    return attach_adapter(model, config, adapter_name)


def read_adapter_config(path: str | Path) -> LoraConfig:
    """The saved config as the class that wrote it (BidimLoraConfig for BoRA, PEFT's LoraConfig otherwise)."""
    config_file = Path(path) / CONFIG_NAME
    if not config_file.is_file():
        raise UserError(f"no adapter found at '{path}' (missing {CONFIG_NAME})")
    saved = json.loads(config_file.read_text())
    if is_bidim_config_dict(saved):
        return BidimLoraConfig.from_pretrained(str(path))
    return LoraConfig.from_pretrained(str(path))


def load_adapter(model: nn.Module, path: str | Path, is_trainable: bool = False) -> PeftModel:
    """PeftModel.from_pretrained with the right config class; a shape mismatch is a one-line error."""
    config = read_adapter_config(path)
    try:
        return PeftModel.from_pretrained(model, str(path), config=config, is_trainable=is_trainable)
    except RuntimeError as err:
        if "size mismatch" in str(err):
            first = next(line.strip() for line in str(err).splitlines() if "size mismatch" in line)
            raise UserError(f"adapter at '{path}' does not fit this model: {first}") from err
        raise
    except ValueError as err:
        raise UserError(f"cannot load the adapter at '{path}': {str(err).splitlines()[0]}") from err
