"""Exact match of LoRA / DoRA / BoRA on a generative task: SmolLM2-135M-Instruct fine-tuned on verifiable
arithmetic (the clean data of the PoFT study), one command, resumable.

    .venv/bin/python -m benchmarks.adapters.bench_generative

Each (method, seed) run attaches a fresh adapter of equal rank and alpha to all linear layers, trains it with the
SFT loss (response tokens only) on the same problems and scores greedy answers on the same held-out problems.
Results accumulate in results/generative.json (a rerun skips finished runs); the figure and the README table are
generated from that file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks._harness import Store
from benchmarks.adapters.bench_accuracy import write_readme
from tunelab.errors import UserError
from tunelab.io import atomic_savefig, atomic_write_json, atomic_write_text
from tunelab.stats import sample_sd
from tunelab.report import Table

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "generative.json"
METHODS = ("lora", "dora", "bora")


def train_and_score(args, method: str, seed: int, train: list[dict], test: list[dict]) -> dict:
    from transformers import PrinterCallback

    from tunelab.adapters.attach import attach, make_config
    from tunelab.align.poft.config import PoFTConfig
    from tunelab.align.poft.study import evaluate
    from tunelab.align.poft.trainer import load_target, make_trainer

    model, tokenizer = load_target(args.target, seed=seed)
    model = attach(model, make_config(method, args.r, "all-linear", alpha=args.alpha, task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    with tempfile.TemporaryDirectory() as tmp:
        config = PoFTConfig(output_dir=tmp, loss_type="sft", num_train_epochs=args.epochs,
                            per_device_train_batch_size=args.batch_size, learning_rate=args.lr,
                            lr_scheduler_type="constant", seed=seed, save_strategy="no", logging_steps=1,
                            disable_tqdm=True, max_length=128, use_cpu=not torch.cuda.is_available())
        trainer = make_trainer(model, tokenizer, [(p["prompt"], p["response"]) for p in train], None, config)
        trainer.remove_callback(PrinterCallback)
        start = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - start
    scored = evaluate(model, tokenizer, test)  # the PoFT study's scoring: greedy answer, result after the last '='
    return {"method": method, "seed": seed, "trainable_parameters": trainable, "train_loss": result.training_loss,
            "steps": result.global_step, "train_seconds": seconds, "exact_match": scored["accuracy"],
            "sample_answers": scored["sample_answers"]}


def summarise(runs: dict) -> list[dict]:
    rows = []
    for method in METHODS:
        mine = [r for r in runs.values() if r["method"] == method]
        if not mine:
            continue
        em = [r["exact_match"] for r in mine]
        rows.append({"method": method, "seeds": len(mine), "exact_match_mean": statistics.fmean(em),
                     "exact_match_std": sample_sd(em),
                     "trainable_parameters": mine[0]["trainable_parameters"],
                     "train_seconds_median": statistics.median(r["train_seconds"] for r in mine)})
    return rows


def write_outputs(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summarise(results["runs"])
    results["summary"] = rows
    atomic_write_json(RESULTS, results)
    s = results["settings"]
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    ax.bar([r["method"] for r in rows], [r["exact_match_mean"] for r in rows],
           yerr=[r["exact_match_std"] for r in rows], color=["C0", "C1", "C2"][:len(rows)], capsize=4)
    for i, r in enumerate(rows):
        values = [x["exact_match"] for x in results["runs"].values() if x["method"] == r["method"]]
        ax.scatter([i] * len(values), values, color="black", s=10, zorder=3)
    ax.axhline(results["untrained_exact_match"], color="grey", ls=":", label="untrained")
    ax.set_ylim(0, 1)
    ax.set_ylabel("held-out exact match")
    ax.set_title(f"{s['target']}, r={s['r']}, {s['n_train']} {s['task']} problems", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, HERE / "results" / "generative.png")
    plt.close(fig)
    atomic_write_text(HERE / "results" / "generative_table.md", generative_table(results))
    write_readme()


def generative_table(results: dict) -> str:
    """The generative section's table (with its set-up line) from results/generative.json."""
    rows, s = summarise(results["runs"]), results["settings"]
    table = Table(["method", "seeds", "exact match", "trainable params",
                   "median train s (shared CPU, not a cost measure)"],
                  [[r["method"], r["seeds"], f"{r['exact_match_mean']:.3f} ± {r['exact_match_std']:.3f}",
                    r["trainable_parameters"], f"{r['train_seconds_median']:.0f}"] for r in rows])
    header = (f"`{s['target']}` with each adapter on all linear layers (r={s['r']}, alpha={s['alpha']}), SFT loss on "
              f"response tokens, {s['n_train']} generated `{s['task']}` problems answered with their working "
              f"(\"34 + 7 = 41\"), {s['epochs']} epochs, batch {s['batch_size']}, lr {s['lr']} (constant); exact "
              f"match of the greedy answer's result on {s['n_test']} held-out problems, mean ± sd (ddof 1) over seeds "
              f"{', '.join(map(str, s['seeds']))}. Untrained model: {results['untrained_exact_match']:.3f}.")
    return header + "\n\n" + table.to_markdown() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="smollm2-135m-instruct")
    parser.add_argument("--task", default="addition")
    parser.add_argument("--n-train", type=int, default=48)
    parser.add_argument("--n-test", type=int, default=40)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--data-seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--report-only", action="store_true", help="only regenerate figure/table from the JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from tunelab.align.poft.tasks import make_problems

    settings = {k: v for k, v in vars(args).items() if k not in ("report_only", "threads")}
    try:
        store = Store(RESULTS, settings=settings)
    except UserError as error:
        print(error, file=sys.stderr)
        return 2
    results = store.data
    problems = make_problems(args.n_train + args.n_test, args.data_seed, task=args.task)
    train, test = problems[:args.n_train], problems[args.n_train:]
    if not args.report_only:
        if "untrained_exact_match" not in results:
            from tunelab.align.poft.eval import accuracy
            from tunelab.align.poft.trainer import load_target

            results["untrained_exact_match"] = accuracy(*load_target(args.target), test)
        for seed in args.seeds:  # seed by seed, so a cut-short run leaves whole rows of methods
            for method in METHODS:
                key = f"{method}|seed={seed}"
                if store.done(key):
                    continue
                store.put(key, train_and_score(args, method, seed, train, test))
                run = results["runs"][key]
                print(f"{key}: exact match {run['exact_match']:.3f} ({run['train_seconds']:.0f} s)", flush=True)
    write_outputs(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
