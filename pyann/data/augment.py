"""Data augmentation for small images (NCHW float batches), seeded by a numpy Generator.

random_crop: pad by `padding` pixels (reflect or zero) and cut a random H x W window per image.
random_flip: mirror each image left-right with probability p.
normalize:   (x - mean[c]) / std[c] per channel.
CropFlip:    the standard CIFAR recipe as one callable `augment(xb, rng) -> xb`, the shape of a
             per-batch augmentation hook in a training loop.
resize:      area-averaging resize of a batch to size x size.
ProgressiveResize: progressive resizing: another augment's batches resized to a schedule of
             sizes for the first epochs, full size after; fit() tells it the epoch through
             set_epoch(epoch) and evaluates through for_validation(x).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

PAD_MODES = {"reflect": "reflect", "zero": "constant"}


def _check_batch(x, what):
    if x.ndim != 4:
        raise ValueError(f"{what} expects a batch (N, C, H, W), got shape {x.shape}")


def random_crop(x: np.ndarray, rng: np.random.Generator, padding: int = 4, mode: str = "reflect") -> np.ndarray:
    """x (N, C, H, W) -> (N, C, H, W): each image padded by `padding` and cropped back at a
    uniform random offset in [0, 2 * padding] along each axis."""
    _check_batch(x, "random_crop")
    if mode not in PAD_MODES:
        raise ValueError(f"random_crop mode must be one of {sorted(PAD_MODES)}, got {mode!r}")
    if padding < 0 or (mode == "reflect" and padding >= min(x.shape[2:])):
        raise ValueError(f"random_crop padding {padding} does not fit images {x.shape[2:]} ({mode})")
    if padding == 0:
        return x.copy()
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), mode=PAD_MODES[mode])
    oy = rng.integers(0, 2 * padding + 1, n)
    ox = rng.integers(0, 2 * padding + 1, n)
    # windows (N, C, 2p+1, 2p+1, H, W) view; advanced indices pick one window per image
    windows = sliding_window_view(xp, (h, w), axis=(2, 3))
    return windows[np.arange(n), :, oy, ox]


def random_flip(x: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """x (N, C, H, W) -> a copy with each image mirrored left-right with probability p."""
    _check_batch(x, "random_flip")
    flip = rng.random(x.shape[0]) < p
    out = x.copy()
    out[flip] = x[flip, :, :, ::-1]
    return out


def normalize(x: np.ndarray, mean, std) -> np.ndarray:
    """x (N, C, H, W) float -> (x - mean[c]) / std[c], in x's dtype."""
    _check_batch(x, "normalize")
    c = x.shape[1]
    mean = np.asarray(mean, x.dtype).reshape(-1)
    std = np.asarray(std, x.dtype).reshape(-1)
    if mean.shape != (c,) or std.shape != (c,):
        raise ValueError(f"normalize needs {c} means and stds, got {mean.shape[0]} and {std.shape[0]}")
    if np.any(std <= 0):
        raise ValueError("normalize: every std must be positive")
    return (x - mean.reshape(1, c, 1, 1)) / std.reshape(1, c, 1, 1)


class CropFlip:
    """augment(xb, rng) -> xb: random crop (padding, mode) then horizontal flip (probability p)."""

    def __init__(self, padding: int = 4, mode: str = "reflect", flip: float = 0.5):
        if mode not in PAD_MODES:
            raise ValueError(f"CropFlip mode must be one of {sorted(PAD_MODES)}, got {mode!r}")
        self.padding, self.mode, self.flip = padding, mode, flip

    def __call__(self, xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return random_flip(random_crop(xb, rng, self.padding, self.mode), rng, self.flip)

    def __repr__(self) -> str:
        return f"CropFlip(padding={self.padding}, mode={self.mode!r}, flip={self.flip})"


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) box-filter weights: output pixel i is the mean of the input interval
    [i * n_in / n_out, (i + 1) * n_in / n_out), each input pixel weighted by its overlap."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    j = np.arange(n_in)
    overlap = np.minimum(edges[1:, None], j + 1) - np.maximum(edges[:-1, None], j)
    return np.clip(overlap, 0, None) / (n_in / n_out)


def resize(x: np.ndarray, size: int) -> np.ndarray:
    """x (N, C, H, W) -> (N, C, size, size) by area averaging (a box filter, so no aliasing):
        y = A_h x A_w^T,  A (size, H) the overlap weights of _area_weights.
    An integer factor gives the exact block means; 32 -> 24 mixes neighbouring pixels."""
    _check_batch(x, "resize")
    if size < 1:
        raise ValueError(f"resize needs size >= 1, got {size}")
    h, w = x.shape[2:]
    if (h, w) == (size, size):
        return x
    a_h = _area_weights(h, size).astype(x.dtype)
    a_w = _area_weights(w, size).astype(x.dtype)
    return np.matmul(np.matmul(a_h, x), a_w.T)


class ProgressiveResize:
    """augment(xb, rng): `inner` (or nothing), then a resize to the current stage's size.

    stages: [(size, epochs), ...], trained in order, then full size for the remaining epochs.
    A convolutional network with global pooling takes any size, and a (s/32)^2-size image costs
    about that share of the convolution work, so the early epochs, where the network learns
    coarse features, run several times faster; the last epochs at full size fit it to the test
    resolution. fit() calls set_epoch(epoch) (0-based) before each epoch, and evaluates through
    for_validation(x), so each stage's test accuracy is measured at the size it trains at."""

    def __init__(self, inner=None, stages=()):
        stages = [(int(size), int(epochs)) for size, epochs in stages]
        for size, epochs in stages:
            if size < 1 or epochs < 0:
                raise ValueError(f"ProgressiveResize stages need size >= 1 and epochs >= 0, got {stages}")
        self.inner, self.stages = inner, stages
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def size(self):
        """The image size of the current epoch, or None for full size."""
        end = 0
        for size, epochs in self.stages:
            end += epochs
            if self.epoch < end:
                return size
        return None

    def for_validation(self, x: np.ndarray) -> np.ndarray:
        return x if self.size is None else resize(x, self.size)

    def __call__(self, xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.inner is not None:
            xb = self.inner(xb, rng)
        return xb if self.size is None else resize(xb, self.size)

    def __repr__(self) -> str:
        return f"ProgressiveResize({self.inner!r}, stages={self.stages})"
