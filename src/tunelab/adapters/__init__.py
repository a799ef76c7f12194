"""Parameter-efficient fine-tuning: BoRA (bi-dimensional weight-decomposed LoRA) as a variant of PEFT's LoRA,
measured against PEFT's own LoRA and DoRA.

The names below are imported on first use (they need torch and PEFT), so `import tunelab.cli` stays light. BoRA is
registered with PEFT by `import tunelab` (see `tunelab.adapters.registry`): a saved BoRA adapter then loads through
`PeftModel.from_pretrained` or transformers' `load_adapter` from its `adapter_config.json` alone.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "BidimLinearVariant": "tunelab.adapters.bora",
    "BidimLoraLinear": "tunelab.adapters.bora",
    "BidimLoraConfig": "tunelab.adapters.config",
    "IN_FIRST": "tunelab.adapters.gains",
    "ORDERS": "tunelab.adapters.gains",
    "OUT_FIRST": "tunelab.adapters.gains",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
