"""BADGE gradient embeddings in factorised form.

The gradient of the cross-entropy at the predicted label yhat with respect to the last linear
layer is g(x) = a(x) outer h(x), with a = p - onehot(yhat) (C values) and h the penultimate
representation (d values).  Every distance BADGE needs follows from the factors:

    |g(x) - g(y)|^2 = |a_x|^2 |h_x|^2 + |a_y|^2 |h_y|^2 - 2 (a_x . a_y)(h_x . h_y)

so the n x (C*d) matrix is never built (20k x 100 x 768 floats would be 12 GB in float64).
The formula holds for any C >= 2, binary included: a two-logit softmax head gives
a = +-(1 - p_yhat) * (1, -1), so confident points shrink to the origin as they should
(returning raw embeddings for binary tasks, as some libraries do, loses the uncertainty).
"""

from __future__ import annotations

import numpy as np


def gradient_factors(probs: np.ndarray, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a, h): a = p - onehot(argmax p) of shape (n, C), and h (n, d) as float64."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError("probs must have shape (n, C) with C >= 2")
    a = probs.copy()
    a[np.arange(len(a)), probs.argmax(1)] -= 1.0
    return a, np.asarray(hidden, dtype=np.float64)


def dense_gradient_embedding(a: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The (n, C*d) matrix the factorised form avoids: for tests and small pools only."""
    return (a[:, :, None] * h[:, None, :]).reshape(len(a), -1)


class FactorisedDistances:
    """Squared distances between gradient embeddings, computed one column at a time."""

    def __init__(self, a: np.ndarray, h: np.ndarray):
        self.a, self.h = a, h
        self.sq_norms = (a * a).sum(1) * (h * h).sum(1)

    def __len__(self) -> int:
        return len(self.a)

    def to(self, j: int) -> np.ndarray:
        """|g_i - g_j|^2 for every i."""
        cross = (self.a @ self.a[j]) * (self.h @ self.h[j])
        return np.maximum(self.sq_norms + self.sq_norms[j] - 2.0 * cross, 0.0)


class DenseDistances:
    """Squared Euclidean distances between rows of a dense (n, k) matrix, one column at a time.

    A float32 matrix is used as it is (no float64 copy: half the memory and time of each column, and
    distances for D^2 sampling need no more precision); anything else is read as float64. Norms are float64.
    """

    def __init__(self, x: np.ndarray):
        x = np.asarray(x)
        self.x = x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)
        self.sq_norms = np.einsum("ij,ij->i", self.x, self.x).astype(np.float64)

    def __len__(self) -> int:
        return len(self.x)

    def to(self, j: int) -> np.ndarray:
        return np.maximum(self.sq_norms + self.sq_norms[j] - 2.0 * (self.x @ self.x[j]), 0.0)
