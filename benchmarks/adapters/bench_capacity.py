"""Adapter accuracy where the adapter's capacity matters: every linear layer of MiniLM, full fine-tuning as the ceiling.

    .venv/bin/python -m benchmarks.adapters.bench_capacity [--workers 2]

The room in which LoRA, DoRA and BoRA can differ is the gap between full fine-tuning and a low-rank adapter; the
top-layer benchmark (bench_accuracy.py) has none. Here every linear layer of the 6-layer encoder (query, key, value
and the three dense projections of each layer) is adapted on a 51-class task with thousands of training texts.

Design, in order:
1. Learning rate per method, chosen on a validation split (texts never used for training or testing, one tuning
   data seed that is not an evaluation seed), at r = 8; full fine-tuning has its own grid for the encoder, with the
   new head at a fixed larger lr (at the encoder's lr the head learns too slowly: a pilot on the same validation
   split gave 0.693 against 0.714 with the head at 2e-3). When a method's best lr is the smallest or largest it
   tried, the grid is extended by halving or doubling beyond that edge (up to --edge-extensions times per side), so
   that no method is compared at a learning rate its grid cut off.
2. Evaluation: for every data seed, a fresh stratified training sample and a fresh test sample (the test part of a
   hash split that no training or validation text comes from); all methods see the same sample and start from the
   same random state, so differences are paired by seed.
3. Reported: mean and sd (ddof = 1) over seeds, the full-fine-tuning vs r = 4 LoRA gap first, and for BoRA and
   LoRA a paired t-test against DoRA at each rank.

Each run is one JSON file under capacity/runs/ (written atomically), so several workers share the plan and a rerun
resumes; the tables, figure and README are generated from those files (`--report-only` regenerates them).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

from tunelab.stats import paired_difference, sample_sd

HERE = Path(__file__).parent
DEFAULT_OUT = HERE / "capacity"
FULL = "full"
ADAPTERS = ("lora", "dora", "bora")


LEXICON = "keyword-lexicon"
LEXICON_ONLY = ("keywords", "classes")  # settings that exist only for the lexicon task


def settings_from(args) -> dict:
    skip = {"report_only", "workers", "worker", "out"} | (set() if args.dataset == LEXICON else set(LEXICON_ONLY))
    return {k: v for k, v in vars(args).items() if k not in skip}


def run_key(stage: str, method: str, r: int, lr: float, seed: int) -> str:
    rank = "all" if method == FULL else f"r{r}"
    return f"{stage}-{method}-{rank}-lr{lr:g}-seed{seed}"


def base_grid(s: dict, method: str) -> list[float]:
    return s["full_lrs"] if method == FULL else s["adapter_lrs"]


def extended_grid(grid: list[float], scores: dict[float, float], extensions: int) -> list[float]:
    """The lrs to try: `grid`, plus a halving (doubling) beyond the smallest (largest) lr tried whenever the best
    score so far sits on that edge, at most `extensions` times per side. `scores`: lr -> validation accuracy of the
    lrs tried so far; the grid is complete when every returned lr is in `scores`."""
    lrs = sorted(grid)
    for _ in range(extensions):
        if not all(lr in scores for lr in lrs):
            break
        best = min(lrs, key=lambda lr: (-scores[lr], lr))
        if best == lrs[0] and len(lrs) > 1:
            lrs.insert(0, lrs[0] / 2)
        elif best == lrs[-1] and len(lrs) > 1:
            lrs.append(lrs[-1] * 2)
        else:
            break
    return lrs


def tuning_scores(runs: dict[str, dict], method: str) -> dict[float, float]:
    return {x["lr"]: x["accuracy"] for x in runs.values() if x["stage"] == "tune" and x["method"] == method}


def method_grid(runs: dict[str, dict], s: dict, method: str) -> list[float]:
    # folders written before grids were extended have no edge_extensions setting: their grid stays as it was
    return extended_grid(base_grid(s, method), tuning_scores(runs, method), s.get("edge_extensions", 0))


def tuning_plan(s: dict, runs: dict[str, dict]) -> list[dict]:
    plan = [dict(stage="tune", method=FULL, r=0, lr=lr, seed=s["tuning_seed"]) for lr in method_grid(runs, s, FULL)]
    for method in ADAPTERS:
        plan += [dict(stage="tune", method=method, r=s["tuning_rank"], lr=lr, seed=s["tuning_seed"])
                 for lr in method_grid(runs, s, method)]
    return plan


def evaluation_plan(s: dict, chosen_lr: dict[str, float]) -> list[dict]:
    """By priority: every seed at the first rank (with full fine-tuning), then the next ranks."""
    runs = []
    for i, r in enumerate(s["ranks"]):
        for seed in s["seeds"]:
            if i == 0:
                runs.append(dict(stage="eval", method=FULL, r=0, lr=chosen_lr[FULL], seed=seed))
            runs += [dict(stage="eval", method=m, r=r, lr=chosen_lr[m], seed=seed) for m in ADAPTERS]
    return runs


def load_runs(out: Path) -> dict[str, dict]:
    runs = out / "runs"
    return {p.stem: json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))} if runs.exists() else {}


def choose_lr(runs: dict[str, dict], s: dict) -> dict[str, float] | None:
    """Best validation accuracy per method (ties: the smaller lr); None until every method's grid is complete."""
    chosen = {}
    for method in (FULL, *ADAPTERS):
        scores = tuning_scores(runs, method)
        grid = method_grid(runs, s, method)
        if not all(lr in scores for lr in grid):
            return None
        chosen[method] = min(grid, key=lambda lr: (-scores[lr], lr))
    return chosen


# --- data -------------------------------------------------------------------------------------------------------

def splits(s: dict):
    """(training pool, validation, test part): validation drawn once from the hash-train part and removed from the
    pool every training sample is drawn from, so no seed ever trains on a validation text. The lexicon task has no
    shared pool: each data seed invents its own (run_data)."""
    from tunelab.data import load_labeled_text

    if s["dataset"] == LEXICON:
        return None

    data = load_labeled_text(s["dataset"])
    train_part, test_part = data.train_test_split(0.2)
    order = np.random.default_rng(12345).permutation(len(train_part))
    validation = train_part.subset(np.sort(order[:s["n_validation"]]))
    pool = train_part.subset(np.sort(order[s["n_validation"]:]))
    return pool, validation, test_part


def run_data(run: dict, s: dict, data):
    """(training texts, held-out texts) of one run. Lexicon: the seed's own keywords; the tuning seed's held-out
    sentences are the validation split, an evaluation seed's are its test split (no lexicon is shared)."""
    if s["dataset"] == LEXICON:
        from tunelab.data.lexicon import keyword_lexicon

        return keyword_lexicon(s["keywords"], s["classes"], seed=run["seed"])
    pool, validation, test_part = data
    train = pool.sample(s["n_train"], seed=run["seed"])
    return train, validation if run["stage"] == "tune" else test_part.sample(s["n_test"], seed=run["seed"])


def execute(run: dict, s: dict, data, model) -> dict:
    from tunelab.adapters.classify import TrainSettings, make_inputs, train_classifier

    encoder, tokenizer = model
    train, held_out = run_data(run, s, data)
    settings = TrainSettings(adapter=run["method"], r=max(run["r"], 1), epochs=s["epochs"],
                             batch_size=s["batch_size"], lr=run["lr"], max_length=s["max_length"],
                             head_lr=s["full_head_lr"] if run["method"] == FULL else None,
                             seed=run["seed"], adapted_layers=None)
    inputs = tuple(make_inputs(encoder, tokenizer, part.texts, settings, "tokenising") for part in (train, held_out))
    start = time.perf_counter()
    _, metrics = train_classifier(copy.deepcopy(encoder), tokenizer, train, held_out, settings,
                                  description=run_key(**run), inputs=inputs)
    return {**run, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "final_train_loss": metrics["final_train_loss"], "trainable_parameters": metrics["trainable_parameters"],
            "train_size": metrics["train_size"], "held_out_size": metrics["test_size"],
            "seconds": time.perf_counter() - start}


def work(s: dict, out: Path, worker: int, workers: int) -> None:
    """Run this worker's share of the plan (every workers-th run not yet done): tuning until every method's grid is
    complete, then evaluation at the chosen lrs."""
    import torch

    from tunelab.io import atomic_write_json
    from tunelab.models import load_encoder

    torch.set_num_threads(s["threads"])
    (out / "runs").mkdir(parents=True, exist_ok=True)
    data, model = splits(s), load_encoder(s["encoder"])
    while True:
        runs = load_runs(out)
        chosen = choose_lr(runs, s)
        plan = tuning_plan(s, runs) if chosen is None else evaluation_plan(s, chosen)
        pending = [run for run in plan if run_key(**run) not in runs]
        mine = [run for i, run in enumerate(plan) if i % workers == worker and run_key(**run) not in runs]
        if not pending:
            break
        if not mine:  # the other workers hold the rest of the tuning (which may extend a grid)
            time.sleep(20)
            continue
        run = mine[0]
        record = execute(run, s, data, model)
        atomic_write_json(out / "runs" / f"{run_key(**run)}.json", record)
        print(f"{run_key(**run)}: accuracy {record['accuracy']:.4f} ({record['seconds']:.0f} s)", flush=True)


# --- statistics and report --------------------------------------------------------------------------------------

def summarise(runs: dict[str, dict], s: dict) -> dict:
    chosen_lr = choose_lr(runs, s)
    chosen = chosen_lr or {}
    # evaluation runs at an lr that a later grid extension replaced stay in runs/ but do not count
    evals = [x for x in runs.values() if x["stage"] == "eval" and chosen.get(x["method"]) == x["lr"]]
    by = {}
    for x in evals:
        by.setdefault((x["method"], x["r"]), {})[x["seed"]] = x["accuracy"]
    rows = []
    for (method, r), acc in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0] != FULL, kv[0][0])):
        values = list(acc.values())
        rows.append({"method": method, "r": r, "seeds": len(values), "accuracy_mean": float(np.mean(values)),
                     "accuracy_sd": sample_sd(values) if len(values) > 1 else None,
                     "trainable_parameters": next(x["trainable_parameters"] for x in evals
                                                  if x["method"] == method and x["r"] == r)})
    comparisons = []
    first = s["ranks"][0]
    if (FULL, 0) in by and ("lora", first) in by:
        comparisons.append({"a": FULL, "b": f"lora r={first}", "r": first, **(paired_difference(by[(FULL, 0)], by[("lora", first)]) or {})})
    for r in s["ranks"]:
        for method in ("bora", "lora"):
            if (method, r) in by and ("dora", r) in by:
                result = paired_difference(by[(method, r)], by[("dora", r)])
                if result:
                    comparisons.append({"a": f"{method} r={r}", "b": f"dora r={r}", "r": r, **result})
    tuning = [{"method": x["method"], "r": x["r"], "lr": x["lr"], "validation_accuracy": x["accuracy"]}
              for x in sorted(runs.values(), key=lambda x: (x["method"], x["lr"])) if x["stage"] == "tune"]
    return {"rows": rows, "comparisons": [c for c in comparisons if "mean" in c], "tuning": tuning,
            "chosen_lr": chosen_lr, "superseded_eval_runs": sum(
                x["stage"] == "eval" and chosen.get(x["method"]) != x["lr"] for x in runs.values())}


def command_flags(s: dict) -> str:
    """The flags that set this folder's task apart from the defaults (the rest are in settings.json)."""
    extensions = "" if s.get("edge_extensions", 0) else "--edge-extensions 0 "
    if s["dataset"] != LEXICON:
        return extensions
    return extensions + (f"--dataset {LEXICON} --keywords {s['keywords']} --classes {s['classes']} --epochs {s['epochs']} "
            f"--max-length {s['max_length']} --out benchmarks/adapters/capacity-lexicon ")


def task_line(s: dict) -> str:
    if s["dataset"] == LEXICON:
        return (f"{LEXICON} (tunelab.data.lexicon): each data seed invents {s['keywords']} keywords in "
                f"{s['classes']} random classes; {3 * s['keywords']} training sentences (3 per keyword, 8 training "
                f"frames), {s['keywords']} test sentences (1 per keyword, 4 other frames); the tuning seed's "
                "held-out sentences are the validation split")
    return (f"{s['dataset']} (51 classes), {s['n_train']} training texts per data seed (stratified sample of the "
            f"pool), {s['n_test']} test texts per seed (the hash test split), {s['n_validation']} validation texts "
            "for tuning (never trained on)")


def readme(summary: dict, s: dict, minutes: float) -> str:
    from tunelab.report import Table

    def pm(mean, sd):
        return f"{mean:.4f} ± {sd:.4f}" if sd is not None else f"{mean:.4f}"

    gap = next((c for c in summary["comparisons"] if c["a"] == FULL), None)
    rows = Table(["method", "r", "seeds", "test accuracy (mean ± sd, ddof 1)", "trainable params"],
                 [[x["method"], x["r"] or "all", x["seeds"], pm(x["accuracy_mean"], x["accuracy_sd"]),
                   x["trainable_parameters"]] for x in summary["rows"]])
    tests = Table(["comparison", "seeds", "mean difference", "sd (ddof 1)", "95 % t-interval", "paired t p"],
                  [[f"{c['a']} − {c['b']}", c["n"], f"{c['mean']:+.4f}", f"{c['sd']:.4f}",
                    f"[{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}]", f"{c['p']:.3f}"] for c in summary["comparisons"]])
    chosen = summary["chosen_lr"] or {}
    tuning = Table(["method", "r", "lr", "validation accuracy", "chosen"],
                   [[t["method"], t["r"] or "all", f"{t['lr']:g}", f"{t['validation_accuracy']:.4f}",
                     "yes" if chosen.get(t["method"]) == t["lr"] else ""] for t in summary["tuning"]])
    gap_line = "The full fine-tuning vs LoRA gap is not measured yet."
    if gap:
        resolved = gap["ci"][0] > 0
        gap_line = (f"Full fine-tuning − LoRA r={gap['r']}: {gap['mean']:+.4f} accuracy, 95 % t-interval "
                    f"[{gap['ci'][0]:+.4f}, {gap['ci'][1]:+.4f}] over {gap['n']} paired seeds. This gap is the room "
                    "in which the adapters can differ; " + (
                        "it is resolved here." if resolved else
                        "here it is not resolved (the interval holds 0), so this regime cannot show an adapter "
                        "beating another by more than the interval's width."))
    tried = {m: sorted({t["lr"] for t in summary["tuning"] if t["method"] == m}) for m in chosen}
    edges = [f"{m} ({lr:g}, the {'smallest' if lr == tried[m][0] else 'largest'} tried)"
             for m, lr in chosen.items() if lr in (tried[m][0], tried[m][-1])]
    edge_line = ("Chosen at an edge of its grid, so a value beyond it might do better: " + ", ".join(edges) + "."
                 if edges else "Every chosen learning rate lies inside its grid.")
    n_eval = len(s["seeds"]) * (1 + len(ADAPTERS) * len(s["ranks"]))
    done = sum(x["seeds"] for x in summary["rows"])
    return f"""# Adapters where capacity matters: every linear layer of MiniLM

Generated by `benchmarks/adapters/bench_capacity.py` from `runs/*.json` (summary in `capacity.json`); do not edit by
hand.

    .venv/bin/python -m benchmarks.adapters.bench_capacity {command_flags(s)}--workers 2

Encoder {s['encoder']}, adapters (alpha = r, no dropout) on every query, key, value and dense projection of all 6
layers, linear head on mean-pooled states (trained by every method: at the adapter's lr, and at
{s['full_head_lr']:g} under full fine-tuning); {task_line(s)}, {s['epochs']} epoch(s), batch
{s['batch_size']}, constant AdamW lr, {s['max_length']} tokens. Data seeds {', '.join(map(str, s['seeds']))}
({'lexicon, sentences' if s['dataset'] == LEXICON else 'training sample, test sample'} and initialisation); lr tuned on validation with data seed {s['tuning_seed']}.
Runs done: {done} of {n_eval} evaluation runs, {len(summary['tuning'])} tuning runs; {minutes:.0f} min of summed run time
on a shared 2-core CPU ({s['threads']} thread per worker).

{gap_line}

## Test accuracy

{rows.to_markdown()}

![capacity](capacity.png)

## Paired differences (same data seed)

{tests.to_markdown()}

## Learning rate, chosen on validation (r = {s['tuning_rank']} for the adapters)

{tuning.to_markdown()}

{edge_line}{extension_line(summary, s)}

What this can show: with {len(s['seeds'])} data seeds, a paired difference of about two sd of the per-seed
differences divided by √{len(s['seeds'])}; differences smaller than the interval are "not resolved", not "equal".
The learning rate is tuned once per method at one rank, not per rank.
"""


def extension_line(summary: dict, s: dict) -> str:
    if not s.get("edge_extensions"):
        return ""
    superseded = summary.get("superseded_eval_runs", 0)
    return (f" A grid whose best lr sat on an edge was extended beyond it (halving or doubling, up to "
            f"{s['edge_extensions']} times per side)" + (
                f"; {superseded} evaluation runs at an lr that an extension replaced are kept in runs/ and not counted."
                if superseded else "."))


def readme_text(out: Path) -> str:
    """The README from the committed runs and settings alone (tests regenerate it to check the committed file)."""
    s = json.loads((out / "settings.json").read_text())
    runs = load_runs(out)
    return readme(summarise(runs, s), s, sum(x["seconds"] for x in runs.values()) / 60)


def write_outputs(s: dict, out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunelab.io import atomic_savefig, atomic_write_json, atomic_write_text

    runs = load_runs(out)
    summary = summarise(runs, s)
    minutes = sum(x["seconds"] for x in runs.values()) / 60
    from benchmarks._harness import LOAD_KEY, MACHINE_KEY, load_average, machine_info

    atomic_write_json(out / "capacity.json", {"settings": s, "summary": summary, "run_minutes": minutes,
                                              MACHINE_KEY: machine_info(["torch", "transformers", "peft"]),
                                              LOAD_KEY: [load_average()]})
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    full = next((x for x in summary["rows"] if x["method"] == FULL), None)
    if full:
        ax.axhline(full["accuracy_mean"], color="k", lw=1, ls="--", label="full fine-tuning")
    for i, method in enumerate(ADAPTERS):
        pts = [x for x in summary["rows"] if x["method"] == method]
        ax.errorbar([x["r"] * (1 + 0.04 * (i - 1)) for x in pts], [x["accuracy_mean"] for x in pts],
                    yerr=[x["accuracy_sd"] or 0 for x in pts], marker="o", capsize=3, label=method)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("rank r")
    ax.set_ylabel("test accuracy (mean ± sd over data seeds)")
    ax.set_title(f"{s['dataset']}: every linear layer of {s['encoder']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, out / "capacity.png")
    plt.close(fig)
    atomic_write_text(out / "README.md", readme_text(out))
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="debian-sections", help=f"a labelled corpus, or {LEXICON}")
    parser.add_argument("--keywords", type=int, default=1000, help=f"{LEXICON}: invented keywords per data seed")
    parser.add_argument("--classes", type=int, default=20, help=f"{LEXICON}: classes the keywords fall into")
    parser.add_argument("--encoder", default="all-minilm-l6-v2")
    parser.add_argument("--ranks", nargs="+", type=int, default=[4, 8, 16])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--tuning-seed", type=int, default=100)
    parser.add_argument("--tuning-rank", type=int, default=8)
    parser.add_argument("--adapter-lrs", nargs="+", type=float, default=[1e-3, 2e-3, 4e-3])
    parser.add_argument("--full-lrs", nargs="+", type=float, default=[5e-5, 1e-4, 2e-4])
    parser.add_argument("--edge-extensions", type=int, default=2,
                        help="times a grid may be extended beyond an edge its best lr sits on, per side")
    parser.add_argument("--full-head-lr", type=float, default=2e-3,
                        help="lr of the new head under full fine-tuning (the adapters' head trains at their lr)")
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--n-validation", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the plan")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the runs, tables and figure")
    parser.add_argument("--report-only", action="store_true", help="only regenerate the tables and figure")
    args = parser.parse_args(argv)
    s = settings_from(args)
    out = args.out
    stored = out / "settings.json"
    # folders from before grid extensions existed ran with none
    if stored.exists() and {"edge_extensions": 0, **json.loads(stored.read_text())} != s:
        print(f"settings differ from those of the runs in {out}; move that folder away first", file=sys.stderr)
        return 2
    if not args.report_only:
        from tunelab.io import atomic_write_json

        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(stored, s)
        if args.worker is not None:
            work(s, out, args.worker, args.workers)
            return 0
        import subprocess

        workers = [subprocess.Popen([sys.executable, "-m", "benchmarks.adapters.bench_capacity", *(argv or sys.argv[1:]),
                                     "--worker", str(i)])
                   for i in range(args.workers)]
        if any(w.wait() for w in workers):
            return 1
    write_outputs(s, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
