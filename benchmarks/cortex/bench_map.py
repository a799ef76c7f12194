"""Recovered-map benchmark on the default simulation: fit time, FEVE, ARI against the true domain map,
preferred-feature accuracy, in-silico verification, and preference-search speed for every pixel, against
neuralpredictors' FullGaussian2d readout on the same core (same run, medians of repeated timings).

    .venv/bin/python benchmarks/cortex/bench_map.py            # writes results/map.json, map.png, README.md
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.cortex.readme import families_recovered, write_readme

HERE = Path(__file__).resolve().parent

from tunelab.cortex import fit as fit_module  # noqa: E402
from tunelab.cortex import mapping, verify  # noqa: E402
from tunelab.cortex import features as features_module  # noqa: E402
from tunelab.cortex import model as model_module  # noqa: E402
from tunelab.cortex import pipeline as pipeline_module  # noqa: E402
from tunelab.cortex.findings import confusion_table  # noqa: E402
from tunelab.cortex.fit import FitConfig, FittedModel, fit_model  # noqa: E402
from tunelab.cortex.images import offline_bank  # noqa: E402
from tunelab.cortex.model import EncodingModel, ModelConfig  # noqa: E402
from tunelab.cortex.pipeline import map_domains, simulate_recording, verify_in_silico  # noqa: E402
from tunelab.cortex.simulate import SIMULATOR_VERSION, CorticalSheet, SheetConfig  # noqa: E402
from tunelab.io import atomic_savefig, atomic_write_json  # noqa: E402


class NeuralpredictorsGaussian(torch.nn.Module):
    """neuralpredictors' FullGaussian2d at the same positions and features as our trained readout."""

    def __init__(self, ours, in_shape):
        super().__init__()
        from neuralpredictors.layers.readouts import FullGaussian2d

        n = ours.features.shape[0]
        self.readout = FullGaussian2d(in_shape, n, bias=True, gauss_type="isotropic")
        with torch.no_grad():
            self.readout._mu.copy_(ours.mu.view(1, n, 1, 2))
            self.readout._features.copy_(ours.features.T.reshape(1, in_shape[0], 1, n))
            self.readout.bias.copy_(ours.bias)
        self.readout.eval()

    def forward(self, x, sample=None):
        return self.readout(x, sample=False)


def search_speeds(fitted, bank_images, repeats: int) -> dict:
    """images/s of the streaming top-25 search for all pixels: our readout, neuralpredictors' readout, core only."""
    core = fitted.model.core.eval()
    peer = EncodingModel(core, NeuralpredictorsGaussian(fitted.model.readout, core.output_shape(fitted.image_size)))
    with torch.no_grad():
        probe = torch.from_numpy(bank_images[:64])
        max_diff = float((fitted.model.eval()(probe) - peer(probe)).abs().max())
    candidates = {"ours": fitted.model.eval(), "neuralpredictors": peer.eval(), "core_only": None}
    speeds = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, model in candidates.items():
            predict = (lambda b: core(b).flatten(1)[:, :1]) if model is None else model
            speeds[name].append(mapping.top_k_preferred(predict, bank_images, k=25)[2])
    return {"median_images_per_second": {k: statistics.median(v) for k, v in speeds.items()},
            "all_images_per_second": speeds, "max_abs_difference_ours_vs_peer": max_diff,
            "ratio_ours_over_neuralpredictors": statistics.median(speeds["ours"]) / statistics.median(
                speeds["neuralpredictors"])}


def ari_by_count_rule(fitted, bank, sheet, profile_images: int = 1000) -> dict:
    """Count chosen and ARI under each count rule on the same model profiles (the default rule was picked on other
    seeds by bench_count_rule.py; this only reports how each fares here)."""
    profiles = {"responses": mapping.response_profiles(fitted.predict(bank.images[:profile_images])),
                "readout": mapping.readout_profiles(fitted)}
    out = {}
    for name, values in profiles.items():
        for rule in ("merge_gap", "silhouette"):
            domain_map, info = mapping.cluster_domains(values, fitted.unit_pixels, fitted.sheet_shape, choose_by=rule)
            out[f"{name}+{rule}"] = {"chosen": info["n_domains"],
                                     "ari": verify.map_agreement(sheet.domain_map, domain_map)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--bank", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--sim-seed", type=int, default=0,
                        help="Simulation seed; 0 is the default sheet (results/map.json), others go to "
                             "results/map_seed<N>.json as a robustness check.")
    parser.add_argument("--timing-repeats", type=int, default=3)
    parser.add_argument("--timing-images", type=int, default=1000, help="Bank images per speed timing.")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "tunelab" / "cortex-bench")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    torch.set_num_threads(2)
    config = SheetConfig(height=args.side, width=args.side, seed=args.sim_seed)
    seed_tag = f"-seed{args.sim_seed}" if args.sim_seed else ""
    # the cache key names the simulator version, the configuration and the model, fit, recording and feature code:
    # a fit of an older sheet, stimulus set, core or training rule is never reused
    code = "".join(inspect.getsource(m) for m in (model_module, fit_module, pipeline_module, features_module))
    sheet_key = hashlib.sha256(f"{SIMULATOR_VERSION}{dataclasses.asdict(config)}{code}".encode()).hexdigest()[:8]
    model_dir = args.cache / f"gaussian-{args.side}-{args.images}-{args.epochs}{seed_tag}-{sheet_key}"
    if (model_dir / "fit_report.json").exists():  # reuse a fit of exactly this configuration
        sheet = CorticalSheet(config)
        fitted = FittedModel.load(model_dir)
        fit_report = json.loads((model_dir / "fit_report.json").read_text())
    else:
        sheet, recording = simulate_recording(config, args.images, repeats=2, seed=args.sim_seed)
        fitted, report = fit_model(recording, ModelConfig(), FitConfig(epochs=args.epochs), progress=True)
        fit_report = {k: v for k, v in report.items() if k not in ("per_unit", "split")}
        fitted.save(model_dir)
        atomic_write_json(model_dir / "fit_report.json", fit_report)
        np.save(model_dir / "test_feve.npy", report["per_unit"]["feve"])
    bank = offline_bank(args.bank, config.image_size, seed=100)
    result = map_domains(fitted, bank, k=25)
    verification = verify_in_silico(sheet, result, bank)
    known_count = map_domains(fitted, bank, k=25, n_domains=len(config.domains))  # the count given, for reference
    verification["ari_with_true_domain_count"] = verify.map_agreement(sheet.domain_map, known_count.domain_map)
    verification["ari_by_count_rule"] = ari_by_count_rule(fitted, bank, sheet)
    speeds = search_speeds(fitted, bank.images[: args.timing_images], args.timing_repeats)
    load = os.getloadavg()
    results = {
        "config": {"sheet": [args.side, args.side], "sim_seed": args.sim_seed, "images": args.images, "repeats": 2, "bank": args.bank,
                   "timing_images": min(args.timing_images, args.bank), "command": " ".join(sys.argv[1:]),
                   "epochs_max": args.epochs, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                   "machine": platform.processor() or platform.machine(),
                   "load_average_1_5_15_at_end": [round(v, 2) for v in load]},
        "true_domain_names": config.domain_names(),
        "fit": fit_report,
        "map": result.summary(),
        "verification": verification,
        "search": speeds,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    if args.sim_seed:
        atomic_write_json(args.out / f"map_seed{args.sim_seed}.json", results)
    else:
        atomic_write_json(args.out / "map.json", results)
        plot(sheet, result, bank, model_dir, args.out)
    write_readme(args.out.parent)
    print(json.dumps({"ari": verification["ari"], "feve": fit_report["test"]["median_feve"],
                      "preferred_feature_accuracy": verification["preferred_feature_accuracy"],
                      "family_confusion": verification["family_confusion"],
                      "images_per_second": speeds["median_images_per_second"]}, indent=2))
    print(f"\nfamilies recovered under their own name: {families_recovered(verification)}\n")
    print(confusion_table(verification["family_confusion"]).to_markdown())


def plot(sheet, result, bank, model_dir, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunelab.cortex import report_figures

    # the report's figures: true and recovered maps in matching colours with legends, the labelled FEVE histogram
    fig, axes = plt.subplots(1, 3, figsize=(13, 5.4), gridspec_kw={"width_ratios": [1, 1, 1.15]})
    truth = np.where(sheet.vessel_mask, -1, sheet.domain_map)
    report_figures.plot_maps(truth, [f for f, _ in sheet.config.domains], sheet.config.domain_names(),
                             result.domain_map, result.labels, axes[:2])
    feve = np.load(model_dir / "test_feve.npy") if (model_dir / "test_feve.npy").exists() else None
    if feve is not None:
        report_figures.plot_feve_histogram(feve, float(np.nanmedian(feve)), axes[2])
    fig.tight_layout()
    atomic_savefig(fig, out / "map.png")
    plt.close(fig)
    rows = {f"{d}:{result.labels[d]}": bank.images[idx[:8]] for d, idx in result.domain_preferred.items()}
    grid = mapping.plot_image_grid(rows)
    atomic_savefig(grid, out / "preferred_images.png")
    plt.close(grid)


if __name__ == "__main__":
    main()
