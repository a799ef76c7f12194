"""The selection-cost study: per-round time ratios and a tiny end-to-end measurement in fresh processes."""

from __future__ import annotations

import numpy as np
import pytest

from tunelab.active.scale import measure, round_ratios


def test_round_ratios_divide_the_same_rounds():
    times = {"badge": [1.0, 2.0, 4.0, 1.0], "vapal-badge": [1.5, 2.0, 2.0, 3.0]}
    out = round_ratios(times, "badge")
    assert out["badge"] == {"median": 1.0, "iqr": [1.0, 1.0]}
    ratios = np.array([1.5, 1.0, 0.5, 3.0])
    assert out["vapal-badge"]["median"] == pytest.approx(np.median(ratios))
    assert out["vapal-badge"]["iqr"] == pytest.approx([np.percentile(ratios, 25), np.percentile(ratios, 75)])


@pytest.mark.slow
def test_measure_reports_memory_per_process_and_same_process_ratios():
    out = measure(["badge", "vapal-badge"], pool_size=600, dim=16, classes=4, n=10, repeats=1, timing_rounds=3)
    for kind in ("badge", "vapal-badge"):
        assert out["results"][kind]["unique"] == 10 and out["results"][kind]["peak_rss_rise_mb"] >= 0
        assert len(out["same_process"]["times_s"][kind]) == 3
    assert out["same_process"]["ratio"]["badge"]["median"] == 1.0
