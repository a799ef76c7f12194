"""VAPAL in its paper's regime: the encoder's top layers fine-tuned every round, VAP on their input token states.

`python benchmarks/active/run_finetuned.py` (resumable per corpus / strategy / seed; rerun to continue).

With a frozen encoder and a linear head (`run_bench.py`) the VAP direction lies in the span of the head's class
vectors, so VAPAL can carry little beyond BADGE. Here the last `--trainable-layers` transformer layers of MiniLM
train with the head every round and VAP perturbs the token states entering them, so the perturbation acts through
attention and the feed-forward blocks. Pools are redrawn for every seed (data seeds), and jobs run seed by seed, so
a stopped run has every strategy on its first seeds. `--corpus NAME` runs one corpus (two processes can share the
work); `--finished-only` writes the JSON, plots and README from the finished runs without running anything.
Writes finetuned/results/results.json, finetuned/results/curves-*.png and finetuned/README.md.
"""

from __future__ import annotations

import argparse
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from tunelab.active.bench import CorpusSpec, run_benchmark  # noqa: E402
from tunelab.active.classifier import ClassifierConfig  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "finetuned"
STRATEGIES = ("random", "entropy", "bert-km", "badge", "vapal-badge", "vapal-alps")


def corpora(pool: int, test: int, rounds: int, max_length: int) -> list[CorpusSpec]:
    return [CorpusSpec(name, max_pool=pool, max_test=test, initial_size=50, query_size=50, rounds=rounds,
                       max_length=max_length, resample_per_seed=True)
            for name in ("debian-sections", "stdlib-docs")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=("debian-sections", "stdlib-docs"), help="run only this corpus")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trainable-layers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50, help="AdamW steps per round")
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--finished-only", action="store_true", help="report finished runs; run nothing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    specs = [c for c in corpora(args.pool, args.test, args.rounds, args.max_length)
             if args.corpus in (None, c.source)]
    config = ClassifierConfig(trainable_layers=args.trainable_layers, steps=args.steps, batch_size=32,
                              max_length=args.max_length)
    whole = args.corpus is None
    run_benchmark(OUT / "results", corpora=specs, strategies=STRATEGIES, seeds=tuple(range(args.seeds)),
                  classifier_config=config, readme=OUT / "README.md" if whole else None,
                  script="benchmarks/active/run_finetuned.py",
                  title="Active learning with a fine-tuned encoder (VAPAL's regime)",
                  finished_only=args.finished_only)
    if whole:
        print((OUT / "README.md").read_text())
