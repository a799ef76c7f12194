"""PoFT (or SFT) on noisy data, then preference optimisation (DPO or EPA from tunelab.align) on verified pairs.

The paper says PoFT stacks with DPO run afterwards. Here the first stage trains on the study's corrupted SFT data
at one noise level; the second merges that LoRA into the target, attaches a fresh one and trains it on pairs
(clean response, corrupted response) of the same training prompts, with the first-stage model as the reference.
Held-out accuracy is measured after each stage, so the table shows what each second stage adds. A second stage is
"dpo", "epa" or one with displacement guards ("epa+nll_weight=1+dpop_lambda=50"); with `n_val` > 0 every stage is also
scored on validation problems (disjoint from training and test), and the guarded stage to report is the one with the
best validation accuracy, never chosen on the test problems.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from tunelab.align.poft.scoring import score_dataset
from tunelab.align.poft.study import (StudySettings, evaluate, load_finished_runs, pairs_of, record_run, seed_sd,
                                      summarise, train_target)
from tunelab.align.poft.tasks import corrupt, make_problems
from tunelab.align.preference.guard_config import DisplacementGuards
from tunelab.errors import UserError

# options a second stage may set after '+': the displacement guards and the weak-negative weight
STAGE_OPTIONS = (*(f.name for f in dataclasses.fields(DisplacementGuards)), "weak_weight")


@dataclasses.dataclass
class FollowupSettings:
    noise: float = 0.4  # corruption of the first stage's SFT data
    methods: tuple[str, ...] = ("dpo", "epa")  # second stages: dpo, epa, or with guards (parse_stage)
    beta: float = 0.1
    num_weak: int = 2  # EPA's weak negatives (other prompts' responses); DPO has none
    epochs: float = 2.0
    batch_size: int = 8
    learning_rate: float = 5e-4
    lora_r: int = 8
    n_val: int = 0  # validation problems for choosing guards (0: none)


def parse_stage(text: str) -> tuple[str, dict]:
    """'epa' or 'epa+nll_weight=1+dpop_lambda=50' -> (method, AlignConfig options)."""
    method, *parts = text.strip().split("+")
    if method not in ("dpo", "epa"):
        raise UserError(f"second stage '{text}': start with dpo or epa")
    options = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or key not in STAGE_OPTIONS:
            raise UserError(f"second stage '{text}': use KEY=VALUE with KEY one of {', '.join(STAGE_OPTIONS)}")
        try:
            options[key] = None if value.lower() == "none" else float(value)
        except ValueError:
            raise UserError(f"second stage '{text}': {key} needs a number or none") from None
    return method, options


def validation_problems(settings: StudySettings, n: int, seen: list[dict]) -> list[dict]:
    """n problems of the study's task that are neither training nor test problems (their own seed)."""
    return make_problems(n, settings.data_seed + 1, exclude={p["prompt"] for p in seen}, task=settings.task)


def choose_on_validation(runs: list[dict], first: str, stages: tuple[str, ...]) -> str | None:
    """The second stage with the highest mean validation accuracy after `first` (ties: the earlier in `stages`)."""
    scored = [r for r in runs if r["first"] == first and "val_accuracy" in r]
    if not scored:
        return None
    means = {st: sum(r["val_accuracy"][st] for r in scored) / len(scored) for st in stages}
    return max(stages, key=lambda st: (means[st], -stages.index(st)))


def preference_records(train: list[dict]) -> list[dict]:
    """One verified pair per training problem: its clean response over its corrupted one (the same wrong answer
    the noisy SFT data uses)."""
    wrong = corrupt(train, 1.0, seed=0)
    return [{"prompt": p["prompt"], "chosen": p["response"], "rejected": w["response"]} for p, w in zip(train, wrong)]


def preference_stage(model, tokenizer, records: list[dict], stage: str, seed: int, follow: FollowupSettings):
    """A fresh LoRA trained with `stage` (parse_stage) on the merged first-stage model (its own reference); returns
    (model, training seconds)."""
    from transformers import PrinterCallback

    from tunelab.align.preference.config import AlignConfig
    from tunelab.align.preference.trainer import PreferenceTrainer
    from tunelab.models.lora import lora_config

    method, guards = parse_stage(stage)
    merged = copy.deepcopy(model).merge_and_unload()
    lora = lora_config(follow.lora_r, alpha=2 * follow.lora_r)
    with tempfile.TemporaryDirectory() as tmp:
        args = AlignConfig(output_dir=tmp, method=method, beta=follow.beta,
                           num_weak=follow.num_weak if method == "epa" else 0, num_train_epochs=follow.epochs,
                           per_device_train_batch_size=follow.batch_size, learning_rate=follow.learning_rate,
                           lr_scheduler_type="constant", save_strategy="no", logging_steps=1, seed=seed,
                           data_seed=seed, disable_tqdm=True, max_length=128, use_cpu=not torch.cuda.is_available(),
                           **guards)
        trainer = PreferenceTrainer(merged, args, records, tokenizer, peft_config=lora)
        trainer.remove_callback(PrinterCallback)
        start = time.perf_counter()
        trainer.train()
        return trainer.model, time.perf_counter() - start


def chosen_logp(model, tokenizer, records: list[dict]) -> float:
    """Mean log pi(chosen | prompt) over the preference records: what displacement lowers."""
    from tunelab.align.logprobs import response_logps

    return float(response_logps(model, tokenizer, [(r["prompt"], r["chosen"]) for r in records]).mean())


def record_stage(run: dict, stage: str, model, tokenizer, seconds: float, test: list[dict], val: list[dict],
                 records: list[dict]) -> None:
    """Test (and validation) accuracy, sample answers, time and chosen log-prob of one stage, into `run`."""
    scored = evaluate(model, tokenizer, test)
    run["accuracy"][stage] = scored["accuracy"]
    run["sample_answers"][stage] = scored["sample_answers"]  # what a second stage did to the answers
    run["seconds"][stage] = seconds
    run["chosen_logp"][stage] = chosen_logp(model, tokenizer, records)
    if val:
        run["val_accuracy"][stage] = evaluate(model, tokenizer, val)["accuracy"]


def run_followups(settings: StudySettings, follow: FollowupSettings, cache_dir: str | Path, log=print,
                  runs_file: Path | None = None) -> dict:
    """Every (seed, first stage) run with each second stage; resumable through `runs_file` like the study."""
    for stage in follow.methods:
        parse_stage(stage)
    problems = make_problems(settings.n_train + settings.n_test, settings.data_seed, task=settings.task)
    train, test = problems[:settings.n_train], problems[settings.n_train:]
    val = validation_problems(settings, follow.n_val, problems) if follow.n_val else []
    records = preference_records(train)
    header = {"study": settings, "followup": follow}
    runs = load_finished_runs(runs_file, header)
    done = {(r["seed"], r["first"]) for r in runs}
    for seed in settings.seeds:
        rows = corrupt(train, follow.noise, seed)
        scores = score_dataset(pairs_of(rows), settings.aligned, cache_dir, settings.score_batch_size,
                               settings.max_length)
        for first in settings.methods:
            if (seed, first) in done:
                continue
            model, tokenizer, summary = train_target(settings, rows, first, seed, scores)
            run = {"seed": seed, "first": first, "accuracy": {}, "sample_answers": {}, "seconds": {},
                   "chosen_logp": {}, **({"val_accuracy": {}} if val else {})}
            record_stage(run, "none", model, tokenizer, summary["train_seconds"], test, val, records)
            for stage in follow.methods:
                tuned, seconds = preference_stage(model, tokenizer, records, stage, seed, follow)
                record_stage(run, stage, tuned, tokenizer, seconds, test, val, records)
                del tuned
            runs.append(run)
            record_run(runs_file, header, run)
            log(f"seed {seed} {first}: " + ", ".join(f"+{m} {a:.3f}" for m, a in run["accuracy"].items()))
    stages = ("none", *follow.methods)
    table = {first: {stage: summarise([r["accuracy"][stage] for r in runs if r["first"] == first]) for stage in stages}
             for first in settings.methods}
    out = {"settings": dataclasses.asdict(settings), "followup": dataclasses.asdict(follow), "accuracy": table,
           "chosen_logp": {first: {stage: summarise([r["chosen_logp"][stage] for r in runs if r["first"] == first])
                                   for stage in stages} for first in settings.methods},
           "runs": runs, "preference_pairs": len(records)}
    if val:
        out["validation_problems"] = len(val)
        out["val_accuracy"] = {first: {stage: summarise([r["val_accuracy"][stage] for r in runs if r["first"] == first])
                                       for stage in stages} for first in settings.methods}
        guarded = tuple(st for st in follow.methods if "+" in st)
        out["chosen_on_validation"] = {first: choose_on_validation(runs, first, guarded) if guarded else None
                                       for first in settings.methods}
    return out


def plot(results: dict):
    """Held-out accuracy after the first stage and after each second stage, grouped by first stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    firsts = list(results["accuracy"])
    stages = list(results["accuracy"][firsts[0]])
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    width = 0.8 / len(stages)
    for j, stage in enumerate(stages):
        cells = [results["accuracy"][f][stage] for f in firsts]
        ax.bar([i + j * width for i in range(len(firsts))], [c["mean"] for c in cells], width,
               yerr=[seed_sd(c) for c in cells], capsize=3, label="no second stage" if stage == "none" else f"+{stage.upper()}")
    ax.set_xticks([i + width * (len(stages) - 1) / 2 for i in range(len(firsts))], [f.upper() for f in firsts])
    ax.set_ylim(0, 1)
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"{results['followup']['noise']:.0%} corrupted SFT data, then verified pairs "
                 f"({len(results['settings']['seeds'])} seeds)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
