"""Optimisers against hand-computed updates, and the learning-rate schedules."""
import math

import numpy as np
import pytest

from pyann import optim
from pyann.nn import Parameter


def _param(values, decay=True):
    p = Parameter(np.array(values, np.float64), decay)
    return p


def test_sgd_plain_step():
    p = _param([1.0, 2.0])
    p.grad = np.array([0.5, -1.0])
    optim.SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [0.95, 2.1])


def test_sgd_momentum_and_nesterov_two_steps():
    for nesterov in (False, True):
        p = _param([1.0])
        opt = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=nesterov)
        g1, g2 = 1.0, 2.0
        p.grad = np.array([g1]); opt.step()
        p.grad = np.array([g2]); opt.step()
        v1 = g1
        v2 = 0.9 * v1 + g2
        if nesterov:
            expected = 1.0 - 0.1 * (g1 + 0.9 * v1) - 0.1 * (g2 + 0.9 * v2)
        else:
            expected = 1.0 - 0.1 * v1 - 0.1 * v2
        assert p.data[0] == pytest.approx(expected)


def test_weight_decay_skips_non_decay_params_unless_decay_all():
    w, b = _param([1.0]), _param([1.0], decay=False)
    w.grad, b.grad = np.zeros(1), np.zeros(1)
    optim.SGD([w, b], lr=0.1, weight_decay=0.5).step()
    assert w.data[0] == pytest.approx(1.0 - 0.1 * 0.5) and b.data[0] == 1.0
    optim.SGD([b], lr=0.1, weight_decay=0.5, decay_all=True).step()
    assert b.data[0] == pytest.approx(0.95)


def test_adam_matches_formula():
    p = _param([1.0])
    opt = optim.Adam([p], lr=0.01)
    m = v = 0.0
    x = 1.0
    for t, g in enumerate([0.3, -0.2, 0.5], start=1):
        p.grad = np.array([g])
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        x -= 0.01 * (m / (1 - 0.9 ** t)) / (math.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        assert p.data[0] == pytest.approx(x)


def test_optimizer_state_round_trip():
    p = _param([1.0, 2.0])
    opt = optim.Adam([p], lr=0.01)
    p.grad = np.array([0.1, 0.2]); opt.step()
    q = _param(p.data.copy())
    opt2 = optim.Adam([q], lr=0.5)
    opt2.load_state_dict(opt.state_dict())
    p.grad = q.grad = np.array([0.3, -0.1])
    opt.step(); opt2.step()
    np.testing.assert_allclose(p.data, q.data)


def test_optimizer_rejects_bad_settings():
    with pytest.raises(ValueError, match="no parameters"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([_param([1.0])], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="lr must be positive"):
        optim.Adam([_param([1.0])], lr=0)


def test_schedules():
    assert optim.StepLR(1.0, 10, 0.1)(9.99) == 1.0 and optim.StepLR(1.0, 10, 0.1)(10) == pytest.approx(0.1)
    ms = optim.MultiStepLR(1.0, [5, 8], 0.5)
    assert [ms(e) for e in (0, 5, 7.9, 8)] == [1.0, 0.5, 0.5, 0.25]
    cos = optim.CosineLR(1.0, 10, min_lr=0.1)
    assert cos(0) == pytest.approx(1.0) and cos(5) == pytest.approx(0.55) and cos(10) == pytest.approx(0.1)
    assert cos(12) == pytest.approx(0.1)
    warm = optim.Warmup(optim.Constant(1.0), epochs=2, start_factor=0.1)
    assert warm(0) == pytest.approx(0.1) and warm(1) == pytest.approx(0.55) and warm(2) == 1.0
