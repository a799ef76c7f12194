"""Accuracy of LoRA / DoRA / BoRA classifiers on the embedded MiniLM encoder (one command, resumable).

    .venv/bin/python -m benchmarks.adapters.bench_accuracy

Every (dataset, rank, method, seed) run trains a fresh copy of the encoder with the adapter and a linear head on
the same stratified training sample and scores the same test sample. Results accumulate in
results/accuracy.json (a rerun skips the runs already there); the figure and the README table are generated
from that file.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks._harness import Store, write_readme as write_readme_parts
from tunelab.adapters.classify import TrainSettings, make_inputs, train_classifier
from tunelab.data import load_labeled_text
from tunelab.stats import sample_sd
from tunelab.errors import UserError
from tunelab.io import atomic_write_json
from tunelab.models import load_encoder
from tunelab.report import Table

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "accuracy.json"


def run_key(dataset: str, r: int, method: str, seed: int) -> str:
    return f"{dataset}|r={r}|{method}|seed={seed}"


def plan(args) -> list[tuple[str, int, str, int]]:
    """In order of priority: all seeds of the main methods at the first rank, then at the next ranks, then the
    in_first order. A run cut short by its time budget thus leaves complete rows first (the table states how many
    seeds each row has; rerunning resumes)."""
    main = [m for m in args.methods if m != "bora:in_first"]
    groups = [(r, main) for r in args.ranks]
    if "bora:in_first" in args.methods:
        groups += [(r, ["bora:in_first"]) for r in args.in_first_ranks]
    runs = []
    for r, methods in groups:
        for seed in args.seeds:
            for dataset in args.datasets:
                runs += [(dataset, r, method, seed) for method in methods]
    return runs


def summarise(results: dict) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for run in results["runs"].values():
        groups.setdefault((run["dataset"], run["r"], run["method"]), []).append(run)
    rows = []
    for (dataset, r, method), runs in sorted(groups.items()):
        acc = [x["accuracy"] for x in runs]
        f1 = [x["macro_f1"] for x in runs]
        rows.append({"dataset": dataset, "r": r, "method": method, "seeds": len(runs),
                     "accuracy_mean": statistics.mean(acc), "accuracy_std": sample_sd(acc),
                     "macro_f1_mean": statistics.mean(f1), "macro_f1_std": sample_sd(f1),
                     "trainable_parameters": runs[0]["trainable_parameters"],
                     "minutes_per_run": statistics.mean(x["seconds"] for x in runs) / 60})
    return rows


def write_outputs(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunelab.io import atomic_savefig, atomic_write_text

    rows = summarise(results)
    results["summary"] = rows
    atomic_write_json(RESULTS, results)
    datasets = sorted({row["dataset"] for row in rows})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        sub = [row for row in rows if row["dataset"] == dataset]
        labels = [f"{row['method']}\nr={row['r']}" for row in sub]
        ax.bar(range(len(sub)), [row["accuracy_mean"] for row in sub], yerr=[row["accuracy_std"] for row in sub],
               color=["C0" if row["method"] == "lora" else "C1" if row["method"] == "dora" else "C2" for row in sub],
               capsize=3)
        ax.set_xticks(range(len(sub)), labels, fontsize=7)
        low = min(row["accuracy_mean"] - row["accuracy_std"] for row in sub)
        ax.set_ylim(max(0.0, low - 0.05), None)
        ax.set_title(f"{dataset} (test accuracy, mean ± sd over seeds, ddof 1)", fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, HERE / "results" / "accuracy.png")
    plt.close(fig)

    atomic_write_text(HERE / "results" / "accuracy_table.md", accuracy_table(results))
    write_readme()


def accuracy_table(results: dict) -> str:
    """The accuracy section's table (with its set-up line) from results/accuracy.json."""
    s = results["settings"]
    table = Table(["dataset", "r", "method", "seeds", "accuracy", "macro-F1", "trainable params",
                   "wall min/run (shared CPU, not a cost measure)"],
                  [[row["dataset"], row["r"], row["method"], row["seeds"],
                    f"{row['accuracy_mean']:.4f} ± {row['accuracy_std']:.4f}",
                    f"{row['macro_f1_mean']:.4f} ± {row['macro_f1_std']:.4f}", row["trainable_parameters"],
                    f"{row['minutes_per_run']:.1f}"] for row in summarise(results)])
    header = (f"Encoder {s['encoder']}, adapters on {', '.join(s['targets'])} of the top {s['adapted_layers']} "
              f"layers, linear head on mean-pooled states; "
              f"{s['max_train']} training texts (stratified sample of the hash train split, fewer if the split is "
              f"smaller), {s['max_test']} test texts, {s['epochs']} epoch(s), batch {s['batch_size']}, "
              f"AdamW lr {s['lr']}, alpha = r, {s['max_length']} tokens, {s['threads']} CPU threads."
              " ± is the sd over seeds (ddof 1).")
    return header + "\n\n" + table.to_markdown() + "\n"


def readme_text(results_dir: Path = HERE / "results") -> str:
    """README = the hand-written prose of README.template.md with the tables made from the JSON files."""
    from benchmarks.adapters.bench_generative import generative_table
    from benchmarks.adapters.bench_speed import speed_table

    tables = {"accuracy_table": ("accuracy.json", accuracy_table), "speed_table": ("speed.json", speed_table),
              "generative_table": ("generative.json", generative_table)}
    parts = {}
    for name, (file, make) in tables.items():
        path = Path(results_dir) / file
        parts[name] = make(json.loads(path.read_text())) if path.is_file() else "_not run yet_\n"
    return (HERE / "README.template.md").read_text().format(**parts)


def write_readme() -> None:
    write_readme_parts(HERE / "README.md", [readme_text()])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["debian-sections", "stdlib-docs"])
    parser.add_argument("--ranks", nargs="+", type=int, default=[8, 16])
    parser.add_argument("--methods", nargs="+", default=["lora", "dora", "bora", "bora:in_first"])
    parser.add_argument("--in-first-ranks", nargs="+", type=int, default=[8],
                        help="ranks at which the in_first order is also run")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--max-train", type=int, default=384)
    parser.add_argument("--max-test", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--adapted-layers", type=int, default=1,
                        help="adapt the top k encoder layers (lower-layer states computed once per text)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--encoder", default="all-minilm-l6-v2")
    parser.add_argument("--time-budget-min", type=float, default=0,
                        help="stop starting new runs after this many minutes (0: no limit)")
    parser.add_argument("--report-only", action="store_true", help="only regenerate figure/table from the JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    settings = {k: v for k, v in vars(args).items() if k not in ("report_only", "time_budget_min")}
    try:
        store = Store(RESULTS, settings={**settings, "targets": list(TrainSettings().targets)})
    except UserError as error:
        print(error, file=sys.stderr)
        return 2
    if not args.report_only:
        encoder, tokenizer = load_encoder(args.encoder)
        splits, inputs = {}, {}
        started = time.perf_counter()
        for dataset, r, method, seed in plan(args):
            key = run_key(dataset, r, method, seed)
            if store.done(key):
                continue
            if args.time_budget_min and time.perf_counter() - started > 60 * args.time_budget_min:
                print("time budget spent; rerun to resume", flush=True)
                break
            if dataset not in splits:
                train, test = load_labeled_text(dataset).train_test_split(0.2)
                splits[dataset] = (train.sample(args.max_train, seed=0), test.sample(args.max_test, seed=0))
            train, test = splits[dataset]
            adapter, _, order = method.partition(":")
            settings_run = TrainSettings(adapter=adapter, r=r, order=order or "out_first", epochs=args.epochs,
                                         batch_size=args.batch_size, lr=args.lr, max_length=args.max_length,
                                         seed=seed, adapted_layers=args.adapted_layers)
            if dataset not in inputs:  # the frozen lower layers' states, shared by all runs on this dataset
                inputs[dataset] = tuple(make_inputs(encoder, tokenizer, part.texts, settings_run, f"encoding {dataset}")
                                        for part in (train, test))
            start = time.perf_counter()
            _, metrics = train_classifier(copy.deepcopy(encoder), tokenizer, train, test, settings_run,
                                          description=key, inputs=inputs[dataset])
            metrics.update(dataset=dataset, r=r, method=method, seed=seed, seconds=time.perf_counter() - start)
            store.put(key, metrics)
            print(f"{key}: accuracy {metrics['accuracy']:.4f} macro-F1 {metrics['macro_f1']:.4f} "
                  f"({metrics['seconds']:.0f} s)", flush=True)
    write_outputs(store.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
