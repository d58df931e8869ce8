"""Elementwise activations. The cache of each is the boolean mask the gradient passes through."""
import numpy as np


def relu_forward(x):
    """x (any shape) -> y = max(x, 0), cache."""
    mask = x > 0
    return x * mask, mask


def relu_backward(dy, cache):
    """dy (same shape) -> dx = dy where x > 0, else 0."""
    return dy * cache


def activity_l1_backward(y, strength):
    """y (N, ...) = a ReLU's output -> d(penalty)/dy, the same shape.

    The activity penalty  P = strength * (1/N) * sum_{n,j} |y[n, j]|  (mean over the batch of
    each sample's L1 norm, the scale of a batch-mean loss) pushes hidden units to exactly 0 on
    most inputs: sparse activations are what zero-skipping inference skips. For y >= 0,
    dP/dy = strength * [y > 0] / N (the subgradient 0 at y == 0, where ReLU passes nothing back
    anyway). Returns (P, dP/dy)."""
    n = max(y.shape[0], 1)
    active = y > 0
    penalty = float(strength) * float(np.abs(y).sum()) / n
    return penalty, active * y.dtype.type(strength / n)


def relu6_forward(x):
    """x -> y = min(max(x, 0), 6), cache (as in MobileNetV2)."""
    mask = (x > 0) & (x < 6)
    return np.clip(x, 0, 6), mask


def relu6_backward(dy, cache):
    """dy -> dx = dy where 0 < x < 6, else 0."""
    return dy * cache
