"""Start-up cost of the `tunelab` command: `tunelab --help` and each `tunelab <sub-command> --help`, against
`python -c "import typer, rich"` (the floor any typer + rich CLI pays) measured in the same run.

Every round runs each command once, in an order rotated per round, so load changes on a shared machine hit all
commands alike; the table reports medians and the ratio to the typer + rich import. A second reference, a
default two-level typer app printing its sub-command help, shows what typer's own help rendering costs.

    .venv/bin/python benchmarks/startup/bench_startup.py            # measure, write results/ and README.md
    .venv/bin/python benchmarks/startup/bench_startup.py --readme   # README.md from results/startup.json only
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from tunelab.io import atomic_write_json, atomic_write_text
from tunelab.report import Table

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BASELINE = "import typer, rich"
TYPER_APP = "typer app: sub --help"
# the smallest app with tunelab's shape (root callback + mounted sub-app), so its help goes through the same code
_TYPER_APP_SOURCE = """
import typer
app, sub = typer.Typer(), typer.Typer()
@app.callback()
def root(): pass
@sub.command()
def verb(): pass
app.add_typer(sub, name="sub")
app(["sub", "--help"])
"""
GOAL_RATIO = 1.5


def tunelab_command() -> list[str]:
    """The installed console script next to this interpreter, else the module entry point."""
    script = Path(sys.executable).with_name("tunelab")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tunelab.cli"]


def commands(subcommands: list[str]) -> dict[str, list[str]]:
    tunelab = tunelab_command()
    found = {BASELINE: [sys.executable, "-c", BASELINE], TYPER_APP: [sys.executable, "-c", _TYPER_APP_SOURCE],
             "tunelab --help": [*tunelab, "--help"]}
    found.update({f"tunelab {name} --help": [*tunelab, name, "--help"] for name in subcommands})
    return found


def time_once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, timeout=600)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed: {result.stderr.decode()[-300:]}")
    return seconds


def measure(cmds: dict[str, list[str]], repeats: int) -> dict[str, list[float]]:
    """Seconds per command, `repeats` interleaved rounds after one unrecorded warm-up round (file cache)."""
    env = {**os.environ, "COLUMNS": "100", "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    names = list(cmds)
    for name in names:
        time_once(cmds[name], env)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(time_once(cmds[name], env))
        print(f"round {round_ + 1}/{repeats}: " + ", ".join(f"{n} {samples[n][-1]:.3f}s" for n in names[:3]),
              file=sys.stderr)
    return samples


def summarise(samples: dict[str, list[float]]) -> dict[str, dict]:
    """Median and spread of each command, and its median over the two references' medians."""
    base, floor = statistics.median(samples[BASELINE]), statistics.median(samples[TYPER_APP])
    summary = {}
    for name, values in samples.items():
        median = statistics.median(values)
        summary[name] = {"median_s": median, "min_s": min(values), "max_s": max(values),
                         "ratio_to_typer_rich": median / base, "ratio_to_typer_app": median / floor,
                         "samples_s": values}
    return summary


def machine() -> dict:
    versions = {}
    for package in ("typer", "rich", "click", "pydantic"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "packages": versions}


def table(results: dict) -> Table:
    rows = [[name, round(r["median_s"] * 1000), round(r["min_s"] * 1000), round(r["ratio_to_typer_rich"], 2),
             round(r["ratio_to_typer_app"], 2)] for name, r in results["commands"].items()]
    return Table(["command", "median ms", "min ms", f"ratio to `{BASELINE}`", f"ratio to `{TYPER_APP}`"], rows)


def readme(results: dict) -> str:
    tunelab_rows = {n: r for n, r in results["commands"].items() if n.startswith("tunelab")}
    worst = max(tunelab_rows, key=lambda n: tunelab_rows[n]["ratio_to_typer_rich"])
    floor = results["commands"][TYPER_APP]["ratio_to_typer_rich"]
    load = results["load_average_1min"]
    m = results["machine"]
    return (
        "# start-up benchmark\n\n"
        "Generated by `bench_startup.py` from `results/startup.json`; rerun the script to refresh it.\n\n"
        f"How long `tunelab --help` and each `tunelab <sub-command> --help` take, against `python -c \"{BASELINE}\"` "
        f"in the same run: {results['repeats']} interleaved rounds (order rotated each round) after a warm-up round, "
        f"medians reported. `{TYPER_APP}` is a two-level typer app with typer's defaults printing its sub-command "
        "help: what a typer CLI with rich help costs before it imports anything of its own.\n\n"
        + table(results).to_markdown() + "\n\n"
        f"Slowest tunelab help: `{worst}` at {tunelab_rows[worst]['ratio_to_typer_rich']:.2f}x the typer + rich "
        f"import (goal {GOAL_RATIO}x) and {tunelab_rows[worst]['ratio_to_typer_app']:.2f}x the two-level typer app; "
        f"that app alone is {floor:.2f}x the import (typer renders help with rich and, by default, checks unset "
        "options through pydantic first; tunelab's root group skips that check for --help).\n\n"
        f"Machine: {m['cpus']} CPUs, Python {m['python']}, typer {m['packages']['typer']}, rich "
        f"{m['packages']['rich']}; 1-minute load average {load[0]:.1f} before and {load[1]:.1f} after the run "
        "(a shared machine: ratios are comparable within the run, absolute times are not).\n"
    )


def write(results: dict) -> None:
    atomic_write_json(RESULTS / "startup.json", results)
    atomic_write_text(RESULTS / "startup.md", table(results).to_markdown() + "\n")
    atomic_write_text(HERE / "README.md", readme(results))


def subcommand_names() -> list[str]:
    from tunelab.cli import CAPABILITY_APPS, app

    mounted = {group.name for group in app.registered_groups} | {c.name for c in app.registered_commands}
    return [name for name in ["models", "data", "demo"] + [n for _, n in CAPABILITY_APPS] if name in mounted]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (>= 5)")
    parser.add_argument("--readme", action="store_true", help="only rewrite README.md from results/startup.json")
    args = parser.parse_args()
    if args.readme:
        import json

        results = json.loads((RESULTS / "startup.json").read_text())
        atomic_write_text(HERE / "README.md", readme(results))
        return
    if args.repeats < 5:
        parser.error("--repeats must be at least 5 (medians of fewer runs are noise on a shared machine)")
    load_before = os.getloadavg()[0]
    samples = measure(commands(subcommand_names()), args.repeats)
    results = {"repeats": args.repeats, "baseline": BASELINE, "goal_ratio": GOAL_RATIO,
               "load_average_1min": [load_before, os.getloadavg()[0]], "machine": machine(),
               "commands": summarise(samples)}
    write(results)
    print(table(results).to_markdown())


if __name__ == "__main__":
    main()
