"""Mini-batch iteration."""

from __future__ import annotations

from typing import Iterator

import numpy as np

__all__ = ["batches", "num_batches"]


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches :func:`batches` yields for ``n`` samples."""
    return n // batch_size if drop_last else -(-n // batch_size)


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool = False,
            rng: np.random.Generator | int | None = None,
            drop_last: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(xb, yb)`` mini-batches of ``x`` (N, ...) and ``y`` (N, ...) along axis 0.

    Without shuffling the batches are views, in order. With ``shuffle=True`` the order is a
    permutation drawn from ``rng`` (a ``numpy.random.Generator`` or an int seed; required, so
    that every run can be reproduced) and the batches are copies. The last batch is smaller
    when ``batch_size`` does not divide N, unless ``drop_last=True``.
    """
    n = len(x)
    if len(y) != n:
        raise ValueError(f"batches: x has {n} samples but y has {len(y)}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batches: batch_size must be a positive int, got {batch_size!r}")
    stop = n - n % batch_size if drop_last else n
    if not shuffle:
        for start in range(0, stop, batch_size):
            yield x[start:start + batch_size], y[start:start + batch_size]
        return
    if rng is None:
        raise ValueError("batches: shuffle=True needs rng= (a numpy.random.Generator or an "
                         "int seed) so that the order is reproducible")
    order = np.random.default_rng(rng).permutation(n)
    for start in range(0, stop, batch_size):
        index = order[start:start + batch_size]
        yield x[index], y[index]
