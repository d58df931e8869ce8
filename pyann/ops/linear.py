"""Fully connected layer: y = x @ w + b."""
import numpy as np


def linear_forward(x, w, b):
    """x (N, D_in), w (D_in, D_out), b (D_out,) -> y (N, D_out), cache."""
    y = x @ w
    if b is not None:
        y += b
    return y, (x, w, b is not None)


def linear_backward(dy, cache, input_grad=True):
    """dy (N, D_out) -> dx (N, D_in), dw (D_in, D_out), db (D_out,) or None.

    dx = dy @ w.T, dw = x.T @ dy, db = sum_n dy. input_grad=False returns dx = None uncomputed.
    """
    x, w, has_bias = cache
    dx = dy @ w.T if input_grad else None
    dw = x.T @ dy
    db = dy.sum(axis=0) if has_bias else None
    return dx, dw, db
