"""The library owns the map's files (DomainMap.save/load), and the CLI exposes what the Python API can set."""

import json

import numpy as np
import pytest

from tunelab.cli import main
from tunelab.cortex.domain_map import DomainMap
from tunelab.errors import UserError


def _domain_map(seed=0) -> DomainMap:
    rng = np.random.default_rng(seed)
    labels = rng.integers(-1, 3, size=(5, 7))
    return DomainMap(labels, {0: "colour", 1: "edges", 2: "curvature"},
                     {d: {"colour": float(rng.normal()), "edges": float(rng.normal())} for d in range(3)},
                     rng.integers(0, 100, size=(20, 4)), np.sort(rng.random((20, 4)), axis=1)[:, ::-1],
                     {0: rng.integers(0, 100, 5), 1: rng.integers(0, 100, 3), 2: rng.integers(0, 100, 4)},
                     1234.5, {"n_domains": 3, "criterion": "merge_gap", "scores": {"3": 1.5}},
                     rng.permutation(35)[:20])


def test_save_load_round_trip(tmp_path):
    original = _domain_map()
    written = original.save(tmp_path, extra_summary={"mei_activation": {"0": 2.0}})
    back = DomainMap.load(tmp_path)
    for name in ("domain_map", "top_indices", "top_values", "unit_pixels"):
        np.testing.assert_array_equal(getattr(back, name), getattr(original, name))
    assert back.labels == original.labels and back.label_scores == original.label_scores
    assert sorted(back.domain_preferred) == sorted(original.domain_preferred)
    for d, indices in original.domain_preferred.items():
        np.testing.assert_array_equal(back.domain_preferred[d], indices)
    assert back.images_per_second == original.images_per_second and back.clustering == original.clustering
    assert json.loads((tmp_path / "map.json").read_text()) == written and written["mei_activation"] == {"0": 2.0}


def test_load_reads_the_older_per_domain_layout_and_refuses_missing(tmp_path):
    original = _domain_map(1)
    np.savez(tmp_path / "map.npz", domain_map=original.domain_map, top_indices=original.top_indices,
             top_values=original.top_values, **{f"domain_{d}": v for d, v in original.domain_preferred.items()})
    (tmp_path / "map.json").write_text(json.dumps(original.summary()))
    back = DomainMap.load(tmp_path)
    assert back.labels == original.labels and back.unit_pixels is None
    np.testing.assert_array_equal(back.domain_preferred[2], original.domain_preferred[2])
    with pytest.raises(UserError, match="no map in"):
        DomainMap.load(tmp_path / "elsewhere")
    (tmp_path / "map.json").write_text(json.dumps({"labels": {}}))
    with pytest.raises(UserError, match="lacks images_per_second, clustering"):
        DomainMap.load(tmp_path)


def test_simulate_exposes_domains_noise_warp(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["cortex", "simulate", "--out", str(out), "--n-images", "50", "--height", "12", "--width", "12",
                 "--domains", "colour:0.25,texture,edges:1", "--noise-sd", "0.1", "--shared-noise-sd", "0",
                 "--boundary-warp", "0", "--vessels", "0", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    sheet = json.loads((out / "sheet.json").read_text())
    assert summary["domains"] == ["colour:0.25", "texture", "edges:1"] and summary["masked_pixels"] == 0
    assert sheet["noise_sd"] == 0.1 and sheet["shared_noise_sd"] == 0 and sheet["boundary_warp"] == 0
    with np.load(out / "recording.npz") as saved:
        assert sorted(np.unique(saved["domain_map"])) == [0, 1, 2]
    for argv, message in [(["--domains", "colour:x"], "is not a number"), (["--domains", "nosuch"], "nosuch"),
                          (["--domains", "colour,,edges"], "empty domain"), (["--noise-sd", "-1"], ">= 0"),
                          (["--vessels", "-2"], ">= 0")]:
        assert main(["cortex", "simulate", "--out", str(tmp_path / "bad"), *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "bad").exists()


def test_map_domains_help_names_the_rule_the_code_uses(capsys):
    from tunelab.cortex.pipeline import COUNT_RULE

    main(["cortex", "map", "--help"])
    text = " ".join(word for word in capsys.readouterr().out.split() if word not in "│╭╮╰╯─")
    assert COUNT_RULE["readout"] == "merge_gap"  # the default profile's rule, which the help describes
    assert "largest relative jump in Ward merge height of the pixels' readout profiles" in text
