"""One PoFT (or SFT) training run end to end: data -> reference scores -> target model (+ LoRA) -> trained model."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Sequence

from tunelab.align.poft import validate_examples
from tunelab.align.poft_config import PoFTConfig
from tunelab.align.poft_scoring import AlignedScores
from tunelab.align.poft_trainer import PoFTTrainer, build_dataset
from tunelab.errors import UserError
from tunelab.resume import last_checkpoint, run_train_loss


@dataclasses.dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str | list[str] = "all-linear"


def attach_lora(model, lora: LoraSettings | None):
    """Wrap `model` in a PEFT LoRA adapter (None: full fine-tuning)."""
    if lora is None:
        return model
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.target_modules, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def load_target(name_or_path: str, seed: int = 0):
    from tunelab.models import load_causal_lm

    try:
        model, tokenizer = load_causal_lm(name_or_path, seed=seed)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"target model '{name_or_path}' cannot be loaded: {first}") from None
    return model.train(), tokenizer


def make_trainer(model, tokenizer, pairs: Sequence[tuple[str, str]], scores: AlignedScores | None,
                 config: PoFTConfig, callbacks=None) -> PoFTTrainer:
    """A PoFTTrainer on `pairs`; PoFT needs scores computed for exactly these pairs, SFT needs none."""
    reference = None
    if config.loss_type == "poft":
        if scores is None:
            raise UserError("PoFT needs reference scores: pass --scores FILE or --aligned-model NAME")
        scores.check_matches(pairs)
        reference = scores.reference
    dataset = build_dataset(tokenizer, pairs, reference, config.max_length)
    return PoFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                       callbacks=callbacks)


def train(records: list[dict], target: str, config: PoFTConfig, scores: AlignedScores | None = None,
          lora: LoraSettings | None = LoraSettings(), resume: bool = False, save_to: Path | None = None) -> dict:
    """Train and (if save_to) save the model/adapter there atomically; returns the run's summary."""
    from tunelab.align.trainer import name_base_model
    from tunelab.io import atomic_write_json, staged_dir

    pairs = validate_examples(records)
    model, tokenizer = load_target(target, seed=config.seed)
    name_base_model(model, target)
    model = attach_lora(model, lora)
    trainer = make_trainer(model, tokenizer, pairs, scores, config)
    checkpoint = last_checkpoint(config.output_dir) if resume else None
    resumed_from = str(checkpoint) if checkpoint else None
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resumed_from)
    train_loss = run_train_loss(trainer.state.log_history, result.training_loss)  # all steps, not this process's
    summary = {"loss_type": config.loss_type, "target": target, "examples": len(pairs), "steps": result.global_step,
               "train_loss": train_loss, "seconds": time.perf_counter() - start,
               "resumed_from": resumed_from, "lora": dataclasses.asdict(lora) if lora else None,
               "beta": config.beta, "gamma": config.gamma,
               "aligned_models": scores.models if scores is not None and config.loss_type == "poft" else []}
    if save_to is not None:
        with staged_dir(save_to) as tmp:
            trainer.save_model(str(tmp))
            tokenizer.save_pretrained(str(tmp))
            atomic_write_json(tmp / "poft_summary.json", summary)
    return summary

