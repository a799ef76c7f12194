"""The readout benchmark's seeds: each seed simulates its own sheet layout (not only new images and noise), and
runs stored from an older simulator are fitted again, never merged with current ones."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def readouts():
    sys.path.insert(0, str(ROOT))
    try:
        yield importlib.import_module("benchmarks.cortex.bench_readouts")
    finally:
        sys.path.remove(str(ROOT))


class Simulated(Exception):
    pass


def test_each_seed_simulates_its_own_sheet(readouts, tmp_path, monkeypatch):
    seen = []

    def fake_simulate(config, n_images, repeats, seed):
        seen.append((config.seed, seed))
        raise Simulated

    monkeypatch.setattr(readouts, "simulate_recording", fake_simulate)
    args = argparse.Namespace(side=16, images=8, epochs=1, runs=None)
    for seed in (0, 3):
        with pytest.raises(Simulated):
            readouts.fit_runs(args, seed, tmp_path / f"seed{seed}")
    assert seen == [(0, 0), (3, 3)]


def _store(run_dir: Path, name: str, version: int) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / f"{name}.json").write_text(json.dumps({"config": {"simulator_version": version}}))


def test_runs_of_an_older_simulator_are_not_current_and_not_merged(readouts, tmp_path):
    current, old = readouts.SIMULATOR_VERSION, readouts.SIMULATOR_VERSION - 1
    _store(tmp_path / "seed0", "ours-factorised", current)
    _store(tmp_path / "seed0", "ours-gaussian-cortical", old)
    assert readouts.is_current(tmp_path / "seed0" / "ours-factorised.json")
    assert not readouts.is_current(tmp_path / "seed0" / "ours-gaussian-cortical.json")
    assert not readouts.is_current(tmp_path / "seed0" / "neuralpredictors-gaussian.json")  # never stored
    for name in ("ours-factorised", "ours-gaussian-cortical"):
        np.save(tmp_path / "seed0" / f"{name}_feve.npy", np.zeros(3))
    with pytest.raises(SystemExit, match="older simulator"):
        readouts.merge(argparse.Namespace(out=tmp_path), tmp_path)
