"""Elementwise activations. The cache of each is the boolean mask the gradient passes through."""
import numpy as np


def relu_forward(x):
    """x (any shape) -> y = max(x, 0), cache."""
    mask = x > 0
    return x * mask, mask


def relu_backward(dy, cache):
    """dy (same shape) -> dx = dy where x > 0, else 0."""
    return dy * cache


def relu6_forward(x):
    """x -> y = min(max(x, 0), 6), cache (as in MobileNetV2)."""
    mask = (x > 0) & (x < 6)
    return np.clip(x, 0, 6), mask


def relu6_backward(dy, cache):
    """dy -> dx = dy where 0 < x < 6, else 0."""
    return dy * cache
