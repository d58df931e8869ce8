"""conv2d: naive loop reference, finite-difference gradients (float64), paths and errors."""
import numpy as np
import pytest

from pyann.gradcheck import max_relative_error, numerical_gradient
from pyann.ops import conv2d_backward, conv2d_forward


def conv_naive(x, w, b, s, p, d, g):
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    ho = (h + 2 * p - d * (kh - 1) - 1) // s + 1
    wo = (wd + 2 * p - d * (kw - 1) - 1) // s + 1
    y = np.zeros((n, f, ho, wo))
    fg = f // g
    for ni in range(n):
        for fi in range(f):
            c0 = (fi // fg) * cg
            for i in range(ho):
                for j in range(wo):
                    patch = xp[ni, c0:c0 + cg, s * i:s * i + d * (kh - 1) + 1:d, s * j:s * j + d * (kw - 1) + 1:d]
                    y[ni, fi, i, j] = np.sum(patch * w[fi]) + (b[fi] if b is not None else 0)
    return y


CASES = [  # (N, C, H, W, F, K, stride, padding, dilation, groups)
    (2, 3, 7, 6, 4, 3, 1, 1, 1, 1),      # same padding
    (2, 3, 7, 7, 5, 3, 2, 1, 1, 1),      # stride 2
    (1, 4, 6, 5, 6, 3, 2, 1, 1, 2),      # grouped, stride 2, padding
    (2, 4, 6, 6, 4, 3, 2, 1, 1, 4),      # depthwise, stride 2, padding
    (2, 3, 5, 5, 3, 3, 1, 0, 1, 3),      # depthwise, no padding
    (2, 3, 5, 4, 4, 1, 1, 0, 1, 1),      # 1x1
    (2, 3, 5, 5, 4, 1, 2, 0, 1, 1),      # 1x1 stride 2 (projection shortcut)
    (1, 2, 7, 7, 3, 3, 1, 2, 2, 1),      # dilation 2
    (1, 2, 5, 5, 2, 2, 2, 0, 1, 1),      # even kernel
    (2, 4, 5, 5, 6, 3, 1, 1, 1, 2),      # grouped, stride 1, F > C (col2im dx)
    (2, 6, 5, 5, 4, 3, 1, 1, 1, 2),      # grouped, stride 1, F <= C (transposed-conv dx)
    (2, 4, 5, 5, 4, 3, 1, 0, 1, 1),      # stride 1, no padding, F == C (transposed-conv dx)
    (1, 2, 4, 4, 3, 1, 1, 1, 1, 1),      # padding > kernel - 1 (col2im dx)
]


@pytest.mark.parametrize("case", CASES)
def test_conv_matches_naive_loops(case, rng):
    n, c, h, w, f, k, s, p, d, g = case
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((f, c // g, k, k)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    y, _ = conv2d_forward(x, wt, b, s, p, d, g)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, conv_naive(x, wt, b, s, p, d, g), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", CASES)
def test_conv_gradients(case, rng):
    n, c, h, w, f, k, s, p, d, g = case
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((f, c // g, k, k))
    b = rng.standard_normal(f)
    y, cache = conv2d_forward(x, wt, b, s, p, d, g)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = conv2d_backward(dy, cache)
    assert dx.shape == x.shape and dw.shape == wt.shape and db.shape == b.shape
    fwd = lambda: conv2d_forward(x, wt, b, s, p, d, g)[0]
    assert max_relative_error(dx, numerical_gradient(lambda _: fwd(), x, dy)) < 1e-6
    assert max_relative_error(dw, numerical_gradient(lambda _: fwd(), wt, dy)) < 1e-6
    assert max_relative_error(db, numerical_gradient(lambda _: fwd(), b, dy)) < 1e-6


@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[9]])   # transposed conv, depthwise, col2im
def test_conv_backward_without_input_grad(case, rng):
    n, c, h, w, f, k, s, p, d, g = case
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((f, c // g, k, k))
    b = rng.standard_normal(f)
    dy = rng.standard_normal(conv2d_forward(x, wt, b, s, p, d, g)[0].shape)
    _, dw, db = conv2d_backward(dy, conv2d_forward(x, wt, b, s, p, d, g)[1])
    dx, dw_skip, db_skip = conv2d_backward(dy, conv2d_forward(x, wt, b, s, p, d, g)[1], input_grad=False)
    assert dx is None
    np.testing.assert_array_equal(dw_skip, dw)
    np.testing.assert_array_equal(db_skip, db)


def test_conv_backward_matches_reference_in_float32(rng):
    # float32 training path agrees with the float64 one (no silent promotion, no drift)
    x = rng.standard_normal((4, 8, 9, 9))
    wt = rng.standard_normal((16, 8, 3, 3))
    y64, c64 = conv2d_forward(x, wt, None, 2, 1)
    y32, c32 = conv2d_forward(x.astype(np.float32), wt.astype(np.float32), None, 2, 1)
    dy = rng.standard_normal(y64.shape)
    g64 = conv2d_backward(dy, c64)
    g32 = conv2d_backward(dy.astype(np.float32), c32)
    for a, b in zip(g64[:2], g32[:2]):
        assert b.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)


def test_workspace_buffer_is_reused(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    wt = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    ws = {}
    y1, _ = conv2d_forward(x, wt, None, 1, 1, workspace=ws)
    buf = ws["cols"]
    y2, _ = conv2d_forward(x, wt, None, 1, 1, workspace=ws)
    assert ws["cols"] is buf
    np.testing.assert_array_equal(y1, y2)


def test_conv_errors():
    x = np.zeros((1, 6, 5, 5), np.float32)
    with pytest.raises(ValueError, match="groups"):
        conv2d_forward(x, np.zeros((4, 2, 3, 3), np.float32), None, groups=4)
    with pytest.raises(ValueError, match="rank 4"):
        conv2d_forward(x[0], np.zeros((4, 6, 3, 3), np.float32))
    with pytest.raises(ValueError, match="6 channels"):
        conv2d_forward(x, np.zeros((4, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="does not fit"):
        conv2d_forward(x, np.zeros((4, 6, 7, 7), np.float32))
