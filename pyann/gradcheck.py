"""Finite-difference gradient checks, for the tests of every op and layer.

Central differences in float64: df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / 2h, with error
O(h^2). Compare with `max_relative_error`, which stays meaningful for both tiny and large
gradients.
"""
from __future__ import annotations

import numpy as np


def numerical_gradient(f, x: np.ndarray, dy: np.ndarray | None = None, h: float = 1e-6) -> np.ndarray:
    """Gradient of sum(f(x) * dy) with respect to x (f(x) scalar when dy is None).

    f is called with x modified in place and must not keep a reference to it.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = f(x)
        x[i] = old - h
        minus = f(x)
        x[i] = old
        diff = (plus - minus) if dy is None else np.sum((plus - minus) * dy)
        grad[i] = diff / (2 * h)
        it.iternext()
    return grad


def max_relative_error(a: np.ndarray, b: np.ndarray, floor: float = 1e-8) -> float:
    """max |a - b| / max(|a| + |b|, floor), elementwise."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), floor)))
