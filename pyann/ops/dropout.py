"""Inverted dropout: zero each element with probability p and scale the survivors by 1/(1-p),
so the expected output equals the input and eval mode is the identity.

    y = x * mask,   mask = [u >= p] / (1 - p),  u ~ U[0, 1) drawn from a seeded Generator
"""
import numpy as np


def dropout_mask(shape, p, rng, dtype=np.float32):
    """The scaled keep-mask for `shape`, drawn from the numpy Generator `rng`."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    keep = rng.random(shape, dtype=np.float32) >= p
    return keep.astype(dtype) * np.asarray(1.0 / (1.0 - p), dtype)


def dropout_forward(x, p, rng=None, mask=None):
    """x (any shape) -> y (same shape), cache = mask. Pass `mask` to reuse a fixed mask (the
    gradient check does); otherwise one is drawn from `rng`."""
    if mask is None:
        if rng is None:
            raise ValueError("dropout_forward needs a numpy Generator (rng) or a mask")
        mask = dropout_mask(x.shape, p, rng, x.dtype)
    elif mask.shape != x.shape:
        raise ValueError(f"dropout mask shape {mask.shape} does not match input {x.shape}")
    return x * mask, mask


def dropout_backward(dy, cache):
    """dy -> dx = dy * mask."""
    return dy * cache
