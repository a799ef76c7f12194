"""Exact tabular experiment (DPO vs EPA with nw weak negatives): results/theory.json + theory.png + README."""

from __future__ import annotations

import argparse

from benchmarks.align.readme import RESULTS, write_readme
from tunelab.align.preference.theory import TheoryConfig, run_theory, theory_figure
from tunelab.io import atomic_savefig, atomic_write_json
from tunelab.progress import track


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--responses", type=int, default=12)
    parser.add_argument("--inits", type=int, default=5)
    parser.add_argument("--nw", default="0,1,4,16,64")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    cfg = TheoryConfig(prompts=args.prompts, responses=args.responses, inits=args.inits,
                       weak_negatives=tuple(int(v) for v in args.nw.split(",")))
    outcome = run_theory(cfg, progress=lambda jobs: track(jobs, "theory"))
    results = [{k: v for k, v in r.items() if k != "learned_first"} for r in outcome["results"]]
    atomic_write_json(RESULTS / "theory.json", {"config": outcome["config"], "results": results})
    atomic_savefig(theory_figure(outcome), RESULTS / "theory.png")
    for r in results:
        print(f"{r['method']:>12}: slope {r['slope']:.4f}  r {r['pearson']:.4f}  spread {r['spread']:.2e}  KL {r['kl']:.3f}")
    write_readme()


if __name__ == "__main__":
    main()
