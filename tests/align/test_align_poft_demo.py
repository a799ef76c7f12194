"""The PoFT demo section end to end, with tiny-llama standing in for every model."""

import pytest

from tunelab.align.poft import demo as poft_demo


@pytest.mark.slow
def test_demo_section_has_figures_tables_and_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(poft_demo, "DEMO_SETTINGS", {"target": "tiny-llama", "aligned": ("tiny-llama",), "n_train": 4,
                                                     "n_test": 2, "noise": (0.5,), "seeds": (0,), "epochs": 1,
                                                     "cost_steps": 1, "batch_size": 2})
    [section] = poft_demo.run(tmp_path)
    assert section.error is None
    assert all(figure.path.is_file() for figure in section.figures) and len(section.figures) == 2
    assert {"SFT accuracy at 50% noise", "POFT accuracy at 50% noise", "AUC tiny-llama"} <= set(section.key_numbers)
    runs = section.results["runs"]
    assert [r["method"] for r in runs] == ["sft", "poft"] and all(r["steps"] == 2 for r in runs)
    assert 0.0 <= section.key_numbers["AUC tiny-llama"] <= 1.0
