"""Losses. Each forward returns (loss, cache); each backward returns the gradient of the mean
loss with respect to the prediction, so the training loop never divides by the batch size."""
import numpy as np


def softmax(logits):
    """logits (N, C) -> probabilities (N, C), numerically stable (row max subtracted)."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy_forward(logits, labels, label_smoothing=0.0):
    """Fused softmax + cross-entropy, mean over the batch.

    logits (N, C) float, labels (N,) int in [0, C) -> loss (scalar), cache.
    With smoothing e the target is q = (1 - e) * onehot + e / C and the loss is
    -mean_n sum_c q[n, c] * log softmax(logits)[n, c]; log-softmax uses log-sum-exp so large
    logits do not overflow.
    """
    n, c = logits.shape
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= c):
        raise ValueError(f"labels must lie in [0, {c}), got range [{labels.min()}, {labels.max()}]")
    z = logits - logits.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(z).sum(axis=1, keepdims=True))
    log_p = z - log_sum
    target = np.full_like(logits, label_smoothing / c)
    target[np.arange(n), labels] += 1.0 - label_smoothing
    loss = -(target * log_p).sum() / max(n, 1)
    return loss, (np.exp(log_p), target)


def softmax_cross_entropy_backward(cache):
    """-> dlogits (N, C) = (softmax(logits) - q) / N."""
    p, target = cache
    return (p - target) / max(p.shape[0], 1)


def mse_forward(pred, target):
    """Mean squared error over all elements: loss = mean((pred - target)^2). pred, target same shape."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {pred.shape} vs {target.shape}")
    diff = pred - target
    return float((diff * diff).mean()) if diff.size else 0.0, diff


def mse_backward(cache):
    """-> dpred = 2 (pred - target) / size."""
    diff = cache
    return 2.0 * diff / max(diff.size, 1)


def nmse_forward(pred, target):
    """Normalised squared error over the whole batch, LANA's distillation loss:
    loss = ||pred - target||^2 / ||target||^2, sums over every element. pred, target same shape.

    It is 0 for a perfect copy and 1 for pred = 0, whatever the scale of the target. A target
    that is all zeros has no scale to normalise by: the loss is then the plain mean squared
    error mean(pred^2) (0 exactly when pred is 0 too), so it stays finite.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {pred.shape} vs {target.shape}")
    diff = pred - target
    # accumulate in float64: ||target||^2 of a large float32 activation loses digits otherwise
    scale = float(np.sum(np.square(target, dtype=np.float64)))
    if scale == 0.0:
        scale = float(max(diff.size, 1))
    return float(np.sum(np.square(diff, dtype=np.float64))) / scale, (diff, scale)


def nmse_backward(cache):
    """-> dpred = 2 (pred - target) / ||target||^2 (or / size for an all-zero target)."""
    diff, scale = cache
    return (diff * (2.0 / scale)).astype(diff.dtype, copy=False)
