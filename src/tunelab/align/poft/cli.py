"""`tunelab align poft score|train|study`: thin commands over poft.scoring, poft.trainer and poft.study."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from tunelab import validate
from tunelab.errors import UserError

app = typer.Typer(help="PoFT: preference-oriented SFT against aligned models' scores.", no_args_is_help=True)

DATA = typer.Option(..., "--data", help="SFT data: JSONL / CSV / Parquet with prompt and response columns.")
PROMPT_KEY = typer.Option("prompt", "--prompt-key", help="Column holding the prompt.")
RESPONSE_KEY = typer.Option("response", "--response-key", help="Column holding the response.")
ALIGNED = typer.Option(None, "--aligned-model", "-a",
                       help="Aligned model (embedded name, hub id or folder); repeat for several.")


def _pairs(data: Path, prompt_key: str, response_key: str) -> list[tuple[str, str]]:
    from tunelab.align.poft.loss import validate_examples
    from tunelab.data import read_records

    return validate_examples(read_records(data), prompt_key, response_key)


def _default_cache() -> Path:
    from tunelab.models import cache_dir

    return cache_dir().parent / "poft-scores"


@app.command()
def score(
    data: Path = DATA,
    aligned_model: List[str] = ALIGNED,
    out: Path = typer.Option(..., "--out", help="Scores file to write (JSON), used by `train --scores`."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Score cache (default: tunelab's cache)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    max_length: int = typer.Option(512, "--max-length", min=8),
    prompt_key: str = PROMPT_KEY,
    response_key: str = RESPONSE_KEY,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Score every response with each aligned model (cached and resumable) and write s_ref per example."""
    from tunelab.align.poft.scoring import score_dataset

    if not aligned_model:
        raise UserError("give at least one --aligned-model")
    validate.out_file(out)
    validate.out_dir(cache_dir, "--cache-dir")
    validate.in_file(data, "--data")
    pairs = _pairs(data, prompt_key, response_key)
    scores = score_dataset(pairs, aligned_model, cache_dir or _default_cache(), batch_size, max_length)
    scores.save(out)
    summary = {"examples": len(pairs), "out": str(out), "data_hash": scores.data_hash,
               "mean_score": {m: sum(s) / len(s) for m, s in scores.per_model.items()},
               "examples_per_second": scores.examples_per_second}
    typer.echo(json.dumps(summary, indent=2) if as_json else
               f"scored {len(pairs)} examples with {len(aligned_model)} aligned model(s) -> {out}")


@app.command()
def train(
    data: Path = DATA,
    out: Path = typer.Option(..., "--out", help="Folder for the trained model / adapter and checkpoints."),
    target: str = typer.Option("smollm2-135m-instruct", "--target", help="Model to fine-tune."),
    scores: Optional[Path] = typer.Option(None, "--scores", help="Scores file from `tunelab align poft score`."),
    aligned_model: List[str] = ALIGNED,
    loss: str = typer.Option("poft", "--loss", help="'poft', or 'sft' for the plain SFT baseline."),
    beta: float = typer.Option(1.0, "--beta"),
    gamma: float = typer.Option(0.0, "--gamma"),
    epochs: float = typer.Option(1.0, "--epochs"),
    max_steps: int = typer.Option(-1, "--max-steps", help="Stop after this many steps (-1: epochs decide)."),
    learning_rate: float = typer.Option(2e-4, "--lr"),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1),
    lora_r: int = typer.Option(16, "--lora-r", min=0, help="LoRA rank; 0 fine-tunes all weights."),
    max_length: int = typer.Option(512, "--max-length", min=8),
    save_steps: int = typer.Option(200, "--save-steps", min=1, help="Checkpoint every N steps (for --resume)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint under --out."),
    seed: int = typer.Option(0, "--seed"),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Score cache for --aligned-model."),
    prompt_key: str = PROMPT_KEY,
    response_key: str = RESPONSE_KEY,
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    """Fine-tune the target with PoFT (or SFT); `accelerate launch -m tunelab.cli align poft train ...` scales it."""
    from tunelab.align.poft.config import PoFTConfig
    from tunelab.align.poft.scoring import AlignedScores, score_dataset
    from tunelab.align.poft.trainer import LoraSettings, train as run_training

    if loss not in ("poft", "sft"):
        raise UserError(f"--loss must be 'poft' or 'sft', not '{loss}'")
    validate.positive("--beta", beta)
    validate.positive("--lr", learning_rate)
    validate.steps_or_epochs("--max-steps", max_steps, "--epochs", epochs)
    validate.out_dir(out)
    validate.out_dir(cache_dir, "--cache-dir")
    validate.in_file(data, "--data")
    if scores is not None:
        validate.in_file(scores, "--scores")
    pairs = _pairs(data, prompt_key, response_key)
    reference = None
    if loss == "poft":
        if scores is not None:
            reference = AlignedScores.load(scores)
            reference.check_matches(pairs)  # fail now, before any model loads
        elif aligned_model:
            reference = score_dataset(pairs, aligned_model, cache_dir or _default_cache(), max_length=max_length)
        else:
            raise UserError("PoFT needs reference scores: pass --scores FILE or --aligned-model NAME (or --loss sft)")
    import torch

    config = PoFTConfig(output_dir=str(out / "checkpoints"), loss_type=loss, beta=beta, gamma=gamma,
                        num_train_epochs=epochs, max_steps=max_steps, learning_rate=learning_rate,
                        per_device_train_batch_size=batch_size, gradient_accumulation_steps=grad_accum,
                        max_length=max_length, save_steps=save_steps, seed=seed, logging_steps=10,
                        use_cpu=not torch.cuda.is_available())
    records = [{"prompt": p, "response": r} for p, r in pairs]
    lora = LoraSettings(r=lora_r, alpha=2 * lora_r) if lora_r else None
    with contextlib.redirect_stdout(sys.stderr):  # Trainer's log lines must not mix with --json output
        summary = run_training(records, target, config, reference, lora, resume=resume, save_to=out / "model")
    typer.echo(json.dumps(summary, indent=2) if as_json else
               f"trained {target} with {loss.upper()} for {summary['steps']} steps "
               f"(loss {summary['train_loss']:.4f}) -> {out / 'model'}")


@app.command()
def study(
    out: Path = typer.Option(Path("poft-study"), "--out", help="Folder for poft_study.json and poft_accuracy.png."),
    target: str = typer.Option("smollm2-135m-instruct", "--target"),
    aligned_model: List[str] = ALIGNED,
    task: str = typer.Option("addition", "--task", help="Problem family: addition, times-table or mixed."),
    n_train: int = typer.Option(48, "--n-train", min=2),
    n_test: int = typer.Option(40, "--n-test", min=1),
    noise: List[float] = typer.Option(None, "--noise", help="Fractions of corrupted responses (repeat; default 0, 0.2, 0.4)."),
    seeds: List[int] = typer.Option(None, "--seed", help="Seeds (repeat; default 0 1 2)."),
    epochs: float = typer.Option(2.0, "--epochs"),
    learning_rate: float = typer.Option(1e-3, "--lr"),
    cost_steps: int = typer.Option(5, "--cost-steps", min=0),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir"),
    as_json: bool = typer.Option(False, "--json", help="Print the results JSON."),
) -> None:
    """SFT vs PoFT held-out accuracy on verifiable problems with 0/20/40 % corrupted responses (resumable)."""
    from tunelab.align.poft.study import DEFAULT_ALIGNED, StudySettings, plot, run_study, seed_sd
    from tunelab.align.poft.tasks import TASKS
    from tunelab.io import atomic_savefig, atomic_write_json

    if task not in TASKS:
        raise UserError(f"unknown task '{task}': choose one of {', '.join(sorted(TASKS))}")
    if any(not 0 <= n <= 1 for n in noise or []):
        raise UserError("--noise values are fractions between 0 and 1")
    validate.positive("--epochs", epochs)
    validate.positive("--lr", learning_rate)
    validate.out_dir(out)
    validate.out_dir(cache_dir, "--cache-dir")
    settings = StudySettings(target=target, task=task, aligned=tuple(aligned_model or DEFAULT_ALIGNED),
                             n_train=n_train, n_test=n_test, noise=tuple(noise or (0.0, 0.2, 0.4)),
                             seeds=tuple(seeds or (0, 1, 2)), epochs=epochs, learning_rate=learning_rate, cost_steps=cost_steps)
    out.mkdir(parents=True, exist_ok=True)
    results = run_study(settings, cache_dir or _default_cache(), log=lambda m: typer.echo(m, err=True),
                        runs_file=out / "poft_runs.partial.jsonl")
    atomic_write_json(out / "poft_study.json", results)
    atomic_savefig(plot(results), out / "poft_accuracy.png")
    (out / "poft_runs.partial.jsonl").unlink(missing_ok=True)
    if as_json:
        typer.echo(json.dumps(results, indent=2, default=str))
    else:
        for method, by_noise in results["accuracy"].items():
            typer.echo(f"{method.upper():5s} " + "  ".join(f"{float(n):.0%}: {v['mean']:.3f}±{seed_sd(v):.3f}"
                                                         for n, v in by_noise.items()))
        typer.echo(f"results: {out / 'poft_study.json'}")
