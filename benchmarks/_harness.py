"""What every benchmark script shares: a results store that resumes, machine and load info, README writing.

Scripts run as modules from the repository root, so this file and a capability's helpers import by package name
and no script edits `sys.path`:

    .venv/bin/python -m benchmarks.align.bench_loss

A study keeps its finished runs in one JSON file, written atomically after each run, so a killed run loses at most
the run in progress and a rerun skips what is there:

    store = Store(RESULTS / "accuracy.json", settings=vars(args))
    for key in plan:
        if not store.done(key):
            store.put(key, run(key))

Machine and load info carry one spelling in every results file: `"machine": machine_info()` and
`"load_average_1min": [before, after]` (`load_average()` read at the start and at the end of the run).
A README is the text a pure function makes from the committed JSON, its tables through `tunelab.report.Table`;
`write_readme` writes it, and tests/foundation/test_benchmark_readmes.py regenerates each one in memory and
compares it with the committed file.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from tunelab.errors import UserError
from tunelab.io import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
MACHINE_KEY = "machine"
LOAD_KEY = "load_average_1min"


class Store:
    """Finished runs of one study by key, in one JSON file next to the study's other fields (settings, summary).

    `settings` are the options that make runs comparable: opening a file whose stored runs were made with other
    settings is refused, so a rerun never mixes two set-ups in one table. One process writes a store at a time.
    """

    def __init__(self, path: str | os.PathLike, settings: dict | None = None, records: str = "runs"):
        self.path = Path(path)
        self.records = records
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):  # left by a run killed inside a write
            stale.unlink(missing_ok=True)
        try:
            self.data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except json.JSONDecodeError as error:
            raise UserError(f"{self.path} is not valid JSON ({error.msg}); move it away to start afresh") from None
        self.data.setdefault(records, {})
        if settings is not None:
            stored = self.data.get("settings")
            if self.data[records] and stored is not None and stored != settings:
                changed = sorted(k for k in {*stored, *settings} if stored.get(k) != settings.get(k))
                raise UserError(f"settings differ from the runs stored in {self.path} ({', '.join(changed)}); "
                                "move the file away first")
            self.data["settings"] = settings

    @property
    def runs(self) -> dict[str, Any]:
        return self.data[self.records]

    def done(self, key: str) -> bool:
        return key in self.runs

    def put(self, key: str, record: Any) -> None:
        """Add one finished run and write the whole file atomically (a kill leaves the previous file)."""
        self.runs[key] = record
        self.save()

    def drop(self, keys: Iterable[str]) -> None:
        """Forget runs so that they are run again (after a change to the method)."""
        for key in keys:
            self.runs.pop(key, None)
        self.save()

    def update(self, **fields: Any) -> None:
        """Set study-level fields (summary, machine, load) and write the file."""
        self.data.update(fields)
        self.save()

    def save(self) -> Path:
        return atomic_write_json(self.path, self.data)


def load_average() -> float:
    """The 1-minute load average now (0.0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def machine_info(packages: Iterable[str] = ()) -> dict[str, Any]:
    """Python, platform, CPU count, torch threads (when torch is loaded) and the versions of `packages`."""
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "cpus": os.cpu_count()}
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    info["packages"] = versions
    return info


# old spellings of the same facts, top-level keys of results files written before the harness
_OLD_LOAD_KEYS = ("machine_load_1min",)
_OLD_MACHINE_KEYS = {"cpus": "cpus", "torch_threads": "torch_threads"}


# the PoFT study's sentence: "2 CPU threads, torch 2.13.0+cpu[, <GPU name>]"
_MACHINE_SENTENCE = re.compile(r"(?P<torch_threads>\d+) CPU threads, torch (?P<torch>[^,\s]+)(?:, (?P<gpu>.+))?$")


def unify_machine_keys(data: dict) -> dict:
    """The same results with machine and load info under the harness's spelling; results are untouched.

    `machine_load_1min: x` and a bare `load_average_1min: x` become `load_average_1min: [x]`, top-level `cpus` /
    `torch_threads` move into `machine`, and a machine sentence becomes its fields. Idempotent: a file already in
    the new spelling comes back equal.
    """
    out = dict(data)
    for old in _OLD_LOAD_KEYS:
        if old in out:
            value = out.pop(old)
            out.setdefault(LOAD_KEY, value)
    if LOAD_KEY in out and not isinstance(out[LOAD_KEY], list):
        out[LOAD_KEY] = [out[LOAD_KEY]]
    sentence = _MACHINE_SENTENCE.match(out[MACHINE_KEY]) if isinstance(out.get(MACHINE_KEY), str) else None
    if sentence:
        out[MACHINE_KEY] = {"torch_threads": int(sentence["torch_threads"]), "torch": sentence["torch"],
                            **({"gpu": sentence["gpu"]} if sentence["gpu"] else {})}
    moved = {new: out.pop(old) for old, new in _OLD_MACHINE_KEYS.items() if old in out}
    if moved:
        machine = out.get(MACHINE_KEY)
        out[MACHINE_KEY] = {**moved, **machine} if isinstance(machine, dict) else moved
    return out


def convert_file(path: str | os.PathLike) -> bool:
    """Rewrite one results file in the harness's spelling (atomically); True when it changed."""
    path = Path(path)
    data = json.loads(path.read_text())
    new = unify_machine_keys(data)
    if new == data:
        return False
    atomic_write_json(path, new)
    return True


def write_readme(path: str | os.PathLike, parts: Iterable[str]) -> Path:
    """Write a README made of generated parts joined by newlines, atomically."""
    return atomic_write_text(path, "\n".join(parts))


if __name__ == "__main__":  # one-shot: `python -m benchmarks._harness FILE...` rewrites old machine/load keys
    for name in sys.argv[1:]:
        print(f"{name}: {'converted' if convert_file(name) else 'already in the harness spelling'}")
