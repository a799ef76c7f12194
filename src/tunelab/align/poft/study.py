"""The noisy-SFT study: SFT vs PoFT held-out accuracy when 0 / 20 / 40 % of the SFT responses are wrong.

Target: SmolLM2-135M-Instruct with LoRA; aligned models: the embedded Qwen2.5-Coder-0.5B-Instruct and
SmolLM2-135M-Instruct (each with its own chat template). Data: generated arithmetic / unit-conversion problems whose
answers are checked exactly (`poft.tasks`). Also measured: the cost of a PoFT step against an SFT step on the same
batches in the same run, and scoring throughput per aligned model.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Sequence

import torch

from transformers import PrinterCallback

from tunelab.align.poft.config import PoFTConfig
from tunelab.align.poft.eval import accuracy, generate_answers
from tunelab.align.poft.scoring import AlignedScores, score_dataset
from tunelab.align.poft.tasks import corrupt, is_correct, make_problems
from tunelab.align.poft.trainer import LoraSettings, attach_lora, load_target, make_trainer
from tunelab.io import atomic_write_text, to_jsonable

DEFAULT_ALIGNED = ("qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct")


@dataclasses.dataclass
class StudySettings:
    target: str = "smollm2-135m-instruct"
    task: str = "addition"  # problem family (tasks.TASKS)
    aligned: tuple[str, ...] = DEFAULT_ALIGNED
    n_train: int = 48
    n_test: int = 40
    noise: tuple[float, ...] = (0.0, 0.2, 0.4)
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = ("sft", "poft")
    epochs: float = 2.0
    batch_size: int = 8
    learning_rate: float = 1e-3
    lora_r: int = 8
    beta: float = 1.0
    gamma: float = 0.0
    max_length: int = 128
    score_batch_size: int = 16
    data_seed: int = 1234
    cost_steps: int = 5  # interleaved SFT / PoFT steps timed for the cost ratio (0: skip)


def pairs_of(rows: Sequence[dict]) -> list[tuple[str, str]]:
    return [(r["prompt"], r["response"]) for r in rows]


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """P(score of a clean response > score of a corrupted one): how well s_ref separates them (ties count half)."""
    if not positives or not negatives:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def summarise(values: Sequence[float]) -> dict:
    """{"mean", "sd" (ddof 1), "ci95", "n", "values"} over seeds: the toolkit's one definition (tunelab.stats)."""
    from tunelab.stats import summarise as over_seeds

    return over_seeds(values)


def seed_sd(cell: dict) -> float:
    """The sd (ddof 1) of a summarised cell, recomputed from its per-seed values where it stores them (result files
    written before the "sd" key name it "std")."""
    from tunelab.stats import sample_sd

    return sample_sd(cell["values"]) if cell.get("values") else cell.get("sd", cell.get("std"))


def train_target(settings: StudySettings, rows: list[dict], method: str, seed: int, scores: AlignedScores | None):
    """SFT or PoFT of a fresh LoRA on the target; returns (model, tokenizer, training summary)."""
    model, tokenizer = load_target(settings.target, seed=seed)
    model = attach_lora(model, LoraSettings(r=settings.lora_r, alpha=2 * settings.lora_r))
    with tempfile.TemporaryDirectory() as tmp:
        config = PoFTConfig(output_dir=tmp, loss_type=method, beta=settings.beta, gamma=settings.gamma,
                            num_train_epochs=settings.epochs, per_device_train_batch_size=settings.batch_size,
                            learning_rate=settings.learning_rate, lr_scheduler_type="constant", seed=seed,
                            save_strategy="no", logging_steps=1, disable_tqdm=True, max_length=settings.max_length,
                            use_cpu=not torch.cuda.is_available())
        trainer = make_trainer(model, tokenizer, pairs_of(rows), scores if method == "poft" else None, config)
        trainer.remove_callback(PrinterCallback)  # the study logs one line per run
        start = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - start
        weights = [log["poft/weight"] for log in trainer.state.log_history if "poft/weight" in log]
    return model, tokenizer, {"train_loss": result.training_loss, "steps": result.global_step,
                              "train_seconds": seconds, "mean_poft_weight": statistics.fmean(weights) if weights else None}


def evaluate(model, tokenizer, test: list[dict]) -> dict:
    """Held-out accuracy of greedy answers, with a few answers kept for diagnosis."""
    answers = generate_answers(model, tokenizer, [p["prompt"] for p in test])
    return {"accuracy": sum(is_correct(a, p["answer"]) for a, p in zip(answers, test)) / len(test),
            "sample_answers": [[p["prompt"], p["answer"], a] for p, a in zip(test[:5], answers)]}


def train_and_evaluate(settings: StudySettings, rows: list[dict], test: list[dict], method: str, seed: int,
                       scores: AlignedScores | None) -> dict:
    model, tokenizer, summary = train_target(settings, rows, method, seed, scores)
    return {**evaluate(model, tokenizer, test), **summary}


def step_time_ratio(settings: StudySettings, rows: list[dict], cache_dir: str | Path, steps: int) -> dict:
    """Median PoFT and SFT step times (forward + backward) on the same batch, interleaved in one process.

    Scores are precomputed, so the difference is the loss alone; the optimizer update, identical for both, is left out
    (including it would only pull the ratio towards 1).
    """
    scores = score_dataset(pairs_of(rows), settings.aligned, cache_dir, settings.score_batch_size, settings.max_length)
    model, tokenizer = load_target(settings.target, seed=0)
    model = attach_lora(model, LoraSettings(r=settings.lora_r, alpha=2 * settings.lora_r))
    times: dict[str, list[float]] = {"sft": [], "poft": []}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for method in times:
            config = PoFTConfig(output_dir=tmp, loss_type=method, per_device_train_batch_size=settings.batch_size,
                                max_length=settings.max_length, disable_tqdm=True, use_cpu=not torch.cuda.is_available())
            trainers[method] = make_trainer(model, tokenizer, pairs_of(rows), scores, config)
        batch = next(iter(trainers["poft"].get_train_dataloader()))
        for step in range(steps + 1):
            for method in (("sft", "poft") if step % 2 else ("poft", "sft")):  # alternate who goes first
                trainer = trainers[method]
                inputs = dict(batch) if method == "poft" else {k: v for k, v in batch.items() if k != "reference_score"}
                start = time.perf_counter()
                trainer.compute_loss(model, inputs).backward()  # forward + backward; the optimizer step is shared
                model.zero_grad(set_to_none=True)
                if step:  # step 0 warms up both paths
                    times[method].append(time.perf_counter() - start)
    sft, poft = statistics.median(times["sft"]), statistics.median(times["poft"])
    per_round = sorted(p / s for p, s in zip(times["poft"], times["sft"]))  # the two steps ran seconds apart
    quartiles = statistics.quantiles(per_round, n=4) if len(per_round) > 1 else per_round * 3
    return {"steps_timed": steps, "batch_size": settings.batch_size, "median_sft_step_s": sft,
            "median_poft_step_s": poft, "poft_over_sft": poft / sft,
            "per_round_ratio": {"median": statistics.median(per_round), "q1": quartiles[0], "q3": quartiles[2]}}


def load_finished_runs(path: Path | None, settings: StudySettings) -> list[dict]:
    """Runs already recorded in `path` (JSONL, first line the settings) by an interrupted study with equal settings."""
    if path is None or not path.is_file():
        return []
    lines = path.read_text().splitlines()
    try:
        if json.loads(lines[0]) != {"settings": to_jsonable(settings)}:
            return []  # other settings: start over
        return [json.loads(line) for line in lines[1:] if line.endswith("}")]
    except (ValueError, IndexError):
        return []


def record_run(path: Path | None, settings: StudySettings, run: dict) -> None:
    if path is None:
        return
    header = json.dumps({"settings": to_jsonable(settings)})
    if not path.is_file() or path.read_text().splitlines()[:1] != [header]:
        atomic_write_text(path, header + "\n")  # new study, or other settings: start the record over
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(to_jsonable(run)) + "\n")


def run_study(settings: StudySettings, cache_dir: str | Path, log=print, runs_file: Path | None = None) -> dict:
    """All runs of the study; returns a JSON-ready dict (accuracy per method and noise level over seeds).

    With `runs_file`, each finished run is appended there and a restarted study with the same settings skips it.
    """
    problems = make_problems(settings.n_train + settings.n_test, settings.data_seed, task=settings.task)
    train, test = problems[:settings.n_train], problems[settings.n_train:]
    datasets = {(noise, seed): corrupt(train, noise, seed) for noise in settings.noise for seed in settings.seeds}

    # One scoring pass over every distinct response (clean and corrupted); each run then reads the cache.
    union = list(dict.fromkeys(pairs_of(train) + [pair for rows in datasets.values() for pair in pairs_of(rows)]))
    all_scores = score_dataset(union, settings.aligned, cache_dir, settings.score_batch_size, settings.max_length)
    reference = dict(zip(union, all_scores.reference))
    clean = [reference[p] for rows in datasets.values() for p, r in zip(pairs_of(rows), rows) if not r["corrupted"]]
    noisy = [reference[p] for rows in datasets.values() for p, r in zip(pairs_of(rows), rows) if r["corrupted"]]
    per_model_auc = {}
    for name in settings.aligned:
        own = dict(zip(union, all_scores.per_model[name]))
        pos = [own[p] for p, r in zip(pairs_of(train), train)]
        neg = [own[p] for p in {pair for rows in datasets.values() for pair, r in zip(pairs_of(rows), rows)
                                if r["corrupted"]}]
        per_model_auc[name] = auc(pos, neg)

    model, tokenizer = load_target(settings.target)
    untrained = accuracy(model, tokenizer, test)
    del model
    log(f"untrained {settings.target}: held-out accuracy {untrained:.3f}")

    runs = load_finished_runs(runs_file, settings)
    done = {(r["noise"], r["seed"], r["method"]) for r in runs}
    if runs:
        log(f"resuming: {len(runs)} runs already finished")
    for noise in settings.noise:
        for seed in settings.seeds:
            rows = datasets[(noise, seed)]
            scores = score_dataset(pairs_of(rows), settings.aligned, cache_dir, settings.score_batch_size,
                                   settings.max_length)  # all cached: checks the data hash, loads no model
            for method in settings.methods:
                if (noise, seed, method) in done:
                    continue
                result = train_and_evaluate(settings, rows, test, method, seed, scores)
                runs.append({"noise": noise, "seed": seed, "method": method, **result})
                record_run(runs_file, settings, runs[-1])
                log(f"noise {noise:.0%} seed {seed} {method}: accuracy {result['accuracy']:.3f} "
                    f"({result['train_seconds']:.0f}s)")
    table = {method: {str(noise): summarise([r["accuracy"] for r in runs if r["method"] == method
                                             and r["noise"] == noise]) for noise in settings.noise}
             for method in settings.methods}
    cost = None
    if settings.cost_steps:
        cost = step_time_ratio(settings, datasets[(settings.noise[-1], settings.seeds[0])], cache_dir,
                               settings.cost_steps)
    return {"settings": dataclasses.asdict(settings), "untrained_accuracy": untrained, "accuracy": table,
            "runs": runs, "scoring": {"distinct_examples": len(union),
                                      "examples_per_second": all_scores.examples_per_second,
                                      "s_ref_mean_clean": statistics.fmean(clean) if clean else None,
                                      "s_ref_mean_corrupted": statistics.fmean(noisy) if noisy else None,
                                      "auc_clean_vs_corrupted": per_model_auc},
            "cost": cost}


def plot(results: dict):
    """Accuracy vs noise, mean +/- sd (ddof 1) over seeds, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for method, by_noise in results["accuracy"].items():
        levels = sorted(by_noise, key=float)
        ax.errorbar([100 * float(n) for n in levels], [by_noise[n]["mean"] for n in levels],
                    yerr=[seed_sd(by_noise[n]) for n in levels], marker="o", capsize=3, label=method.upper())
    ax.axhline(results["untrained_accuracy"], color="grey", ls=":", label="untrained")
    ax.set_xlabel("corrupted SFT responses (%)")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"{results['settings']['target']} + LoRA, {len(results['settings']['seeds'])} seeds")
    ax.legend()
    fig.tight_layout()
    return fig


def table_rows(results: dict) -> list[list]:
    rows = []
    for noise in results["settings"]["noise"]:
        row = [f"{noise:.0%}"]
        for method in results["settings"]["methods"]:
            cell = results["accuracy"][method][str(noise)]
            row.append(f"{cell['mean']:.3f} ± {seed_sd(cell):.3f}")
        rows.append(row)
    return rows
