"""Data augmentation for small images (NCHW float batches), seeded by a numpy Generator.

random_crop: pad by `padding` pixels (reflect or zero) and cut a random H x W window per image.
random_flip: mirror each image left-right with probability p.
normalize:   (x - mean[c]) / std[c] per channel.
CropFlip:    the standard CIFAR recipe as one callable `augment(xb, rng) -> xb`, the shape of a
             per-batch augmentation hook in a training loop.
LowResFirst: progressive resizing: another augment's batches at 1/factor resolution (average
             pooling) for the first epochs, full size after; fit() tells it the epoch through
             set_epoch(epoch).
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


def downscale(x: np.ndarray, factor: int) -> np.ndarray:
    """x (N, C, H, W) -> (N, C, H / factor, W / factor): the mean of each factor x factor block."""
    _check_batch(x, "downscale")
    n, c, h, w = x.shape
    if factor < 1 or h % factor or w % factor:
        raise ValueError(f"downscale factor {factor} must divide the image size {h}x{w}")
    return x.reshape(n, c, h // factor, factor, w // factor, factor).mean(axis=(3, 5), dtype=x.dtype)


class LowResFirst:
    """augment(xb, rng): `inner` (or nothing), then for the first `epochs` epochs a downscale by
    `factor` (progressive resizing). A convolutional network with global pooling takes any size,
    and a half-size image costs about a quarter of the convolution work, so the early epochs,
    where the network learns coarse features, run ~3-4x faster; the last epochs at full size
    fit it to the test resolution. fit() calls set_epoch(epoch) (0-based) before each epoch."""

    def __init__(self, inner=None, epochs: int = 0, factor: int = 2):
        if epochs < 0 or factor < 1:
            raise ValueError(f"LowResFirst needs epochs >= 0 and factor >= 1, got {epochs}, {factor}")
        self.inner, self.epochs, self.factor = inner, epochs, factor
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def low_res(self) -> bool:
        return self.epoch < self.epochs and self.factor > 1

    def __call__(self, xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.inner is not None:
            xb = self.inner(xb, rng)
        return downscale(xb, self.factor) if self.low_res else xb

    def __repr__(self) -> str:
        return f"LowResFirst({self.inner!r}, epochs={self.epochs}, factor={self.factor})"
