"""Rank correlations with ties, hand-written in NumPy: Kendall's tau-b and Spearman's rho.

They answer the substitution study's question "does the LANA score (or the distillation loss)
order the candidates as their accuracy after fine-tuning does?". The inputs are tiny (a few
candidates per position), so the O(n^2) pairwise form of tau-b is the clearest and fast enough.

Undefined cases, chosen deliberately:
- fewer than 2 points, lengths that differ, or a non-finite value: ValueError (the caller's
  mistake; one clear line);
- a constant x or y (every value tied): the coefficient is 0/0, undefined. It returns nan, and
  `undefined_reason(x, y)` says why in words, so a report can print the reason beside "nan"
  instead of a silent blank. (scipy returns nan here too.)
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def _pair(x: Sequence[float], y: Sequence[float]):
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.size != y.size:
        raise ValueError(f"rank correlation needs x and y of the same length, got {x.size} and {y.size}")
    if x.size < 2:
        raise ValueError(f"rank correlation needs at least 2 points, got {x.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("rank correlation needs finite values (found nan or inf)")
    return x, y


def undefined_reason(x: Sequence[float], y: Sequence[float]) -> Optional[str]:
    """Why tau-b and rho of (x, y) are undefined (None when they are defined)."""
    x, y = _pair(x, y)
    constant = [name for name, v in (("x", x), ("y", y)) if np.all(v == v[0])]
    if constant:
        return f"{' and '.join(constant)} constant over all {x.size} points (every pair tied): 0/0"
    return None


def average_ranks(v: Sequence[float]) -> np.ndarray:
    """Ranks 1..n of v's values; tied values share the mean of the ranks they span
    (e.g. [10, 20, 20, 30] -> [1, 2.5, 2.5, 4])."""
    v = np.asarray(v, dtype=np.float64).ravel()
    values, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts          # 0-based rank of each distinct value's first copy
    return (first + (counts + 1) / 2.0)[inverse]


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b:

        tau_b = (n_c - n_d) / sqrt((n_0 - n_1) (n_0 - n_2))

    over the n_0 = n (n - 1) / 2 pairs i < j: n_c pairs concordant (sign(x_i - x_j) ==
    sign(y_i - y_j) != 0), n_d discordant (opposite non-zero signs), n_1 = sum_t t (t - 1) / 2
    over the groups of t tied x values, n_2 the same for y. Pairs tied in x or y count in
    neither n_c nor n_d. nan when x or y is constant (see the module docstring)."""
    x, y = _pair(x, y)
    if undefined_reason(x, y):
        return float("nan")
    iu = np.triu_indices(x.size, k=1)
    sx = np.sign(x[:, None] - x[None, :])[iu]
    sy = np.sign(y[:, None] - y[None, :])[iu]
    s = float(np.sum(sx * sy))                  # n_c - n_d
    n0 = x.size * (x.size - 1) / 2.0
    n1 = n0 - np.count_nonzero(sx == 0)         # n_0 - n_1: pairs not tied in x
    n2 = n0 - np.count_nonzero(sy == 0)
    return s / np.sqrt(n1 * n2)


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho with ties: the Pearson correlation of the average ranks,

        rho = sum_i (r_i - mean r)(s_i - mean s) / sqrt(sum_i (r_i - mean r)^2 sum_i (s_i - mean s)^2)

    with r = average_ranks(x), s = average_ranks(y). (The shortcut 1 - 6 sum d^2 / (n (n^2 - 1))
    is exact only without ties, so it is not used.) nan when x or y is constant."""
    x, y = _pair(x, y)
    if undefined_reason(x, y):
        return float("nan")
    r, s = average_ranks(x), average_ranks(y)
    r, s = r - r.mean(), s - s.mean()
    return float(np.sum(r * s) / np.sqrt(np.sum(r * r) * np.sum(s * s)))


def rank_correlations(x: Sequence[float], y: Sequence[float]) -> dict:
    """{"n", "kendall_tau_b", "spearman_rho", "undefined": reason or None} of one (x, y)."""
    return {"n": int(np.asarray(x).size), "kendall_tau_b": kendall_tau_b(x, y),
            "spearman_rho": spearman_rho(x, y), "undefined": undefined_reason(x, y)}
