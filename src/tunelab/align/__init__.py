"""Preference alignment as one stack: `preference/` (DPO / EPA: config, losses, data, trainer, reference log-probs,
theory, studies) and `poft/` (PoFT: loss, scoring, trainer, tasks, evaluation, studies) share `chat` (the one
chat-template split and padding) and `logprobs` (the one log-prob kernel).

The main names below are imported on first use (they need torch and transformers), so `import tunelab.cli` stays
light: `from tunelab.align import AlignConfig, PreferenceTrainer`.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "AlignConfig": "tunelab.align.preference.config",
    "PreferenceTrainer": "tunelab.align.preference.trainer",
    "PoFTConfig": "tunelab.align.poft.config",
    "PoFTTrainer": "tunelab.align.poft.trainer",
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
