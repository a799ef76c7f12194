"""Controlled-reward study, DPO vs EPA over seeds on SmolLM2-135M-Instruct + LoRA: results/study.json + PNG + README.

Defaults are sized for minutes on a 2-core CPU; every StudyConfig field has a flag for larger runs.
"""

from __future__ import annotations

import argparse
import dataclasses

from benchmarks.align.readme import RESULTS, write_readme
from tunelab.align.study import StudyConfig, run_study, study_figure
from tunelab.io import atomic_savefig, atomic_write_json
from tunelab.progress import track


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for field in dataclasses.fields(StudyConfig):
        default = field.default
        if isinstance(default, tuple):
            parser.add_argument(f"--{field.name.replace('_', '-')}", default=",".join(map(str, default)))
        else:
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(default), default=default)
    ns = vars(parser.parse_args())
    for key in ("seeds", "methods"):
        ns[key] = tuple(int(v) if key == "seeds" else v for v in ns[key].split(","))
    cfg = StudyConfig(**ns)
    outcome = run_study(cfg, progress=lambda jobs: track(jobs, "study runs"))
    atomic_write_json(RESULTS / "study.json", outcome)
    atomic_savefig(study_figure(outcome), RESULTS / "study.png")
    for method, s in outcome["summary"].items():
        print(f"{method}: r(implicit,true) {s['pearson']['mean']:.3f} +/- {s['pearson']['std']:.3f}  "
              f"slope {s['slope']['mean']:.3f}  KL {s['kl']['mean']:.3f}  win {s['win_rate']['mean']:.2f}")
    print("higher r(implicit, true):", outcome["higher_pearson"])
    write_readme()


if __name__ == "__main__":
    main()
