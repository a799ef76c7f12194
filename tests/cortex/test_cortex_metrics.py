"""Metrics against their formulas (explicit loops) and against simulated data whose variances are known."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunelab.cortex import metrics
from tunelab.errors import UserError


def loop_reference(responses, predictions):
    """Straightforward per-unit loops, written from the definitions."""
    n_img, n_rep, n_units = responses.shape
    out = {k: np.zeros(n_units) for k in ("noise", "total", "feve", "oracle", "single", "average")}
    for u in range(n_units):
        r = responses[:, :, u]
        noise = np.mean([np.var(r[i], ddof=1) for i in range(n_img)])
        trials = r.ravel()
        total = np.var(trials, ddof=1)
        mse = np.mean([(r[i, j] - predictions[i, u]) ** 2 for i in range(n_img) for j in range(n_rep)])
        others = np.array([[(r[i].sum() - r[i, j]) / (n_rep - 1) for j in range(n_rep)] for i in range(n_img)])
        out["noise"][u], out["total"][u] = noise, total
        out["feve"][u] = 1 - (mse - noise) / (total - noise)
        out["oracle"][u] = np.corrcoef(others.ravel(), trials)[0, 1]
        out["single"][u] = np.corrcoef(np.repeat(predictions[:, u], n_rep), trials)[0, 1]
        out["average"][u] = np.corrcoef(predictions[:, u], r.mean(1))[0, 1]
    return out


@settings(max_examples=15, deadline=None)
@given(n_img=st.integers(4, 12), n_rep=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_metrics_match_loop_reference(n_img, n_rep, seed):
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n_img, 3))
    responses = signal[:, None, :] + rng.normal(scale=0.7, size=(n_img, n_rep, 3))
    predictions = signal + rng.normal(scale=0.3, size=signal.shape)
    ref = loop_reference(responses, predictions)
    np.testing.assert_allclose(metrics.noise_variance(responses), ref["noise"], rtol=1e-6)
    np.testing.assert_allclose(metrics.total_variance(responses), ref["total"], rtol=1e-6)
    np.testing.assert_allclose(metrics.feve(responses, predictions), ref["feve"], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(metrics.jackknife_oracle(responses), ref["oracle"], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(metrics.single_trial_correlation(responses, predictions), ref["single"], rtol=1e-5)
    np.testing.assert_allclose(metrics.correlation_to_average(responses, predictions), ref["average"], rtol=1e-5)


def test_known_variances_give_known_ceilings():
    """Signal variance 1, noise variance 1, 4 repeats: EV = 1/2, FEVE(true signal) = 1, FEVE(mean) = 0,
    split-half Spearman-Brown ceiling = 1 / (1 + 1/4) = 0.8, corr-to-average of the truth = sqrt(0.8)."""
    rng = np.random.default_rng(0)
    n_img, n_rep, units = 4000, 4, 20
    signal = rng.normal(size=(n_img, units))
    responses = signal[:, None, :] + rng.normal(size=(n_img, n_rep, units))
    assert np.median(metrics.explainable_variance(responses)) == pytest.approx(0.5, abs=0.02)
    assert np.median(metrics.feve(responses, signal)) == pytest.approx(1.0, abs=0.03)
    constant = np.broadcast_to(responses.mean(axis=(0, 1)), signal.shape)
    assert np.median(metrics.feve(responses, constant)) == pytest.approx(0.0, abs=0.02)
    assert np.median(metrics.split_half_ceiling(responses)) == pytest.approx(0.8, abs=0.02)
    assert np.median(metrics.correlation_to_average(responses, signal)) == pytest.approx(np.sqrt(0.8), abs=0.02)
    # oracle: corr(s + n, s + mean of 3 noises) = 1 / sqrt(2 * (1 + 1/3))
    assert np.median(metrics.jackknife_oracle(responses)) == pytest.approx(1 / np.sqrt(2 * 4 / 3), abs=0.02)


def test_summary_excludes_noise_units_and_errors_are_one_line():
    rng = np.random.default_rng(1)
    signal = rng.normal(size=(200, 2))
    signal[:, 1] = 0  # a pure-noise unit
    responses = signal[:, None, :] + rng.normal(scale=0.5, size=(200, 3, 2))
    per_unit = metrics.evaluate(responses, signal)
    summary = metrics.summarise(per_unit, min_explainable_variance=0.1)
    assert summary["units"] == 1
    assert summary["median_feve"] == pytest.approx(per_unit["feve"][0])
    with pytest.raises(UserError, match="at least 2 repeats"):
        metrics.feve(responses[:, :1], signal)
    with pytest.raises(UserError, match="do not match"):
        metrics.feve(responses, signal[:10])
