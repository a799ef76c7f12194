"""`tunelab demo`: every available study at small scale, gathered into one HTML report.

Each capability provides a module with `run(out_dir: pathlib.Path, full: bool = False) -> list[Section]`:
the default is sized for a first look (the whole demo in a few minutes on 2 cores); `full=True` runs the heavier
form of the study (more seeds, data or steps; still far smaller than benchmarks/). A study that raises is reported
as failed in its section; the others still run.
"""

from __future__ import annotations

import importlib
import json
import time
import traceback
from pathlib import Path

import typer

from tunelab.report import Section, write_report

DEMO_MODULES = [
    "tunelab.models.demo",
    "tunelab.align.preference.demo",
    "tunelab.align.poft.demo",
    "tunelab.adapters.demo",
    "tunelab.active.demo",
    "tunelab.text2sql.demo",
    "tunelab.cortex.demo",
]


def available_demos(only: list[str] | None = None) -> list[str]:
    names = []
    for name in DEMO_MODULES:
        if only and not any(part in name for part in only):
            continue
        try:
            importlib.util.find_spec(name)
        except ModuleNotFoundError:
            continue
        if importlib.util.find_spec(name) is not None:
            names.append(name)
    return names


# the two align demos keep the study names they have always had (report folders, --only)
_STUDY_NAMES = {"tunelab.align.preference.demo": "align", "tunelab.align.poft.demo": "poft_demo"}


def study_name(module: str) -> str:
    """`tunelab.models.demo` -> `models`; `tunelab.align.preference.demo` -> `align`, `tunelab.align.poft.demo` ->
    `poft_demo`."""
    return _STUDY_NAMES.get(module) or module.rsplit(".", 2)[-2 if module.endswith(".demo") else -1]


def time_left(done_s: list[float], remaining: int) -> float | None:
    """Seconds the `remaining` studies will take at the mean pace of those done, None before the first."""
    return sum(done_s) / len(done_s) * remaining if done_s else None


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def run_demos(out_dir: Path, only: list[str] | None = None, full: bool = False) -> list[Section]:
    from rich.console import Console

    console = Console(stderr=True)
    sections: list[Section] = []
    names = available_demos(only)
    durations: list[float] = []
    begin = time.perf_counter()
    for number, name in enumerate(names, start=1):
        left = time_left(durations, len(names) - number + 1)
        estimate = f", about {_clock(left)} left" if left is not None else ""
        console.print(f"[bold cyan]study {number} of {len(names)}[/] {study_name(name)} "
                      f"(elapsed {_clock(time.perf_counter() - begin)}{estimate})")
        start = time.perf_counter()
        study_dir = out_dir / "studies" / study_name(name)
        study_dir.mkdir(parents=True, exist_ok=True)
        threads = _torch_threads()
        try:
            sections.extend(importlib.import_module(name).run(study_dir, full=full))
            console.print(f"[green]done[/] {study_name(name)} in {_clock(time.perf_counter() - start)}")
        except Exception as err:  # a failed study is reported, not hidden
            console.print(f"[red]failed[/] {study_name(name)}: {err}")
            sections.append(Section(title=name, error=f"{type(err).__name__}: {err}",
                                    prose=traceback.format_exc(limit=5)))
        finally:
            _torch_threads(threads)  # a study that changes torch's thread count must not slow the next one
        durations.append(time.perf_counter() - start)
    console.print(f"[bold]{len(names)} studies in {_clock(time.perf_counter() - begin)}[/]")
    return sections


def _torch_threads(restore: int | None = None) -> int:
    import torch

    if restore is not None:
        torch.set_num_threads(restore)
    return torch.get_num_threads()


def demo_command(
    out: Path = typer.Option(Path("report"), "--out", help="Folder for index.html, results.json and figures."),
    only: list[str] = typer.Option(None, "--only", help="Run only demos whose module name contains this (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print results.json to stdout."),
    full: bool = typer.Option(False, "--full", help="The heavier form of every study (more seeds, data and steps; "
                              "tens of minutes). Default: sized for a first look, a few minutes on 2 cores."),
) -> None:
    """Run every available study at small scale and write the HTML report."""
    from tunelab import validate
    from tunelab.errors import UserError

    if only and not available_demos(only):
        names = ", ".join(study_name(n) for n in available_demos())
        raise UserError(f"no demo matches {' or '.join(repr(o) for o in only)}: choose from {names}")
    validate.out_dir(out)
    sections = run_demos(out, only, full)
    index = write_report(sections, out)
    if as_json:
        typer.echo((out / "results.json").read_text())
    else:
        failed = [s.title for s in sections if s.error]
        typer.echo(f"report: {index}" + (f" ({len(failed)} failed: {', '.join(failed)})" if failed else ""))
    if any(s.error for s in sections):
        raise typer.Exit(1)
