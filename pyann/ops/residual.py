"""Residual add: y = a + b (the body and the shortcut of a residual block)."""


def add_forward(a, b):
    """a, b (same shape) -> y = a + b, cache (None: the gradient needs nothing)."""
    if a.shape != b.shape:
        raise ValueError(f"residual add: shapes differ, body {a.shape} vs shortcut {b.shape}")
    return a + b, None


def add_backward(dy, cache):
    """dy -> (da, db) = (dy, dy): the gradient flows unchanged into both branches."""
    return dy, dy
