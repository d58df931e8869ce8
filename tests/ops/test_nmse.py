"""Normalised MSE (LANA's distillation loss): value, float64 gradient, an all-zero target."""
import numpy as np
import pytest

from pyann import ops
from pyann.gradcheck import max_relative_error, numerical_gradient


def test_nmse_value_and_gradient(rng):
    pred, target = rng.standard_normal((3, 2, 4, 4)), rng.standard_normal((3, 2, 4, 4)) * 5
    loss, cache = ops.nmse_forward(pred, target)
    assert loss == pytest.approx(np.sum((pred - target) ** 2) / np.sum(target ** 2))
    num = numerical_gradient(lambda v: ops.nmse_forward(v, target)[0], pred)
    # the loss is O(1) and its gradient entries O(1e-3): central differences keep ~6 digits
    assert max_relative_error(ops.nmse_backward(cache), num) < 1e-6


def test_nmse_is_scale_free_and_keeps_dtype(rng):
    target = rng.standard_normal((4, 3)).astype(np.float32)
    assert ops.nmse_forward(np.zeros_like(target), target)[0] == pytest.approx(1.0)
    assert ops.nmse_forward(target, target)[0] == 0.0
    a = ops.nmse_forward(0.5 * target, target)[0]
    assert ops.nmse_forward(50 * target, 100 * target)[0] == pytest.approx(a, rel=1e-6)
    assert ops.nmse_backward(ops.nmse_forward(target * 2, target)[1]).dtype == np.float32


def test_nmse_all_zero_target_falls_back_to_mse(rng):
    pred = rng.standard_normal((2, 5))
    zero = np.zeros_like(pred)
    loss, cache = ops.nmse_forward(pred, zero)
    assert loss == pytest.approx(np.mean(pred ** 2))
    num = numerical_gradient(lambda v: ops.nmse_forward(v, zero)[0], pred)
    assert max_relative_error(ops.nmse_backward(cache), num) < 1e-7
    assert ops.nmse_forward(zero, zero)[0] == 0.0


def test_nmse_shape_mismatch():
    with pytest.raises(ValueError, match="shapes differ"):
        ops.nmse_forward(np.zeros((2, 3)), np.zeros((3, 2)))
