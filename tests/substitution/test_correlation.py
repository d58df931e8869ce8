"""Kendall tau-b and Spearman rho (pyann.substitution.correlation): a hand-worked case with ties,
scipy on random data with ties (only that comparison skips without scipy), and the errors."""
import math

import numpy as np
import pytest

from pyann.substitution.correlation import (average_ranks, kendall_tau_b, rank_correlations, spearman_rho,
                                            undefined_reason)


def test_hand_worked_case_with_ties():
    # x = [1, 2, 2, 3], y = [1, 3, 2, 2]. Pairs: (0,1) (0,2) (0,3) concordant, (1,3) discordant,
    # (1,2) tied in x, (2,3) tied in y: n_c - n_d = 2, n_0 = 6, n_1 = n_2 = 1,
    # tau_b = 2 / sqrt(5 * 5) = 0.4. Ranks r = [1, 2.5, 2.5, 4], s = [1, 4, 2.5, 2.5]; centred
    # r = [-1.5, 0, 0, 1.5], s = [-1.5, 1.5, 0, 0]: rho = 2.25 / sqrt(4.5 * 4.5) = 0.5.
    x, y = [1, 2, 2, 3], [1, 3, 2, 2]
    assert kendall_tau_b(x, y) == pytest.approx(0.4, abs=1e-15)
    assert spearman_rho(x, y) == pytest.approx(0.5, abs=1e-15)


def test_average_ranks():
    np.testing.assert_array_equal(average_ranks([10, 20, 20, 30]), [1, 2.5, 2.5, 4])
    np.testing.assert_array_equal(average_ranks([3, 1, 3, 3]), [3, 1, 3, 3])


def test_perfect_orders():
    x = [0.1, 0.5, 0.2, 0.9]
    assert kendall_tau_b(x, x) == pytest.approx(1.0)
    assert spearman_rho(x, x) == pytest.approx(1.0)
    assert kendall_tau_b(x, [-v for v in x]) == pytest.approx(-1.0)
    assert spearman_rho(x, [-v for v in x]) == pytest.approx(-1.0)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # scipy warns on a drawn constant input
@pytest.mark.parametrize("seed", range(40))
def test_against_scipy_with_ties(seed):
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    # few distinct values, so ties are common in both
    x = rng.integers(0, int(rng.integers(2, 8)), n).astype(float)
    y = np.where(rng.random(n) < 0.5, x, rng.integers(0, 5, n)).astype(float) + 0.25 * rng.integers(0, 2, n)
    want_tau = stats.kendalltau(x, y).statistic          # tau-b is scipy's default variant
    want_rho = stats.spearmanr(x, y).statistic
    if np.isnan(want_tau):
        assert math.isnan(kendall_tau_b(x, y)) and math.isnan(spearman_rho(x, y))
        return
    assert kendall_tau_b(x, y) == pytest.approx(want_tau, abs=1e-12)
    assert spearman_rho(x, y) == pytest.approx(want_rho, abs=1e-12)


def test_constant_input_is_nan_with_a_reason():
    assert math.isnan(kendall_tau_b([1, 1, 1], [1, 2, 3]))
    assert math.isnan(spearman_rho([1, 2, 3], [5, 5, 5]))
    assert "x constant" in undefined_reason([1, 1, 1], [1, 2, 3])
    assert undefined_reason([1, 2], [2, 1]) is None
    r = rank_correlations([2, 2], [1, 3])
    assert r["n"] == 2 and math.isnan(r["kendall_tau_b"]) and "x constant" in r["undefined"]


@pytest.mark.parametrize("x, y, match", [([1.0], [2.0], "at least 2 points"), ([], [], "at least 2 points"),
                                         ([1, 2, 3], [1, 2], "same length"),
                                         ([1, np.nan], [1, 2], "finite")])
def test_bad_input_raises(x, y, match):
    for f in (kendall_tau_b, spearman_rho):
        with pytest.raises(ValueError, match=match):
            f(x, y)
