"""FEVE of our factorised and Gaussian readouts against neuralpredictors' FullFactorized2d / FullGaussian2d on the
same simulated recording and the same core (architecture, seed, optimiser, loss, early stopping).

    .venv/bin/python -m benchmarks.cortex.bench_readouts --seeds 0 1 2   # results/readouts.json, readouts.png

Each seed is a new simulated recording (sheet, images, noise: simulation seed) and a new initialisation and data
split (fit seed). Runs can be split over processes (each fit is independent given the seed): `--runs NAME ...`
stores each run under results/readouts_runs/seed<N>/, a run already stored there is not fitted again, and
`--merge` gathers all stored runs into readouts.json (per-seed ratios, their mean with a 95 % t-interval, and
the paired difference of median FEVE), the figure and the README.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.cortex.readme import write_readme
from tunelab.cortex.fit import FitConfig, cortical_coords, fit_model
from tunelab.cortex.model import Core, EncodingModel, ModelConfig, build_model
from tunelab.cortex.pipeline import simulate_recording
from tunelab.cortex.simulate import SIMULATOR_VERSION, SheetConfig
from tunelab.io import atomic_savefig, atomic_write_json
from tunelab.stats import paired_difference, summarise

HERE = Path(__file__).resolve().parent


class PeerReadout(torch.nn.Module):
    """neuralpredictors' readout behind our readout interface (forward(x, sample), bias, regularizer())."""

    def __init__(self, kind: str, in_shape, n_units: int, init_sigma: float):
        super().__init__()
        from neuralpredictors.layers.readouts import FullFactorized2d, FullGaussian2d

        self.kind = kind
        self.n_units = n_units
        if kind == "gaussian":
            self.readout = FullGaussian2d(in_shape, n_units, bias=True, gauss_type="isotropic",
                                          init_sigma=init_sigma)
        else:
            self.readout = FullFactorized2d(in_shape, n_units, bias=True, normalize=True)

    @property
    def bias(self):
        return self.readout.bias

    def forward(self, x, sample=None):
        return self.readout(x, sample=sample) if self.kind == "gaussian" else self.readout(x)

    def regularizer(self):
        if self.kind == "gaussian":  # sum of |w| over units / n: identical to ours
            return self.readout.feature_l1(reduction="sum") / self.n_units
        # its l1 sums |m_n|_1 |w_k|_1 over all unit pairs (see tests); / n^2 is the pairwise mean
        return self.readout.l1(reduction="sum") / self.n_units ** 2


PLAN_NAMES = ["ours-gaussian-cortical", "neuralpredictors-gaussian", "ours-factorised", "neuralpredictors-factorised"]
# fitted only when named in --runs: free positions, as neuralpredictors' run, separate the position network's
# share of the Gaussian difference from the rest of the readout
OPTIONAL_NAMES = ["ours-gaussian-free"]
PAIRS = (("gaussian", "ours-gaussian-cortical", "neuralpredictors-gaussian"),
         ("factorised", "ours-factorised", "neuralpredictors-factorised"))


def peer_model(kind: str, image_size: int, n_units: int, seed: int) -> EncodingModel:
    config = ModelConfig()
    torch.manual_seed(seed)  # same core initialisation as build_model
    core = Core(config.hidden_channels, config.channels)
    return EncodingModel(core, PeerReadout(kind, core.output_shape(image_size), n_units, config.init_sigma))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="Simulation and fit seeds, one recording each.")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--runs", nargs="*", default=None, help="Only these runs (default: the four compared runs, then merge); "
                             "ours-gaussian-free only when named.")
    parser.add_argument("--merge", action="store_true", help="Only gather stored runs into readouts.json.")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    unknown = sorted(set(args.runs or []) - set(PLAN_NAMES + OPTIONAL_NAMES))
    if unknown:
        raise SystemExit(f"unknown run(s) {', '.join(unknown)}; choose from {', '.join(PLAN_NAMES + OPTIONAL_NAMES)}")
    torch.set_num_threads(args.threads)
    run_root = args.out / "readouts_runs"
    if not args.merge:
        for seed in args.seeds:
            fit_runs(args, seed, run_root / f"seed{seed}")
    if args.merge or args.runs is None:
        merge(args, run_root)


def fit_runs(args, seed: int, run_dir: Path) -> None:
    plan = [("ours-gaussian-cortical", "gaussian", "ours", ModelConfig(position="cortical")),
            ("neuralpredictors-gaussian", "gaussian", "neuralpredictors", None),
            ("ours-factorised", "factorised", "ours", ModelConfig(readout="factorised")),
            ("neuralpredictors-factorised", "factorised", "neuralpredictors", None),
            ("ours-gaussian-free", "gaussian", "ours", ModelConfig(position="free"))]
    wanted = PLAN_NAMES if args.runs is None else args.runs
    plan = [p for p in plan if p[0] in wanted and not is_current(run_dir / f"{p[0]}.json")]
    if not plan:
        return
    config = SheetConfig(height=args.side, width=args.side, seed=seed)  # its own sheet layout, images and noise
    _, recording = simulate_recording(config, args.images, 2, seed=seed)
    unit_pixels = np.flatnonzero(recording.pixel_mask)
    coords = cortical_coords(unit_pixels, recording.sheet_shape)
    fit_config = FitConfig(epochs=args.epochs, seed=seed)
    for name, kind, implementation, config in plan:
        print(f"fitting {name}, seed {seed}", file=sys.stderr, flush=True)
        model = (build_model(config, 64, len(unit_pixels), coords, fit_config.seed) if config is not None
                 else peer_model(kind, 64, len(unit_pixels), fit_config.seed))
        _, report = fit_model(recording, config or ModelConfig(readout=kind), fit_config, model=model)
        run = {"readout": kind, "implementation": implementation, "seed": seed,
               "config": {"sheet": [args.side, args.side], "images": args.images, "repeats": 2,
                          "simulator_version": SIMULATOR_VERSION,
                          "epochs_max": args.epochs, "threads": torch.get_num_threads(),
                          "cpu_count": os.cpu_count(),
                          "load_average_1_5_15_at_end": [round(v, 2) for v in os.getloadavg()]},
               **{k: v for k, v in report.items() if k not in ("per_unit", "split")}}
        atomic_write_json(run_dir / f"{name}.json", run)
        np.save(run_dir / f"{name}_feve.npy", report["per_unit"]["feve"])


def is_current(run_file: Path) -> bool:
    """A stored run of this simulator version (a run of an older simulator is fitted again)."""
    return run_file.exists() and json.loads(run_file.read_text())["config"].get("simulator_version") == SIMULATOR_VERSION


def load_runs(run_dir: Path) -> tuple[dict, dict]:
    runs, feve = {}, {}
    for name in PLAN_NAMES + OPTIONAL_NAMES:
        if (run_dir / f"{name}.json").exists():
            runs[name] = json.loads((run_dir / f"{name}.json").read_text())
            feve[name] = np.load(run_dir / f"{name}_feve.npy")
    return runs, feve


def seed_ratios(runs: dict) -> dict:
    """median FEVE ours / neuralpredictors per readout, where both runs of the pair are stored."""
    return {kind: runs[ours]["test"]["median_feve"] / runs[peer]["test"]["median_feve"]
            for kind, ours, peer in PAIRS if ours in runs and peer in runs}


def summarise_seeds(per_seed: dict) -> dict:
    """Per readout over the seeds holding both runs: the ratios (mean, 95 % t half-width) and the paired
    difference of median FEVE ours - neuralpredictors (mean, 95 % interval, p)."""
    out = {}
    for kind, ours, peer in PAIRS:
        seeds = [s for s, r in per_seed.items() if ours in r["runs"] and peer in r["runs"]]
        if not seeds:
            continue
        ratios = summarise([per_seed[s]["feve_ratio_ours_over_neuralpredictors"][kind] for s in seeds])
        out[kind] = {"seeds": seeds, "ratio": ratios, "difference_ours_minus_neuralpredictors": paired_difference(
            {s: per_seed[s]["runs"][ours]["test"]["median_feve"] for s in seeds},
            {s: per_seed[s]["runs"][peer]["test"]["median_feve"] for s in seeds})}
    return out


def merge(args, run_root: Path) -> None:
    per_seed, feve, configs = {}, {}, []
    for run_dir in sorted(run_root.glob("seed*"), key=lambda p: int(p.name[4:])):
        runs, seed_feve = load_runs(run_dir)
        stale = [name for name in runs if not is_current(run_dir / f"{name}.json")]
        if stale:
            raise SystemExit(f"{run_dir}: runs {', '.join(stale)} are of an older simulator; fit them again")
        if not runs:
            continue
        configs += [r.pop("config") for r in runs.values()]
        per_seed[run_dir.name[4:]] = {"runs": runs, "feve_ratio_ours_over_neuralpredictors": seed_ratios(runs)}
        for name, values in seed_feve.items():
            feve.setdefault(name, []).append(values)
    if not per_seed:
        raise SystemExit(f"no stored runs under {run_root}/seed*/")
    config = {k: v for k, v in configs[0].items() if k != "load_average_1_5_15_at_end"}
    config["load_average_1_5_15_at_end"] = [c["load_average_1_5_15_at_end"] for c in configs]
    results = {"config": config, "per_seed": per_seed, "summary": summarise_seeds(per_seed)}
    atomic_write_json(args.out / "readouts.json", results)
    plot({name: np.concatenate(values) for name, values in feve.items()}, args.out / "readouts.png")
    write_readme(args.out.parent)
    print(json.dumps({k: v["ratio"] for k, v in results["summary"].items()}, indent=2))


def plot(feve: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(-0.2, 1.0, 49)
    for name, values in feve.items():
        ax.hist(np.clip(values, -0.2, 1.0), bins=bins, histtype="step", label=f"{name} (median {np.median(values):.3f})")
    ax.set_xlabel("test FEVE per pixel (all seeds)")
    ax.set_ylabel("pixels")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    main()
