"""Training-step time and peak memory of LoRA / DoRA (PEFT's own) / BoRA on SmolLM2-135M, and merged inference.

    .venv/bin/python -m benchmarks.adapters.bench_speed

One process, one batch, the methods' steps interleaved; ratios from this one run. Writes results/speed.json,
results/speed.png and the table in README.md (generated from the JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from benchmarks.adapters.bench_accuracy import write_readme
from tunelab.adapters.bench import run_speed_study
from tunelab.io import atomic_savefig, atomic_write_json, atomic_write_text
from tunelab.report import Table

HERE = Path(__file__).parent


def write_outputs(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    atomic_write_json(HERE / "results" / "speed.json", result)
    rows = result["training"]
    names = list(rows)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    colours = [f"C{i}" for i in range(len(names))]
    time_ratio = [rows[n]["round_ratio_vs_dora"] for n in names]  # per-round ratios: load hits both alike
    axes[0].bar(names, [t["median"] for t in time_ratio], color=colours,
                yerr=[[t["median"] - t["q1"] for t in time_ratio], [t["q3"] - t["median"] for t in time_ratio]],
                capsize=4)
    axes[0].axhline(1.05, color="red", ls="--", lw=1, label="goal for BoRA: <= 1.05")
    axes[0].set_ylim(0, 1.1 * max(1.15, *[t["q3"] for t in time_ratio]))
    axes[0].legend(fontsize=7, loc="upper left")
    axes[0].set_title("training-step time / DoRA's (median, IQR over rounds)", fontsize=9)
    for ax, key, title in zip(axes[1:], ["memory_vs_dora", "flops_vs_dora"],
                              ["peak step memory / DoRA's", "matmul FLOPs / DoRA's"]):
        ax.bar(names, [rows[n][key] for n in names], color=colours)
        ax.set_title(title, fontsize=9)
    for ax in axes:
        ax.axhline(1.0, color="grey", lw=0.8)
    fig.suptitle(f"{result['model']}, r={result['r']}, batch {result['batch_size']}x{result['seq_len']} tokens, "
                 f"{result['threads']} CPU thread(s); ratios to PEFT's DoRA in the same run", fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, HERE / "results" / "speed.png")
    plt.close(fig)

    atomic_write_text(HERE / "results" / "speed_table.md", speed_table(result))
    write_readme()


def speed_table(result: dict) -> str:
    """The speed section's tables (with their set-up line) from results/speed.json."""
    rows = result["training"]

    def fmt(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"

    def spread(value) -> str:
        return "-" if value is None else f"{value['median']:.3f} [{value['q1']:.3f}, {value['q3']:.3f}]"

    steps = Table(["method", "trainable params", "median step (s)", "vs DoRA, per round: median [IQR]",
                   "vs LoRA, per round: median [IQR]", "matmul GFLOP", "vs DoRA", "aten ops", "vs DoRA",
                   "elements written (M)", "vs DoRA"],
                  [[n, row["trainable_parameters"], fmt(row["median_step_s"]), spread(row["round_ratio_vs_dora"]),
                    spread(row["round_ratio_vs_lora"]), fmt(row["matmul_gflops"], 2), fmt(row["flops_vs_dora"]),
                    row["aten_ops"], fmt(row["ops_vs_dora"]), fmt(row["elements_written_m"], 1),
                    fmt(row["elements_vs_dora"])] for n, row in rows.items()])
    memory = Table(["method", "peak step memory (MiB)", "vs DoRA", "vs LoRA", "saved activations (MiB)", "vs DoRA",
                    "vs LoRA"],
                   [[n, fmt(row["peak_step_mb"], 1), fmt(row["memory_vs_dora"]), fmt(row["memory_vs_lora"]),
                     fmt(row["saved_activation_mb"], 1), fmt(row["activations_vs_dora"]),
                     fmt(row["activations_vs_lora"])] for n, row in rows.items()])
    inf = result["inference"]
    return (f"{result['model']}, adapters on {', '.join(result['targets'])}, r={result['r']}, batch "
            f"{result['batch_size']} x {result['seq_len']} tokens, AdamW, {result['repeats']} timed steps per "
            f"method after a warm-up step, round-robin (the first method rotating), {result['threads']} CPU "
            f"threads. \"per round\" ratios divide the two methods' steps of the same round; the bracket is "
            f"the interquartile range over rounds. FLOPs, ops and elements are counted on one forward+backward "
            f"per method and do not depend on load.\n\n" + steps.to_markdown() + "\n\n" + memory.to_markdown() + "\n\n"
            f"Merged inference (forward of the batch, {len(inf['base_s'])} interleaved repeats): merged BoRA "
            f"median {inf['median_merged_s']:.3f} s, base model {inf['median_base_s']:.3f} s, ratio "
            f"{inf['merged_vs_base']:.3f}.\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--methods", nargs="+", default=["lora", "dora", "bora", "bora:in_first"])
    parser.add_argument("--r", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1,
                        help="1 by default: on a shared CPU, threads of one op wait for each other when any is "
                             "descheduled, which adds load-dependent stalls")
    parser.add_argument("--report-only", action="store_true", help="only regenerate figure/table from the JSON")
    args = parser.parse_args(argv)
    if args.report_only:
        write_outputs(json.loads((HERE / "results" / "speed.json").read_text()))
        return 0
    torch.set_num_threads(args.threads)
    result = run_speed_study(args.model, args.methods, r=args.r, batch_size=args.batch_size, seq_len=args.seq_len,
                             repeats=args.repeats)
    write_outputs(result)
    print(open(HERE / "results" / "speed_table.md").read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
