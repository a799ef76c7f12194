"""FEVE of our factorised and Gaussian readouts against neuralpredictors' FullFactorized2d / FullGaussian2d on the
same simulated recording and the same core (architecture, seed, optimiser, loss, early stopping).

    .venv/bin/python -m benchmarks.cortex.bench_readouts      # writes results/readouts.json, readouts.png

Runs can be split over processes (each fit is independent given the seed): `--runs NAME ...` stores each run
under results/readouts_runs/, and `--merge` gathers them into readouts.json, the figure and the README.
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
from tunelab.cortex.simulate import SheetConfig
from tunelab.io import atomic_savefig, atomic_write_json

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
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--runs", nargs="*", default=None, help="Only these runs (default: all, then merge).")
    parser.add_argument("--merge", action="store_true", help="Only gather stored runs into readouts.json.")
    args = parser.parse_args()
    torch.set_num_threads(2)
    run_dir = args.out / "readouts_runs"
    if not args.merge:
        fit_runs(args, run_dir)
    if args.merge or args.runs is None:
        merge(args, run_dir)


def fit_runs(args, run_dir: Path) -> None:
    _, recording = simulate_recording(SheetConfig(height=args.side, width=args.side), args.images, 2, seed=0)
    unit_pixels = np.flatnonzero(recording.pixel_mask)
    coords = cortical_coords(unit_pixels, recording.sheet_shape)
    fit_config = FitConfig(epochs=args.epochs)
    plan = [("ours-gaussian-cortical", "gaussian", "ours", ModelConfig(position="cortical")),
            ("neuralpredictors-gaussian", "gaussian", "neuralpredictors", None),
            ("ours-factorised", "factorised", "ours", ModelConfig(readout="factorised")),
            ("neuralpredictors-factorised", "factorised", "neuralpredictors", None)]
    for name, kind, implementation, config in plan:
        if args.runs is not None and name not in args.runs:
            continue
        print(f"fitting {name}", file=sys.stderr, flush=True)
        model = (build_model(config, 64, len(unit_pixels), coords, fit_config.seed) if config is not None
                 else peer_model(kind, 64, len(unit_pixels), fit_config.seed))
        _, report = fit_model(recording, config or ModelConfig(readout=kind), fit_config, model=model)
        run = {"readout": kind, "implementation": implementation,
               "config": {"sheet": [args.side, args.side], "images": args.images, "repeats": 2,
                          "epochs_max": args.epochs, "threads": torch.get_num_threads(),
                          "cpu_count": os.cpu_count(),
                          "load_average_1_5_15_at_end": [round(v, 2) for v in os.getloadavg()]},
               **{k: v for k, v in report.items() if k not in ("per_unit", "split")}}
        atomic_write_json(run_dir / f"{name}.json", run)
        np.save(run_dir / f"{name}_feve.npy", report["per_unit"]["feve"])


def merge(args, run_dir: Path) -> None:
    runs, feve = {}, {}
    for name in PLAN_NAMES:
        if (run_dir / f"{name}.json").exists():
            runs[name] = json.loads((run_dir / f"{name}.json").read_text())
            feve[name] = np.load(run_dir / f"{name}_feve.npy")
    ratios = {}
    for kind, ours in (("gaussian", "ours-gaussian-cortical"), ("factorised", "ours-factorised")):
        peer = f"neuralpredictors-{kind}"
        if ours in runs and peer in runs:
            ratios[kind] = runs[ours]["test"]["median_feve"] / runs[peer]["test"]["median_feve"]
    configs = [r.pop("config") for r in runs.values()]
    results = {"config": {**configs[0], "load_average_1_5_15_at_end": [c["load_average_1_5_15_at_end"]
                                                                        for c in configs]},
               "runs": runs, "feve_ratio_ours_over_neuralpredictors": ratios}
    atomic_write_json(args.out / "readouts.json", results)
    plot(feve, args.out / "readouts.png")
    write_readme(args.out.parent)
    print(json.dumps(ratios, indent=2))


def plot(feve: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(-0.2, 1.0, 49)
    for name, values in feve.items():
        ax.hist(np.clip(values, -0.2, 1.0), bins=bins, histtype="step", label=f"{name} (median {np.median(values):.3f})")
    ax.set_xlabel("test FEVE per pixel")
    ax.set_ylabel("pixels")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    main()
