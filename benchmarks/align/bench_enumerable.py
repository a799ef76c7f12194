"""Enumerable study (tiny transformer LM, finite response set, exact pi* and J): DPO vs EPA over data seeds.

Writes results/enumerable.json after every (method, seed) cell, so a stopped run resumes with the same flags;
then results/enumerable.png and the README. Every EnumerableConfig field has a flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from readme import RESULTS, write_readme  # noqa: E402

from tunelab.align.preference.enumerable_report import enumerable_figure, summary_rows  # noqa: E402
from tunelab.align.preference.enumerable_study import EXACT, EnumerableConfig, run_study  # noqa: E402
from tunelab.io import atomic_savefig  # noqa: E402
from tunelab.progress import track  # noqa: E402

STORE = RESULTS / "enumerable.json"


def parse_config() -> EnumerableConfig:
    parser = argparse.ArgumentParser(description=__doc__)
    for field in dataclasses.fields(EnumerableConfig):
        default = field.default
        if isinstance(default, tuple):
            parser.add_argument(f"--{field.name.replace('_', '-')}", default=",".join(map(str, default)))
        else:
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(default), default=default)
    ns = vars(parser.parse_args())
    ns["methods"] = tuple(ns["methods"].split(","))
    for key in ("sizes", "seeds"):
        ns[key] = tuple(int(v) for v in ns[key].split(","))
    return EnumerableConfig(**ns)


def main() -> None:
    import torch

    torch.set_num_threads(1)  # a benchmark script may; the library never does
    cfg = parse_config()
    outcome = run_study(cfg, store=STORE, progress=lambda cells: track(cells, "enumerable study"))
    atomic_savefig(enumerable_figure(outcome["summary"]), RESULTS / "enumerable.png")
    for size in map(str, cfg.sizes):
        print(f"N = {'exact' if int(size) == EXACT else size}: method, slope, r, slope-1 error, spread, KL, J")
        for row in summary_rows(outcome["summary"], size):
            print("   ", " | ".join(row))
    s = outcome["summary"]
    print(f"J(pi*) {s['J_optimal']['mean']:.4f}  J(pi_ref) {s['J_reference']['mean']:.4f}")
    write_readme()


if __name__ == "__main__":
    main()
