"""The CLI end to end on a tiny sheet, and its one-line errors."""

import json

import numpy as np
import pytest

from tunelab.cli import main


@pytest.mark.slow
def test_simulate_fit_map_verify(tmp_path, capsys):
    sim, model, mapped = tmp_path / "sim", tmp_path / "model", tmp_path / "map"
    assert main(["cortex", "simulate", "--out", str(sim), "--n-images", "96", "--height", "10", "--width", "10",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pixels"] == 100 and (sim / "recording.npz").exists()
    assert main(["cortex", "fit", "--data", str(sim / "recording.npz"), "--out", str(model), "--epochs", "2",
                 "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit["n_units"] == 100 - summary["masked_pixels"] and fit["epochs_run"] == 2
    assert np.isfinite(fit["test"]["median_feve"])
    assert main(["cortex", "map", "--model", str(model), "--out", str(mapped), "--bank-size", "64",
                 "--top-k", "5", "--domains", "3", "--meis", "1", "--json"]) == 0
    mapping = json.loads(capsys.readouterr().out)
    assert mapping["n_domains"] == 3 and (mapped / "domains.png").exists() and (mapped / "meis.png").exists()
    saved = np.load(mapped / "map.npz")  # every recorded pixel in one of the 3 domains, masked pixels left out
    domain_map = saved["domain_map"].ravel()
    assert sorted(np.unique(domain_map[saved["unit_pixels"]])) == [0, 1, 2]
    assert (np.delete(domain_map, saved["unit_pixels"]) == -1).all()
    assert saved["top_indices"].shape == (fit["n_units"], 5) and (np.diff(saved["top_values"], axis=1) <= 0).all()
    assert main(["cortex", "verify", "--map", str(mapped), "--simulation", str(sim), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert -1 <= report["ari"] <= 1 and len(report["per_domain"]) == 3
    assert all(np.isfinite(d["d_prime"]) for d in report["per_domain"])
    # a user's session: the exported verification images, answered by a recorded array
    exported = np.load(mapped / "verification_images.npz")
    responses = np.random.default_rng(0).normal(size=(len(exported["images"]), 2, 100)).astype(np.float32)
    np.savez(tmp_path / "session.npz", responses=responses, set_of_image=exported["set_of_image"])
    assert main(["cortex", "verify", "--map", str(mapped), "--session", str(tmp_path / "session.npz"),
                 "--out", str(tmp_path), "--json"]) == 0
    assert "median_d_prime" in json.loads(capsys.readouterr().out)


def test_cli_errors_are_one_line_and_leave_nothing(tmp_path, capsys):
    np.savez(tmp_path / "one_repeat.npz", responses=np.zeros((60, 1, 16), np.float32),
             images=np.zeros((60, 3, 64, 64), np.uint8))
    code = main(["cortex", "fit", "--data", str(tmp_path / "one_repeat.npz"), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2 and "at least 2 are needed" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()
    assert main(["cortex", "fit", "--data", str(tmp_path / "none.npz"), "--out", str(tmp_path / "m")]) == 2
    assert main(["cortex", "simulate", "--out", str(tmp_path / "s"), "--repeats", "1"]) == 2
    assert main(["cortex", "map", "--model", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "no fitted model" in capsys.readouterr().err
    assert main(["cortex", "verify", "--map", str(tmp_path)]) == 2
    assert not (tmp_path / "s").exists() and not (tmp_path / "x").exists()
    capsys.readouterr()
    assert main(["cortex", "fit", "--data", str(tmp_path / "one_repeat.npz"), "--out", str(tmp_path / "m"),
                 "--lr-schedule", "step"]) == 2
    err = capsys.readouterr().err
    assert "unknown --lr-schedule 'step'" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "m").exists()
    assert main(["cortex", "simulate", "--out", str(tmp_path / "s"), "--face-fraction", "1.5"]) == 2
    assert "--face-fraction must be in [0, 1]" in capsys.readouterr().err and not (tmp_path / "s").exists()
