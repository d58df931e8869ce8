"""Finite-difference gradient checks (float64) and value checks for the MLP ops."""
import numpy as np
import pytest

from pyann import ops
from pyann.gradcheck import max_relative_error, numerical_gradient


def test_linear_gradients(rng):
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    y, cache = ops.linear_forward(x, w, b)
    np.testing.assert_allclose(y, x @ w + b)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = ops.linear_backward(dy, cache)
    assert max_relative_error(dx, numerical_gradient(lambda v: ops.linear_forward(v, w, b)[0], x, dy)) < 1e-7
    assert max_relative_error(dw, numerical_gradient(lambda v: ops.linear_forward(x, v, b)[0], w, dy)) < 1e-7
    assert max_relative_error(db, numerical_gradient(lambda v: ops.linear_forward(x, w, v)[0], b, dy)) < 1e-7


def test_linear_without_bias(rng):
    x, w = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    y, cache = ops.linear_forward(x, w, None)
    assert ops.linear_backward(np.ones_like(y), cache)[2] is None


def test_linear_backward_without_input_grad(rng):
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    y, cache = ops.linear_forward(x, w, b)
    dy = rng.standard_normal(y.shape)
    _, dw, db = ops.linear_backward(dy, cache)
    dx, dw_skip, db_skip = ops.linear_backward(dy, cache, input_grad=False)
    assert dx is None
    np.testing.assert_array_equal(dw_skip, dw)
    np.testing.assert_array_equal(db_skip, db)


@pytest.mark.parametrize("pair", [(ops.relu_forward, ops.relu_backward), (ops.relu6_forward, ops.relu6_backward)])
def test_activation_gradients(rng, pair):
    fwd, bwd = pair
    # keep inputs away from the kinks at 0 and 6, where the derivative is undefined
    x = rng.uniform(-8, 8, (6, 7))
    x[np.abs(x) < 0.1] = 0.5
    x[np.abs(x - 6) < 0.1] = 5.5
    y, cache = fwd(x)
    dy = rng.standard_normal(x.shape)
    assert max_relative_error(bwd(dy, cache), numerical_gradient(lambda v: fwd(v)[0], x, dy)) < 1e-7


def test_activity_l1_gradient(rng):
    # the penalty of a ReLU's output, as a function of the ReLU's input (away from the kink)
    x = rng.uniform(-3, 3, (5, 8))
    x[np.abs(x) < 0.1] = 0.5
    strength = 0.3
    penalty = lambda v: np.array(ops.activity_l1_backward(ops.relu_forward(v)[0], strength)[0])
    y, cache = ops.relu_forward(x)
    p, dp = ops.activity_l1_backward(y, strength)
    assert p == pytest.approx(strength * np.abs(y).sum() / 5)
    dx = ops.relu_backward(dp, cache)
    assert max_relative_error(dx, numerical_gradient(penalty, x, np.array(1.0))) < 1e-7


def test_relu_values():
    y, _ = ops.relu_forward(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(y, [0, 0, 2])
    y6, _ = ops.relu6_forward(np.array([-1.0, 3.0, 7.0]))
    np.testing.assert_array_equal(y6, [0, 3, 6])


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_softmax_cross_entropy_gradient(rng, smoothing):
    logits, labels = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    loss, cache = ops.softmax_cross_entropy_forward(logits, labels, smoothing)
    num = numerical_gradient(lambda v: ops.softmax_cross_entropy_forward(v, labels, smoothing)[0], logits)
    assert max_relative_error(ops.softmax_cross_entropy_backward(cache), num) < 1e-7


def test_softmax_cross_entropy_value_and_stability():
    logits = np.array([[1.0, 2.0, 3.0]])
    expected = -np.log(np.exp(3) / np.exp([1, 2, 3]).sum())
    assert ops.softmax_cross_entropy_forward(logits, np.array([2]))[0] == pytest.approx(expected)
    # a naive softmax overflows at 1e4; the fused loss must stay finite and exact
    big = np.array([[1e4, 0.0], [0.0, 1e4]], np.float32)
    loss, cache = ops.softmax_cross_entropy_forward(big, np.array([0, 0]))
    assert np.isfinite(loss) and loss == pytest.approx(1e4 / 2, rel=1e-6)
    assert np.all(np.isfinite(ops.softmax_cross_entropy_backward(cache)))


def test_softmax_cross_entropy_rejects_bad_labels():
    with pytest.raises(ValueError, match="labels must lie in"):
        ops.softmax_cross_entropy_forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        ops.softmax_cross_entropy_forward(np.zeros((2, 3)), np.array([0]))


def test_mse_gradient_and_value(rng):
    pred, target = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    loss, cache = ops.mse_forward(pred, target)
    assert loss == pytest.approx(np.mean((pred - target) ** 2))
    num = numerical_gradient(lambda v: ops.mse_forward(v, target)[0], pred)
    assert max_relative_error(ops.mse_backward(cache), num) < 1e-7
    with pytest.raises(ValueError, match="shapes differ"):
        ops.mse_forward(pred, target[:2])


def test_softmax_rows_sum_to_one(rng):
    p = ops.softmax(rng.standard_normal((4, 6)) * 50)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
