"""Per-pixel (per-unit) metrics for responses R[image, repeat, unit] and predictions P[image, unit].

Definitions follow the field's conventions (neuralpredictors / Cadena et al. / Brain-Score):
  noise variance     s2_noise = mean over images of the variance over repeats (ddof=1)
  total variance     Var_total = variance over all trials (images x repeats, ddof=1)
  explainable var.   EV = (Var_total - s2_noise) / Var_total
  FEVE               1 - (MSE - s2_noise) / (Var_total - s2_noise), MSE over all single trials
  single-trial r     corr(P_i, R_ir) over all trials; correlation to average: corr(P_i, mean_r R_ir)
  jackknife oracle   corr(R_ir, mean of the other repeats of image i) over all trials
  split-half ceiling Spearman-Brown corrected corr between the means of two halves of the repeats
"""

from __future__ import annotations

import numpy as np

from tunelab.errors import UserError


def _check(responses: np.ndarray, predictions: np.ndarray | None = None, min_repeats: int = 2) -> None:
    if responses.ndim != 3:
        raise UserError(f"responses must be [image, repeat, unit], got shape {list(responses.shape)}")
    if responses.shape[1] < min_repeats:
        raise UserError(f"a noise ceiling needs at least {min_repeats} repeats per image, got {responses.shape[1]}")
    if predictions is not None and predictions.shape != (responses.shape[0], responses.shape[2]):
        raise UserError(f"predictions {list(predictions.shape)} do not match responses "
                        f"[{responses.shape[0]} images, {responses.shape[2]} units]")


def columnwise_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching columns of a and b ([samples, units]); 0 where a column is constant."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    denominator = np.sqrt((a ** 2).sum(0) * (b ** 2).sum(0))
    return np.where(denominator > 0, (a * b).sum(0) / np.where(denominator > 0, denominator, 1), 0.0)


def noise_variance(responses: np.ndarray) -> np.ndarray:
    _check(responses)
    return responses.var(axis=1, ddof=1).mean(axis=0)


def total_variance(responses: np.ndarray) -> np.ndarray:
    return responses.reshape(-1, responses.shape[-1]).var(axis=0, ddof=1)


def explainable_variance(responses: np.ndarray) -> np.ndarray:
    """Fraction of the response variance that is stimulus-driven (can be negative for pure-noise units)."""
    total = total_variance(responses)
    return (total - noise_variance(responses)) / total


def feve(responses: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Fraction of explainable variance explained, per unit."""
    _check(responses, predictions)
    mse = ((responses - predictions[:, None, :]) ** 2).mean(axis=(0, 1))
    s2_noise = noise_variance(responses)
    return 1 - (mse - s2_noise) / (total_variance(responses) - s2_noise)


def single_trial_correlation(responses: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    _check(responses, predictions, min_repeats=1)
    repeated = np.broadcast_to(predictions[:, None, :], responses.shape)
    return columnwise_corr(repeated.reshape(-1, responses.shape[-1]), responses.reshape(-1, responses.shape[-1]))


def correlation_to_average(responses: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    _check(responses, predictions, min_repeats=1)
    return columnwise_corr(predictions, responses.mean(axis=1))


def jackknife_oracle(responses: np.ndarray) -> np.ndarray:
    """corr(R_ir, mean of image i's other repeats) over all trials: the leave-one-out noise ceiling of single-trial r."""
    _check(responses)
    repeats = responses.shape[1]
    others = (responses.sum(axis=1, keepdims=True) - responses) / (repeats - 1)
    return columnwise_corr(others.reshape(-1, responses.shape[-1]), responses.reshape(-1, responses.shape[-1]))


def split_half_ceiling(responses: np.ndarray, n_splits: int = 10, seed: int = 0) -> np.ndarray:
    """Brain-Score style: corr between the means of two random halves of the repeats, Spearman-Brown corrected,
    averaged over random splits."""
    _check(responses)
    rng = np.random.default_rng(seed)
    repeats = responses.shape[1]
    values = []
    for _ in range(n_splits):
        order = rng.permutation(repeats)
        first, second = order[: repeats // 2], order[repeats // 2: 2 * (repeats // 2)]
        r = columnwise_corr(responses[:, first].mean(1), responses[:, second].mean(1))
        values.append(2 * r / (1 + r))
    return np.mean(values, axis=0)


def evaluate(responses: np.ndarray, predictions: np.ndarray) -> dict[str, np.ndarray]:
    """All per-unit metrics, plus the correlation to average normalised by the split-half ceiling."""
    ceiling = split_half_ceiling(responses)
    to_average = correlation_to_average(responses, predictions)
    return {
        "single_trial_r": single_trial_correlation(responses, predictions),
        "correlation_to_average": to_average,
        "oracle": jackknife_oracle(responses),
        "explainable_variance": explainable_variance(responses),
        "feve": feve(responses, predictions),
        "ceiling": ceiling,
        "normalised_correlation": np.where(ceiling > 0, to_average / np.where(ceiling > 0, ceiling, 1), np.nan),
    }


def summarise(per_unit: dict[str, np.ndarray], min_explainable_variance: float = 0.0) -> dict[str, float]:
    """Medians over units whose explainable variance exceeds the threshold (FEVE is undefined for pure noise)."""
    keep = per_unit["explainable_variance"] > min_explainable_variance
    return {f"median_{name}": float(np.nanmedian(values[keep])) if keep.any() else float("nan")
            for name, values in per_unit.items()} | {"units": int(keep.sum())}
