"""Dropout (seeded, inverted scaling) and the residual add."""
import numpy as np
import pytest

from pyann.gradcheck import max_relative_error, numerical_gradient
from pyann.ops import add_backward, add_forward, dropout_backward, dropout_forward, dropout_mask


def test_dropout_is_seeded_and_scaled():
    x = np.ones((200, 50), np.float32)
    y1, m1 = dropout_forward(x, 0.3, np.random.default_rng(5))
    y2, _ = dropout_forward(x, 0.3, np.random.default_rng(5))
    np.testing.assert_array_equal(y1, y2)
    assert y1.dtype == np.float32
    assert abs((y1 == 0).mean() - 0.3) < 0.02
    np.testing.assert_allclose(y1[y1 > 0], 1 / 0.7, rtol=1e-6)
    assert abs(y1.mean() - 1.0) < 0.03


def test_dropout_gradient_with_fixed_mask(rng):
    x = rng.standard_normal((3, 4, 2, 2))
    mask = dropout_mask(x.shape, 0.5, rng, np.float64)
    y, cache = dropout_forward(x, 0.5, mask=mask)
    dy = rng.standard_normal(y.shape)
    num = numerical_gradient(lambda v: dropout_forward(v, 0.5, mask=mask)[0], x, dy)
    assert max_relative_error(dropout_backward(dy, cache), num) < 1e-7


def test_dropout_errors():
    with pytest.raises(ValueError, match="probability"):
        dropout_forward(np.ones(3), 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="Generator"):
        dropout_forward(np.ones(3), 0.5)


def test_residual_add(rng):
    a, b = rng.standard_normal((2, 3, 2, 2)), rng.standard_normal((2, 3, 2, 2))
    y, cache = add_forward(a, b)
    dy = rng.standard_normal(y.shape)
    da, db = add_backward(dy, cache)
    assert max_relative_error(da, numerical_gradient(lambda v: add_forward(v, b)[0], a, dy)) < 1e-7
    assert max_relative_error(db, numerical_gradient(lambda v: add_forward(a, v)[0], b, dy)) < 1e-7
    with pytest.raises(ValueError, match="shapes differ"):
        add_forward(a, b[:, :2])
