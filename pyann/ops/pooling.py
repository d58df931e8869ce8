"""Pooling (NCHW): max, average and global average.

Both windowed pools loop over the K*K kernel taps and work on whole (N, C, Ho, Wo) strided
slices, so no window copy is made and the backward pass scatters without np.add.at:

    max: y[n, c, i, j] = max_{u, v} xp[n, c, s*i + u, s*j + v]     (xp padded with -inf)
    avg: y[n, c, i, j] = mean_{u, v} xp[n, c, s*i + u, s*j + v]    (xp padded with 0; padding
                                                                   counts in the mean)
with Ho = (H + 2p - K) // s + 1. The max gradient goes to the first maximal tap in row-major
window order, as a naive argmax loop would choose.
"""
import numpy as np

from .conv import conv_output_size


def _check(x, k, s, p, name):
    if x.ndim != 4:
        raise ValueError(f"{name} expects input of rank 4 (N, C, H, W), got shape {x.shape}")
    if k < 1 or s < 1 or p < 0 or p > k // 2:
        raise ValueError(f"{name}: need kernel >= 1, stride >= 1, 0 <= padding <= kernel // 2; "
                         f"got kernel={k}, stride={s}, padding={p}")
    ho, wo = conv_output_size(x.shape[2], k, s, p), conv_output_size(x.shape[3], k, s, p)
    if ho < 1 or wo < 1:
        raise ValueError(f"{name}: kernel {k} does not fit input {x.shape[2]}x{x.shape[3]}")
    return ho, wo


def _pad(x, p, value):
    if p == 0:
        return x
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * p, w + 2 * p), value, x.dtype)
    xp[:, :, p:p + h, p:p + w] = x
    return xp


def _tap(xp, u, v, ho, wo, s):
    return xp[:, :, u:u + s * (ho - 1) + 1:s, v:v + s * (wo - 1) + 1:s]


def maxpool2d_forward(x, kernel=2, stride=None, padding=0):
    """x (N, C, H, W) -> y (N, C, Ho, Wo), cache (the padded input and y, by reference).

    Only the running maximum is computed here (one np.maximum per tap); which tap won is
    worked out in the backward pass, so inference and evaluation never pay for it.
    """
    s = kernel if stride is None else stride
    ho, wo = _check(x, kernel, s, padding, "maxpool2d")
    xp = _pad(x, padding, -np.inf)
    y = np.maximum(_tap(xp, 0, 0, ho, wo, s), _tap(xp, 0, 1, ho, wo, s)) if kernel > 1 \
        else _tap(xp, 0, 0, ho, wo, s).copy()
    for t in range(2, kernel * kernel):
        np.maximum(y, _tap(xp, t // kernel, t % kernel, ho, wo, s), out=y)
    return y, (xp, y, x.shape, kernel, s, padding)


def maxpool2d_backward(dy, cache):
    """dy (N, C, Ho, Wo) -> dx (N, C, H, W): dy routed to each window's first maximal tap.

    Taps are visited in window order; `taken` marks windows whose maximum was already routed,
    so a tie (common after a ReLU: all-zero windows) sends the gradient to one tap only.
    """
    xp, y, x_shape, k, s, p = cache
    n, c, h, w = x_shape
    ho, wo = dy.shape[2:]
    covered = s == k and p == 0 and h == ho * k and w == wo * k   # every input in one window
    dxp = np.empty(xp.shape, dy.dtype) if covered else np.zeros(xp.shape, dy.dtype)
    taken = None
    for t in range(k * k):
        hit = _tap(xp, t // k, t % k, ho, wo, s) == y
        if taken is None:
            taken = hit.copy()
        else:
            np.greater(hit, taken, out=hit)          # hit and not yet taken
            if t < k * k - 1:
                taken |= hit
        target = _tap(dxp, t // k, t % k, ho, wo, s)
        if s >= k:   # windows do not overlap: write instead of add
            np.multiply(dy, hit, out=target)
        else:
            target += dy * hit
    return dxp[:, :, p:p + h, p:p + w] if p else dxp


def avgpool2d_forward(x, kernel=2, stride=None, padding=0):
    """x (N, C, H, W) -> y (N, C, Ho, Wo), cache."""
    s = kernel if stride is None else stride
    ho, wo = _check(x, kernel, s, padding, "avgpool2d")
    xp = _pad(x, padding, 0)
    y = _tap(xp, 0, 0, ho, wo, s).copy()
    for t in range(1, kernel * kernel):
        y += _tap(xp, t // kernel, t % kernel, ho, wo, s)
    y *= x.dtype.type(1.0 / (kernel * kernel))
    return y, (x.shape, kernel, s, padding)


def avgpool2d_backward(dy, cache):
    """dy (N, C, Ho, Wo) -> dx (N, C, H, W): each tap gets dy / K^2."""
    x_shape, k, s, p = cache
    n, c, h, w = x_shape
    ho, wo = dy.shape[2:]
    g = dy * dy.dtype.type(1.0 / (k * k))
    dxp = np.zeros((n, c, h + 2 * p, w + 2 * p), dy.dtype)
    for t in range(k * k):
        _tap(dxp, t // k, t % k, ho, wo, s)[...] += g
    return dxp[:, :, p:p + h, p:p + w] if p else dxp


def global_avgpool_forward(x):
    """x (N, C, H, W) -> y (N, C) = mean over H, W; cache."""
    if x.ndim != 4:
        raise ValueError(f"global_avgpool expects input of rank 4 (N, C, H, W), got shape {x.shape}")
    n, c, h, w = x.shape
    return x.reshape(n, c, h * w).mean(axis=2, dtype=x.dtype), x.shape


def global_avgpool_backward(dy, cache):
    """dy (N, C) -> dx (N, C, H, W) = dy / (H W) broadcast over the plane."""
    n, c, h, w = cache
    g = dy * dy.dtype.type(1.0 / (h * w))
    return np.broadcast_to(g[:, :, None, None], cache).copy()
