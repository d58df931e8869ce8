"""Array transforms for image batches: uint8 -> float32, per-channel statistics."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["to_float", "channel_stats", "check_float_input", "FLOAT_INPUT_HINT"]

# The one message every entry point that runs a model gives for integer (raw image) input:
# fit/evaluate/predict (pyann.train) and plan.run (pyann.infer) all call check_float_input.
FLOAT_INPUT_HINT = ("models and inference plans take float inputs scaled as in training "
                    "(raw uint8 images: pyann.data.to_float)")


def check_float_input(x, where: str) -> np.ndarray:
    """``np.asarray(x)`` if its dtype is a floating type; otherwise ValueError
    ``"<where>: x has dtype uint8; models and inference plans take float inputs scaled as in
    training (raw uint8 images: pyann.data.to_float)"``. Raw uint8 images (0..255) would otherwise run through a
    model trained on [0, 1] inputs and give plausible but wrong outputs."""
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise ValueError(f"{where}: x has dtype {arr.dtype}; {FLOAT_INPUT_HINT}")
    return arr


def to_float(x: np.ndarray, mean: Sequence[float] | np.ndarray | None = None,
             std: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """uint8 images (N, C, H, W) -> float32 in [0, 1], optionally normalised per channel.

    ``mean`` and ``std`` (length C, on the [0, 1] scale, e.g. from :func:`channel_stats` of
    the training set) give ``(x / 255 - mean) / std``. Returns a new float32 array of the
    same shape.
    """
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(f"to_float: x must be uint8 images, got {x.dtype}")
    out = x.astype(np.float32)
    out *= np.float32(1.0 / 255.0)
    if mean is None and std is None:
        return out
    if x.ndim != 4:
        raise ValueError(f"to_float: per-channel normalisation needs NCHW images, got shape {x.shape}")
    channels = x.shape[1]
    shape = (1, channels, 1, 1)
    if mean is not None:
        mean = _per_channel(mean, channels, "mean")
        out -= mean.reshape(shape)
    if std is not None:
        std = _per_channel(std, channels, "std")
        if np.any(std <= 0):
            raise ValueError(f"to_float: std must be positive, got {std}")
        out /= std.reshape(shape)
    return out


def _per_channel(values, channels: int, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float32).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, channels)
    if arr.size != channels:
        raise ValueError(f"to_float: {what} has {arr.size} values for {channels} channels")
    return arr


def channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 images (N, C, H, W), on the [0, 1] scale.

    Accumulates in float64 over chunks of images, so no full-size float copy is made.
    Returns two float64 arrays of shape (C,).
    """
    x = np.asarray(x)
    if x.ndim != 4 or len(x) == 0:
        raise ValueError(f"channel_stats: expected non-empty NCHW images, got shape {x.shape}")
    total = np.zeros(x.shape[1])
    total_sq = np.zeros(x.shape[1])
    for start in range(0, len(x), chunk):
        block = x[start:start + chunk].astype(np.float64)
        total += block.sum(axis=(0, 2, 3))
        total_sq += np.square(block).sum(axis=(0, 2, 3))
    count = len(x) * x.shape[2] * x.shape[3]
    mean = total / count
    var = np.maximum(total_sq / count - mean ** 2, 0.0)
    return mean / 255.0, np.sqrt(var) / 255.0
