"""PoFT vs SFT on noisy verifiable SFT data, plus PoFT's step cost and scoring throughput. One command:

    .venv/bin/python -m benchmarks.align.poft.run_poft_study            # small, CPU-sized defaults
    .venv/bin/python -m benchmarks.align.poft.run_poft_study --n-train 400 --n-test 200 --epochs 3   # larger
    .venv/bin/python -m benchmarks.align.poft.run_poft_study --cost-only --cost-steps 24   # step cost alone
    .venv/bin/python -m benchmarks.align.poft.run_poft_study --followup    # SFT / PoFT, then DPO / EPA
    .venv/bin/python -m benchmarks.align.poft.run_poft_study --followup --methods poft --n-val 24 \
        --stages epa epa+nll_weight=1 epa+dpop_lambda=50 --followup-name poft_guards   # guards, chosen on validation

Writes results/poft_study.json (with --cost-only results/poft_cost.json, with --followup results/poft_followup.json
and poft_followup.png), results/poft_accuracy.png and README.md (tables generated from the JSON files).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks._harness import LOAD_KEY, load_average, machine_info
from tunelab.align.poft.followup import FollowupSettings
from tunelab.align.poft.study import StudySettings, plot, run_study, seed_sd, step_time_ratio, table_rows
from tunelab.align.poft.tasks import TASKS, corrupt, make_problems
from tunelab.io import atomic_savefig, atomic_write_json, atomic_write_text
from tunelab.report import Table

HERE = Path(__file__).parent


def _cell(value: dict, digits: int = 3) -> str:
    """mean ± sd (ddof 1, tunelab.stats), the sd recomputed from the stored per-seed values where there are any."""
    if len(value.get("values", ())) == 1:  # one seed: no spread to show
        return f"{value['mean']:.{digits}f}"
    return f"{value['mean']:.{digits}f} ± {seed_sd(value):.{digits}f}"


def machine_text(machine: dict) -> str:
    """'2 CPU threads, torch 2.13.0+cpu[, GPU name]' from the machine info."""
    return f"{machine['torch_threads']} CPU threads, torch {machine['torch']}" + (
        f", {machine['gpu']}" if machine.get("gpu") else "")


def guards_section(follow: dict, name: str) -> list[str]:
    """Per second stage: test and validation accuracy and the chosen response's log-prob; the stage chosen on
    validation marked."""
    rows = []
    for first, by in follow["accuracy"].items():
        chosen = (follow.get("chosen_on_validation") or {}).get(first)
        for stage, cell in by.items():
            label = "alone" if stage == "none" else f"then {stage}" + (" (chosen on validation)" if stage == chosen else "")
            rows.append([first.upper(), label, _cell(cell), _cell(follow["val_accuracy"][first][stage]),
                         _cell(follow["chosen_logp"][first][stage], 2)])
    f = follow["followup"]
    return [f"## Displacement guards: PoFT, then EPA with guards (`results/{name}.json`)", "",
            f"As the section above, with {follow['validation_problems']} validation problems (neither training nor "
            f"test problems) on which the guarded stage is chosen (ties: the earlier in --stages); test accuracy is "
            f"never used to choose. Mean (± sd (ddof 1) where more than one seed) "
            f"over seeds {', '.join(map(str, follow['settings']['seeds']))}; chosen log-prob = mean log pi(chosen | "
            f"prompt) over the {follow['preference_pairs']} training pairs (displacement lowers it). Stage options: "
            "`tunelab.align.preference.guards` (docs/align.md). "
            f"Second stages: {f['epochs']} epochs, batch {f['batch_size']}, lr {f['learning_rate']}, beta {f['beta']}.",
            "", Table(["first stage", "second stage", "test accuracy", "validation accuracy", "chosen log-prob"],
                      rows).to_markdown(), "", f"![guards](results/{name}.png)", ""]


def followup_section(follow: dict) -> list[str]:
    f, stages = follow["followup"], list(next(iter(follow["accuracy"].values())))
    table = Table(["first stage", *["alone" if st == "none" else f"then {st.upper()}" for st in stages]],
                  [[first.upper(), *[_cell(by[st]) for st in stages]] for first, by in follow["accuracy"].items()])
    return ["## PoFT, then DPO or EPA", "",
            f"First stage on {f['noise']:.0%} corrupted SFT data (as above); second stage a fresh LoRA (r={f['lora_r']}) "
            f"on the merged first-stage model, trained on {follow['preference_pairs']} verified pairs (clean working "
            f"over the corrupted one, same training prompts) with the first-stage model as reference; beta "
            f"{f['beta']}, EPA with {f['num_weak']} weak negatives, {f['epochs']} epochs, batch {f['batch_size']}, "
            f"lr {f['learning_rate']}. Held-out accuracy, mean ± sd (ddof 1) over seeds "
            f"{', '.join(map(str, follow['settings']['seeds']))}.", "", table.to_markdown(), "",
            "![followup](results/poft_followup.png)", ""]


def readme(results: dict, cost: dict | None, follow: dict | None = None, guards: dict | None = None) -> str:
    s = results["settings"]
    accuracy = Table(["corrupted responses", *[m.upper() for m in s["methods"]]], table_rows(results))
    scoring = results["scoring"]
    speed = Table(["aligned model", "scoring throughput (examples/s)", "AUC clean vs corrupted (own s)"],
                  [[name, scoring["examples_per_second"][name], scoring["auc_clean_vs_corrupted"][name]]
                   for name in s["aligned"]])
    lines = [
        "# PoFT vs SFT on noisy SFT data",
        "",
        "Generated by `run_poft_study.py` from `results/poft_study.json`; do not edit by hand.",
        "",
        f"Target `{s['target']}` + LoRA (r={s['lora_r']}), aligned models {', '.join(f'`{a}`' for a in s['aligned'])}; "
        f"{s['n_train']} generated `{s.get('task', 'mixed')}` training problems, {s['n_test']} held-out; "
        f"{s['epochs']} epochs, batch {s['batch_size']}, lr {s['learning_rate']}, beta {s['beta']}, gamma {s['gamma']}; "
        f"seeds {', '.join(map(str, s['seeds']))}. Held-out accuracy = exact match of the greedy answer's "
        f"number (after the last '=' if any). Untrained target: {results['untrained_accuracy']:.3f}. Wall time {results['wall_seconds']:.0f} s "
        f"on {machine_text(results['machine'])}.",
        "",
        "## Held-out accuracy (mean ± sd (ddof 1) over seeds)",
        "",
        accuracy.to_markdown(),
        "",
        "![accuracy](results/poft_accuracy.png)",
        "",
        "## Reference scores",
        "",
        f"Mean s_ref of clean responses {scoring['s_ref_mean_clean']:.3f}, of corrupted ones "
        f"{scoring['s_ref_mean_corrupted']:.3f} ({scoring['distinct_examples']} distinct examples scored).",
        "",
        speed.to_markdown(),
        "",
    ]
    if cost:
        rounds = cost.get("per_round_ratio")
        lines += ["## Cost of a PoFT step", "",
                  Table(["median SFT step (s)", "median PoFT step (s)", "PoFT / SFT (medians)",
                         "PoFT / SFT per round: median [IQR]", "steps timed", "batch"],
                        [[cost["median_sft_step_s"], cost["median_poft_step_s"], cost["poft_over_sft"],
                          f"{rounds['median']:.3f} [{rounds['q1']:.3f}, {rounds['q3']:.3f}]" if rounds else "-",
                          cost["steps_timed"], cost["batch_size"]]]).to_markdown(),
                  "", f"Forward + backward of `{cost.get('target', s['target'])}` + LoRA on the same batch, SFT and "
                  "PoFT interleaved in one process (who goes first alternates), scores precomputed, after one warm-up "
                  f"step each; {machine_text(cost.get('machine', results['machine']))}"
                  f"{', load average %.1f' % cost[LOAD_KEY][-1] if LOAD_KEY in cost else ''}.", ""]
    if follow:
        lines += followup_section(follow)
    if guards and "val_accuracy" in guards:
        lines += guards_section(guards, GUARDS_NAME)
    return "\n".join(lines)


GUARDS_NAME = "poft_guards"


def stored_followup(results_dir: Path, name: str = "poft_followup") -> dict | None:
    path = results_dir / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def write_readme(out: Path, results_dir: Path, study: dict, cost: dict | None) -> None:
    atomic_write_text(out / "README.md", readme(study, cost, stored_followup(results_dir),
                                                stored_followup(results_dir, GUARDS_NAME)))


def readme_text(results_dir: Path) -> str:
    """README.md from the committed JSON files in `results_dir` (the study's own cost run as `write_readme`)."""
    study = json.loads((results_dir / "poft_study.json").read_text())
    return readme(study, latest_cost(study, results_dir), stored_followup(results_dir),
                  stored_followup(results_dir, GUARDS_NAME))


def latest_cost(results: dict, results_dir: Path) -> dict | None:
    """The dedicated cost run (results/poft_cost.json) when there is one, else the study's own timing."""
    path = results_dir / "poft_cost.json"
    return json.loads(path.read_text()) if path.is_file() else results.get("cost")


def cost_only(settings: StudySettings, cache_dir: Path | None, results_dir: Path, out: Path, machine: dict) -> int:
    problems = make_problems(settings.n_train, settings.data_seed, task=settings.task)
    rows = corrupt(problems, settings.noise[-1], settings.seeds[0])
    load_start = load_average()
    with tempfile.TemporaryDirectory() as fresh:
        cost = step_time_ratio(settings, rows, cache_dir or fresh, settings.cost_steps)
    cost.update(target=settings.target, machine=machine, load_average_1min=[load_start, load_average()])
    atomic_write_json(results_dir / "poft_cost.json", cost)
    study = results_dir / "poft_study.json"
    if study.is_file():
        write_readme(out, results_dir, json.loads(study.read_text()), cost)
    print(json.dumps(cost, indent=1))
    return 0


def followup(settings: StudySettings, follow, cache_dir: Path | None, results_dir: Path, out: Path,
             name: str = "poft_followup") -> int:
    from tunelab.align.poft.followup import plot as plot_followup, run_followups

    cache = cache_dir or Path.home() / ".cache" / "tunelab" / "poft-bench"  # scores reused across restarts
    partial = results_dir / f"{name}.partial.jsonl"
    start = time.perf_counter()
    results = run_followups(settings, follow, cache, log=lambda m: print(m, file=sys.stderr, flush=True),
                            runs_file=partial)
    results["wall_seconds"] = time.perf_counter() - start
    atomic_write_json(results_dir / f"{name}.json", results)
    atomic_savefig(plot_followup(results), results_dir / f"{name}.png")
    partial.unlink(missing_ok=True)
    study = results_dir / "poft_study.json"
    if study.is_file():
        study_results = json.loads(study.read_text())
        write_readme(out, results_dir, study_results, latest_cost(study_results, results_dir))
    print(json.dumps({f: {st: round(v["mean"], 3) for st, v in by.items()} for f, by in results["accuracy"].items()}))
    if "chosen_on_validation" in results:
        print(json.dumps({"chosen_on_validation": results["chosen_on_validation"]}))
    return 0


def main(argv=None) -> int:
    defaults = StudySettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default=defaults.target)
    parser.add_argument("--task", default=defaults.task, choices=sorted(TASKS))
    parser.add_argument("--aligned", nargs="+", default=list(defaults.aligned))
    parser.add_argument("--n-train", type=int, default=defaults.n_train)
    parser.add_argument("--n-test", type=int, default=defaults.n_test)
    parser.add_argument("--noise", type=float, nargs="+", default=list(defaults.noise))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(defaults.seeds))
    parser.add_argument("--epochs", type=float, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--lora-r", type=int, default=defaults.lora_r)
    parser.add_argument("--cost-steps", type=int, default=defaults.cost_steps)
    parser.add_argument("--cost-only", action="store_true",
                        help="Only time PoFT vs SFT steps; writes results/poft_cost.json and regenerates README.md.")
    parser.add_argument("--followup", action="store_true",
                        help="Only the SFT / PoFT -> DPO / EPA runs; writes results/poft_followup.json.")
    parser.add_argument("--methods", nargs="+", default=list(defaults.methods), help="first stages (sft, poft)")
    follow_defaults = FollowupSettings()
    parser.add_argument("--stages", nargs="+", default=list(follow_defaults.methods),
                        help="--followup second stages: dpo, epa, or with guards, e.g. epa+nll_weight=1+dpop_lambda=50")
    parser.add_argument("--n-val", type=int, default=follow_defaults.n_val,
                        help="--followup validation problems on which the guarded stage is chosen (0: none)")
    parser.add_argument("--followup-epochs", type=float, default=follow_defaults.epochs)
    parser.add_argument("--followup-name", default="poft_followup",
                        help=f"results/NAME.json for --followup ({GUARDS_NAME} gets its own README section)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="Score cache to reuse (default: a fresh one, so throughput is measured).")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = StudySettings(target=args.target, task=args.task, aligned=tuple(args.aligned), n_train=args.n_train, n_test=args.n_test,
                             noise=tuple(args.noise), seeds=tuple(args.seeds), methods=tuple(args.methods),
                             epochs=args.epochs,
                             batch_size=args.batch_size, learning_rate=args.learning_rate, lora_r=args.lora_r,
                             cost_steps=args.cost_steps)
    results_dir = args.out / "results"
    machine = {**machine_info(), **({"gpu": torch.cuda.get_device_name()} if torch.cuda.is_available() else {})}
    if args.cost_only:
        return cost_only(settings, args.cache_dir, results_dir, args.out, machine)
    if args.followup:
        follow = FollowupSettings(methods=tuple(args.stages), n_val=args.n_val, epochs=args.followup_epochs)
        return followup(settings, follow, args.cache_dir, results_dir, args.out, args.followup_name)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as fresh:
        results = run_study(settings, args.cache_dir or fresh, log=lambda m: print(m, file=sys.stderr, flush=True),
                            runs_file=results_dir / "poft_runs.partial.jsonl")
    results["wall_seconds"] = time.perf_counter() - start
    results["machine"] = machine
    atomic_write_json(results_dir / "poft_study.json", results)
    atomic_savefig(plot(results), results_dir / "poft_accuracy.png")
    write_readme(args.out, results_dir, results, latest_cost(results, results_dir))
    (results_dir / "poft_runs.partial.jsonl").unlink(missing_ok=True)
    print(json.dumps({"accuracy": {m: {n: round(v["mean"], 3) for n, v in by.items()}
                                   for m, by in results["accuracy"].items()}, "cost": results["cost"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
