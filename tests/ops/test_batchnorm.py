"""BatchNorm2d op: naive reference, running statistics, gradients in train and eval mode."""
import numpy as np
import pytest

from pyann.gradcheck import max_relative_error, numerical_gradient
from pyann.ops import (batchnorm2d_backward, batchnorm2d_forward, batchnorm2d_relu_backward,
                       batchnorm2d_relu_forward)


def bn_naive(x, gamma, beta, eps):
    n, c, h, w = x.shape
    y = np.empty_like(x, dtype=np.float64)
    for ci in range(c):
        vals = x[:, ci].astype(np.float64)
        mu = vals.sum() / vals.size
        var = ((vals - mu) ** 2).sum() / vals.size
        y[:, ci] = gamma[ci] * (vals - mu) / np.sqrt(var + eps) + beta[ci]
    return y


def test_train_mode_matches_naive_and_updates_running_stats(rng):
    x = (rng.standard_normal((4, 3, 5, 5)) * 3 + 10).astype(np.float32)
    gamma, beta = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    y, _ = batchnorm2d_forward(x, gamma, beta, rm, rv, True, momentum=0.1, eps=1e-5)
    assert y.dtype == np.float32 and rm.dtype == np.float32
    np.testing.assert_allclose(y, bn_naive(x, gamma, beta, 1e-5), rtol=1e-4, atol=1e-4)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(rm, 0.1 * x64.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(rv, 0.9 + 0.1 * x64.var(axis=(0, 2, 3), ddof=1), rtol=1e-5)


def test_eval_mode_uses_running_stats(rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    gamma, beta = np.array([1, 2, 3], np.float32), np.array([0, 1, -1], np.float32)
    rm, rv = np.array([0.5, -1, 2], np.float32), np.array([4, 1, 0.25], np.float32)
    y, _ = batchnorm2d_forward(x, gamma, beta, rm.copy(), rv.copy(), training=False)
    b = (1, 3, 1, 1)
    ref = gamma.reshape(b) * (x - rm.reshape(b)) / np.sqrt(rv.reshape(b) + 1e-5) + beta.reshape(b)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


def check_gradients(forward, backward, training, rng):
    """Float64 finite-difference check of dx, dgamma, dbeta for one op pair; returns y."""
    x = rng.standard_normal((3, 2, 3, 4)) * 2 + 1
    gamma, beta = rng.standard_normal(2), rng.standard_normal(2)
    rm, rv = rng.standard_normal(2), rng.uniform(0.5, 2, 2)
    fwd = lambda: forward(x, gamma, beta, rm.copy(), rv.copy(), training)[0]
    y, cache = forward(x, gamma, beta, rm.copy(), rv.copy(), training)
    dy = rng.standard_normal(y.shape)
    dx, dgamma, dbeta = backward(dy, cache)
    assert max_relative_error(dx, numerical_gradient(lambda _: fwd(), x, dy)) < 1e-6
    assert max_relative_error(dgamma, numerical_gradient(lambda _: fwd(), gamma, dy)) < 1e-6
    assert max_relative_error(dbeta, numerical_gradient(lambda _: fwd(), beta, dy)) < 1e-6
    return y


@pytest.mark.parametrize("training", [True, False])
def test_gradients(training, rng):
    check_gradients(batchnorm2d_forward, batchnorm2d_backward, training, rng)


@pytest.mark.parametrize("training", [True, False])
def test_bn_relu_gradients(training, rng):
    y = check_gradients(batchnorm2d_relu_forward, batchnorm2d_relu_backward, training, rng)
    assert 0 < (y > 0).mean() < 1                   # both sides of the kink are exercised


@pytest.mark.parametrize("training", [True, False])
def test_bn_relu_equals_bn_then_relu_in_float32(training, rng):
    x = (rng.standard_normal((4, 3, 5, 5)) * 3 + 1).astype(np.float32)
    gamma, beta = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    stats = [np.zeros(3, np.float32), np.ones(3, np.float32)]
    z, bn_cache = batchnorm2d_forward(x, gamma, beta, *[a.copy() for a in stats], training)
    y, cache = batchnorm2d_relu_forward(x, gamma, beta, *[a.copy() for a in stats], training)
    np.testing.assert_array_equal(y, np.maximum(z, 0))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dy_copy = dy.copy()
    fused = batchnorm2d_relu_backward(dy, cache)
    np.testing.assert_array_equal(dy, dy_copy)        # the caller's gradient is left alone
    for a, b in zip(fused, batchnorm2d_backward(dy * (z > 0), bn_cache)):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_errors():
    g = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="rank 4"):
        batchnorm2d_forward(np.zeros((2, 3)), g, g, g.copy(), g.copy())
    with pytest.raises(ValueError, match="3 channels, input has 4"):
        batchnorm2d_forward(np.zeros((2, 4, 2, 2)), g, g, g.copy(), g.copy())
