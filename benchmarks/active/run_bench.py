"""Active-learning benchmark: `python benchmarks/active/run_bench.py` (resumable; rerun to continue).

Every strategy (ours and small-text's) x 5 seeds x 10 rounds on debian-sections and stdlib-docs,
then the selection-cost study on a 20k pool. Writes results/results.json, results/curves-*.png and
README.md (generated from the JSON).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from tunelab.active.bench import SCALE_KINDS, run_benchmark

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--no-scale", action="store_true", help="skip the 20k-pool selection-cost study")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run_benchmark(HERE / "results", scale=None if args.no_scale else {"kinds": list(SCALE_KINDS)},
                  readme=HERE / "README.md")
    print((HERE / "README.md").read_text())
