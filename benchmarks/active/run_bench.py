"""Active-learning benchmark: `python benchmarks/active/run_bench.py` (resumable; rerun to continue).

Every strategy (ours and small-text's) x 5 seeds x 10 rounds on debian-sections and stdlib-docs,
then the selection-cost study on a 20k pool. Writes results/results.json, results/curves-*.png and
README.md (generated from the JSON).
"""

from __future__ import annotations

import argparse
import os

# one BLAS / OpenMP thread: the benchmark machine is shared, and oversubscribed BLAS threads
# slow the dense (n x C*d) peer computations several-fold; set before numpy is imported
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from tunelab.active.bench import SCALE_KINDS, run_benchmark  # noqa: E402

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--no-scale", action="store_true", help="skip the 20k-pool selection-cost study")
    parser.add_argument("--leave-out", nargs=2, action="append", metavar=("CORPUS", "STRATEGY"), default=[],
                        help="report a strategy on a corpus as unfinished (from its saved states) "
                        "instead of running it")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    leave_out: dict[str, list[str]] = {}
    for corpus, strategy in args.leave_out:
        leave_out.setdefault(corpus, []).append(strategy)
    run_benchmark(HERE / "results", scale=None if args.no_scale else {"kinds": list(SCALE_KINDS), "repeats": 3,
                                                                     "timing_rounds": 7},
                  readme=HERE / "README.md", leave_out=leave_out)
    print((HERE / "README.md").read_text())
