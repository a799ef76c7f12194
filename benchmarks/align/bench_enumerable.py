"""Enumerable study (tiny transformer LM, finite response set, exact pi* and J): DPO vs EPA over data seeds.

Writes results/enumerable.json after every (method, seed) cell, so a stopped run resumes with the same flags;
then results/enumerable.png and the README (the same library call as `tunelab align enumerable --out
benchmarks/align/results`). Every EnumerableConfig field has a flag.
"""

from __future__ import annotations

import argparse

from benchmarks.align.readme import RESULTS, write_readme
from tunelab.align.preference.config_options import config_fields, field_value
from tunelab.align.preference.enumerable_report import summary_rows
from tunelab.align.preference.enumerable_study import EXACT, EnumerableConfig, run_into
from tunelab.progress import track


def parse_config() -> EnumerableConfig:
    """Every EnumerableConfig field as a flag (tuples comma-separated), parsed as `tunelab align enumerable` does."""
    parser = argparse.ArgumentParser(description=__doc__)
    for field, _ in config_fields(EnumerableConfig):
        default = field.default
        text = isinstance(default, tuple)
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=str if text else type(default),
                            default=",".join(map(str, default)) if text else default)
    values = vars(parser.parse_args())
    return EnumerableConfig(**{name: field_value(EnumerableConfig, name, v) for name, v in values.items()})


def main() -> None:
    import torch

    torch.set_num_threads(1)  # a benchmark script may; the library never does
    cfg = parse_config()
    outcome = run_into(cfg, RESULTS, progress=lambda cells: track(cells, "enumerable study"))
    for size in map(str, cfg.sizes):
        print(f"N = {'exact' if int(size) == EXACT else size}: method, slope, r, slope-1 error, spread, KL, J")
        for row in summary_rows(outcome["summary"], size):
            print("   ", " | ".join(row))
    s = outcome["summary"]
    print(f"J(pi*) {s['J_optimal']['mean']:.4f}  J(pi_ref) {s['J_reference']['mean']:.4f}")
    write_readme()


if __name__ == "__main__":
    main()
