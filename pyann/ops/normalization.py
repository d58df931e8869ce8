"""Batch normalisation over (N, H, W) for each channel of an NCHW tensor.

Train mode normalises with the batch statistics and updates the running statistics in place:
    mu = mean_{n,h,w} x,  var = mean_{n,h,w} (x - mu)^2,  xhat = (x - mu) / sqrt(var + eps)
    y = gamma * xhat + beta
    running_mean <- (1 - momentum) running_mean + momentum mu
    running_var  <- (1 - momentum) running_var  + momentum var * M / (M - 1)   (unbiased, M = N H W)
Eval mode uses the running statistics, which folds to one affine map y = x * scale + shift.
batchnorm2d_relu_* is the same followed by a ReLU, as one op (the pre-activation blocks use it).
"""
import numpy as np


def _check(x, gamma):
    if x.ndim != 4:
        raise ValueError(f"batchnorm2d expects input of rank 4 (N, C, H, W), got shape {x.shape}")
    if x.shape[1] != gamma.shape[0]:
        raise ValueError(f"batchnorm2d has {gamma.shape[0]} channels, input has {x.shape[1]} "
                         f"(shape {x.shape})")


def _channel_sum(a):
    """sum over (N, H, W) of an (N, C, H, W) array -> (C,), in a's dtype."""
    n, c = a.shape[:2]
    return a.reshape(n, c, -1).sum(axis=2).sum(axis=0)


def batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training=True,
                        momentum=0.1, eps=1e-5):
    """x (N, C, H, W), gamma, beta, running_mean, running_var (C,) -> y (N, C, H, W), cache.

    running_mean/var are updated in place in train mode (they are the layer's buffers).
    """
    _check(x, gamma)
    dt = x.dtype.type
    b = (1, -1, 1, 1)
    if not training:
        inv = 1.0 / np.sqrt(running_var.astype(x.dtype) + dt(eps))
        scale = gamma * inv
        y = x * scale.reshape(b)
        y += (beta - running_mean.astype(x.dtype) * scale).reshape(b)
        return y, ("eval", x, running_mean.astype(x.dtype), inv, gamma)
    n, c, h, w = x.shape
    m = n * h * w
    if m < 2:
        raise ValueError(f"batchnorm2d in train mode needs more than one value per channel, got input {x.shape}")
    mu = _channel_sum(x) / dt(m)
    xc = x - mu.reshape(b)                     # centred first: var from one pass of squares,
    var = np.einsum("nchw,nchw->c", xc, xc) / dt(m)   # with no E[x^2] - mu^2 cancellation
    inv = dt(1.0) / np.sqrt(var + dt(eps))
    # xhat = xc * inv is never stored: y and the backward pass fold inv into per-channel factors
    y = xc * (gamma * inv).reshape(b)
    y += beta.reshape(b)
    running_mean *= 1.0 - momentum
    running_mean += (momentum * mu).astype(running_mean.dtype)
    running_var *= 1.0 - momentum
    running_var += (momentum * m / (m - 1) * var).astype(running_var.dtype)
    return y, ("train", xc, None, inv, gamma)


def batchnorm2d_backward(dy, cache, out=None):
    """dy (N, C, H, W) -> dx (N, C, H, W), dgamma (C,), dbeta (C,).

    Train mode, fused: dbeta = sum dy, dgamma = sum dy xhat,
        dx = gamma / sqrt(var + eps) * (dy - dbeta / M - xhat * dgamma / M),
    with xhat = xc / sqrt(var + eps) and xc the centred input the cache holds.
    Eval mode: dx = dy * gamma / sqrt(running_var + eps).
    out: where to write dx (may be dy itself when the caller owns it); None allocates.
    Train mode consumes the cache (its xc is overwritten): call backward once per forward.
    """
    mode, a, mean, inv, gamma = cache
    b = (1, -1, 1, 1)
    dbeta = _channel_sum(dy)
    if mode == "eval":
        xhat_sum = np.einsum("nchw,nchw->c", dy, a) - dbeta * mean
        return np.multiply(dy, (gamma * inv).reshape(b), out=out), xhat_sum * inv, dbeta
    xc = a
    n, c, h, w = dy.shape
    m = dy.dtype.type(n * h * w)
    dgamma = np.einsum("nchw,nchw->c", dy, xc) * inv
    k = gamma * inv
    dx = np.multiply(dy, k.reshape(b), out=out)
    xc *= (k * dgamma * inv / m).reshape(b)  # xc is not needed after this: reuse its memory
    dx -= xc
    dx -= (k * dbeta / m).reshape(b)
    return dx, dgamma, dbeta


def batchnorm2d_relu_forward(x, gamma, beta, running_mean, running_var, training=True,
                             momentum=0.1, eps=1e-5):
    """y = relu(batchnorm2d(x)): x (N, C, H, W) -> y (N, C, H, W), cache; arguments as
    batchnorm2d_forward. The ReLU runs in place on the BN output and stores no mask (y > 0 is
    the mask), which saves a pass, an allocation and a mask per call over the two ops.
    The cache holds y by reference: do not modify y in place before the backward pass.
    """
    y, cache = batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps)
    np.maximum(y, 0, out=y)
    return y, (cache, y)


def batchnorm2d_relu_backward(dy, cache):
    """dy (N, C, H, W) -> dx (N, C, H, W), dgamma (C,), dbeta (C,): the BN backward of dy
    masked by y > 0, written into the masked copy (this op owns it)."""
    bn_cache, y = cache
    dz = dy * (y > 0)
    return batchnorm2d_backward(dz, bn_cache, out=dz)
