"""tunelab.stats against numpy/scipy's own definitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from tunelab.stats import paired_difference, sample_sd, summarise, t_half_width

VALUES = [0.71, 0.69, 0.74, 0.70, 0.66]


def test_sample_sd_is_ddof_one():
    assert sample_sd(VALUES) == pytest.approx(float(np.std(VALUES, ddof=1)), rel=1e-12)
    assert sample_sd(VALUES) != pytest.approx(float(np.std(VALUES, ddof=0)), rel=1e-6)
    assert sample_sd([0.5]) == 0.0


def test_summary_interval_equals_scipy_t_interval():
    s = summarise(VALUES)
    low, high = sps.t.interval(0.95, len(VALUES) - 1, loc=np.mean(VALUES), scale=sps.sem(VALUES))
    assert s["mean"] - s["ci95"] == pytest.approx(low, rel=1e-10)
    assert s["mean"] + s["ci95"] == pytest.approx(high, rel=1e-10)
    assert s["n"] == 5 and s["values"] == VALUES
    assert t_half_width(1.0, 1) == 0.0


def test_summary_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        summarise([])


def test_paired_difference_equals_scipy_ttest_rel():
    a = {0: 0.71, 1: 0.69, 2: 0.74, 3: 0.70, 9: 0.5}
    b = {0: 0.70, 1: 0.66, 2: 0.73, 3: 0.71}
    out = paired_difference(a, b)
    shared = [0, 1, 2, 3]
    ref = sps.ttest_rel([a[k] for k in shared], [b[k] for k in shared])
    assert out["n"] == 4
    assert out["mean"] == pytest.approx(np.mean([a[k] - b[k] for k in shared]))
    assert out["p"] == pytest.approx(float(ref.pvalue), rel=1e-9)
    assert paired_difference({0: 1.0}, {0: 0.0}) is None
