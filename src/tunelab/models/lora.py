"""The one path from a model name to a trainable model with a PEFT adapter, shared by every capability.

`load_for_training` loads a causal LM with every failure as one line; `lora_config` builds PEFT's LoraConfig with
tunelab's defaults; `attach_adapter` wraps a model in any LoRA-family config (LoRA, DoRA, BoRA) and `attach_lora`
does both steps for plain LoRA.
"""

from __future__ import annotations

from tunelab.errors import UserError


def load_for_training(name_or_path: str, seed: int = 0, role: str = "model"):
    """(model, tokenizer) in train mode; a load failure of any kind is one UserError naming the `role`."""
    from tunelab.models.loaders import load_causal_lm

    try:
        model, tokenizer = load_causal_lm(name_or_path, seed=seed)
    except UserError as err:
        raise UserError(f"{role} '{name_or_path}' cannot be loaded: {err}") from None
    except Exception as err:  # noqa: BLE001 - broken configs, missing weights, unknown architectures
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"{role} '{name_or_path}' cannot be loaded: {first}") from None
    return model.train(), tokenizer


def lora_config(r: int, alpha: float | None = None, targets: str | list[str] = "all-linear", dropout: float = 0.0,
                task_type: str | None = "CAUSAL_LM", **options):
    """PEFT's LoraConfig; `alpha` defaults to r (scaling 1). `options` pass through (use_dora, modules_to_save)."""
    from peft import LoraConfig

    if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
        raise UserError(f"LoRA rank must be a positive integer, got {r}")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"LoRA dropout must be in [0, 1), got {dropout}")
    return LoraConfig(r=r, lora_alpha=alpha if alpha is not None else r, lora_dropout=dropout,
                      target_modules=targets, task_type=task_type, **options)


def _module_names(model) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}


def attach_adapter(model, config, adapter_name: str = "default"):
    """get_peft_model for any LoRA-family config, with a one-line error when no module matches the targets."""
    from peft import get_peft_model

    targets = config.target_modules
    if isinstance(targets, (set, list, tuple)):
        missing = sorted(set(targets) - _module_names(model))
        if missing:
            raise UserError(f"target modules not found in the model: {', '.join(missing)}")
    try:
        return get_peft_model(model, config, adapter_name=adapter_name)
    except ValueError as err:
        raise UserError(f"cannot attach the adapter: {str(err).splitlines()[0]}") from err


def attach_lora(model, r: int, alpha: float | None = None, targets: str | list[str] = "all-linear",
                dropout: float = 0.0, task_type: str | None = "CAUSAL_LM"):
    """`model` wrapped in a fresh LoRA adapter (see `lora_config`)."""
    return attach_adapter(model, lora_config(r, alpha, targets, dropout, task_type))
