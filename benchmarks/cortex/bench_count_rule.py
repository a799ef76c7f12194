"""Which domain-count rule to use, decided on held-out simulation seeds (1-3, never the default seed 0 that
bench_map.py evaluates): cluster the trial-averaged recorded responses of each sheet (no model, so the rule is
judged apart from fit quality) and compare the count each rule picks, and its ARI, with the truth.

    .venv/bin/python benchmarks/cortex/bench_count_rule.py      # writes results/count_rule.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tunelab.cortex import mapping, verify
from tunelab.cortex.images import offline_bank
from tunelab.cortex.simulate import CorticalSheet, SheetConfig
from tunelab.io import atomic_write_json

HERE = Path(__file__).resolve().parent
RULES = ("merge_gap", "silhouette")


def evaluate_seed(seed: int, bank_images: np.ndarray) -> dict:
    sheet = CorticalSheet(SheetConfig(seed=seed))
    mean_responses = sheet.record(bank_images, repeats=2, seed=seed + 50).mean(1)
    units = np.flatnonzero(~sheet.vessel_mask.ravel())
    profiles = mapping.response_profiles(mean_responses[:, units])
    shape = (sheet.config.height, sheet.config.width)
    row = {"true_domains": len(sheet.config.domains)}
    for rule in RULES:
        domain_map, info = mapping.cluster_domains(profiles, units, shape, None, choose_by=rule)
        row[rule] = {"chosen": info["n_domains"], "ari": verify.map_agreement(sheet.domain_map, domain_map)}
    domain_map, _ = mapping.cluster_domains(profiles, units, shape, len(sheet.config.domains))
    row["true_count_ari"] = verify.map_agreement(sheet.domain_map, domain_map)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if 0 in args.seeds:
        parser.error("seed 0 is the evaluation simulation of bench_map.py; choose rules on other seeds")
    bank = offline_bank(args.images, 64, seed=200)
    per_seed = {str(seed): evaluate_seed(seed, bank.images) for seed in args.seeds}
    summary = {rule: {"true_count_found": sum(r[rule]["chosen"] == r["true_domains"] for r in per_seed.values()),
                      "median_ari": float(np.median([r[rule]["ari"] for r in per_seed.values()]))} for rule in RULES}
    atomic_write_json(args.out / "count_rule.json", {"config": {"seeds": args.seeds, "images": args.images},
                                                      "per_seed": per_seed, "summary": summary})
    print(summary)


if __name__ == "__main__":
    main()
