"""Max, average and global average pooling: naive loops and finite-difference gradients."""
import numpy as np
import pytest

from pyann.gradcheck import max_relative_error, numerical_gradient
from pyann.ops import (avgpool2d_backward, avgpool2d_forward, global_avgpool_backward,
                       global_avgpool_forward, maxpool2d_backward, maxpool2d_forward)


def pool_naive(x, k, s, p, kind):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf if kind == "max" else 0)
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    y = np.zeros((n, c, ho, wo))
    dx_first = np.zeros_like(xp)  # where the max gradient goes for dy = 1
    for ni in range(n):
        for ci in range(c):
            for i in range(ho):
                for j in range(wo):
                    win = xp[ni, ci, s * i:s * i + k, s * j:s * j + k]
                    if kind == "max":
                        y[ni, ci, i, j] = win.max()
                        u, v = np.unravel_index(np.argmax(win), win.shape)
                        dx_first[ni, ci, s * i + u, s * j + v] += 1
                    else:
                        y[ni, ci, i, j] = win.mean()
    return y, dx_first[:, :, p:p + h, p:p + w]


CASES = [(2, 2, 0), (3, 2, 1), (2, 1, 0), (3, 3, 1), (3, 1, 1)]  # (kernel, stride, padding)


@pytest.mark.parametrize("k,s,p", CASES)
def test_pools_match_naive(k, s, p, rng):
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    x[0, 0, :2, :2] = 0.0  # ties (as after a ReLU): the first tap wins
    y, cache = maxpool2d_forward(x, k, s, p)
    ref, route = pool_naive(x, k, s, p, "max")
    np.testing.assert_allclose(y, ref, rtol=1e-6)
    np.testing.assert_allclose(maxpool2d_backward(np.ones_like(y), cache), route)
    y, _ = avgpool2d_forward(x, k, s, p)
    np.testing.assert_allclose(y, pool_naive(x, k, s, p, "avg")[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k,s,p", CASES)
def test_pool_gradients(k, s, p, rng):
    # distinct values so that no max is within h of a tie
    x = rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) / 100.0
    for fwd, bwd in ((maxpool2d_forward, maxpool2d_backward), (avgpool2d_forward, avgpool2d_backward)):
        y, cache = fwd(x, k, s, p)
        dy = rng.standard_normal(y.shape)
        num = numerical_gradient(lambda v: fwd(v, k, s, p)[0], x, dy)
        assert max_relative_error(bwd(dy, cache), num) < 1e-6


def test_global_avgpool(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    y, cache = global_avgpool_forward(x)
    np.testing.assert_allclose(y, x.mean(axis=(2, 3)))
    dy = rng.standard_normal(y.shape)
    num = numerical_gradient(lambda v: global_avgpool_forward(v)[0], x, dy)
    assert max_relative_error(global_avgpool_backward(dy, cache), num) < 1e-7
    assert global_avgpool_forward(x.astype(np.float32))[0].dtype == np.float32


def test_pool_errors():
    with pytest.raises(ValueError, match="rank 4"):
        maxpool2d_forward(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="does not fit"):
        avgpool2d_forward(np.zeros((1, 1, 2, 2)), 3)
    with pytest.raises(ValueError, match="rank 4"):
        global_avgpool_forward(np.zeros((2, 3)))
