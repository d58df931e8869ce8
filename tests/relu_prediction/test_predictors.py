"""Activation states, the history and low-rank predictors, precision/recall, and the sweeps."""
import numpy as np
import pytest

from pyann import plots
from pyann.nn import zoo
from pyann.relu_prediction import (HistoryPredictor, LowRankPredictor, firing_rates, hidden_layers,
                                   hidden_states, inactive_precision_recall)
from pyann.relu_prediction import sweep


@pytest.fixture
def small():
    model = zoo.mlp([30, 40, 33, 20, 24, 7], rng=3)
    rng = np.random.default_rng(0)
    x = rng.random((300, 30), dtype=np.float32)
    x[x < 0.5] = 0
    y = rng.integers(0, 7, 300)
    return model, x, y


def test_hidden_layers_and_states(small):
    model, x, _ = small
    hl = hidden_layers(model)
    assert [i for i, _ in hl] == [1, 3, 5, 7] and [l.out_features for _, l in hl] == [40, 33, 20, 24]
    states = hidden_states(model, x, batch_size=64)
    h = x
    for (i, lin), s in zip(hl, states):
        h = np.maximum(h @ lin.weight.data + lin.bias.data, 0)
        np.testing.assert_array_equal(s, h > 0)
    rates = firing_rates(model, x, layers=[2, 4])
    np.testing.assert_allclose(rates[0], states[1].mean(0))
    np.testing.assert_allclose(rates[1], states[3].mean(0))
    with pytest.raises(ValueError, match="hidden layer 5 does not exist"):
        hidden_states(model, x, layers=[5])
    with pytest.raises(ValueError, match="hidden layer 0 does not exist"):
        firing_rates(model, x, layers=[0])


def test_history_predictor(small):
    model, x, _ = small
    p = HistoryPredictor(0.5, layers=(3, 4)).fit(model, x)
    rates = firing_rates(model, x)
    np.testing.assert_array_equal(p.mask(3), rates[2] >= 0.5)
    assert p.mask(4).dtype == np.uint8
    assert HistoryPredictor(0.0, (3,)).fit(model, x).mask(3).all()
    with pytest.raises(ValueError, match="not one of"):
        p.mask(1)
    with pytest.raises(ValueError, match="tau"):
        HistoryPredictor(1.5)
    with pytest.raises(ValueError, match="hidden layer 7 does not exist"):
        HistoryPredictor(0.5, layers=(7,)).fit(model, x)
    with pytest.raises(ValueError, match="not fitted"):
        HistoryPredictor(0.5).check_model(model)
    other = zoo.mlp([30, 40, 33, 20, 24, 7], rng=4)
    with pytest.raises(ValueError, match="another model"):
        p.check_model(other)


def test_precision_recall(small):
    model, x, _ = small
    # tau 0 predicts nothing inactive: precision 1 by convention, recall 0
    pr = inactive_precision_recall(model, HistoryPredictor(0.0, (2, 3)).fit(model, x), x)
    assert pr["pooled"]["recall_inactive"] == 0.0 and pr["pooled"]["predicted_inactive_share"] == 0.0
    # a huge margin never predicts inactive; margin -inf-like predicts all inactive: recall 1
    lp = LowRankPredictor(4, 100.0, (2, 3)).fit(model, x)
    assert inactive_precision_recall(model, lp, x)["pooled"]["recall_inactive"] == 0.0
    pr = inactive_precision_recall(model, lp.copy(margin=-1e6), x)["pooled"]
    assert pr["recall_inactive"] == 1.0
    states = hidden_states(model, x, layers=(2, 3))
    assert pr["precision_inactive"] == pytest.approx(1 - np.concatenate([s.ravel() for s in states]).mean())
    # a full-rank predictor with margin 0 is exact
    full = LowRankPredictor(40, 0.0, (2,)).fit(model, x)
    pr = inactive_precision_recall(model, full, x)["pooled"]
    assert pr["precision_inactive"] > 0.99 and pr["recall_inactive"] > 0.99


def test_sweep_points_and_figure(small, tmp_path):
    model, x, y = small
    hp = HistoryPredictor(0.5, (2, 3)).fit(model, x)
    pts = sweep.sweep_history(model, hp, x, y, taus=(0.0, 0.5, 1.0))
    assert [p["tau"] for p in pts] == [0.0, 0.5, 1.0]
    assert pts[0]["mac_share"] >= pts[1]["mac_share"] >= pts[2]["mac_share"]
    refs = sweep.reference_points(model, x, y)
    assert refs["dense"]["mac_share"] == 1.0 and refs["zeroskip"]["accuracy"] == refs["dense"]["accuracy"]
    assert pts[0]["accuracy"] == refs["dense"]["accuracy"]
    lp = sweep.sweep_lowrank(model, LowRankPredictor(4, 1.0, (2, 3)).fit(model, x), x, y, margins=(0.0, 2.0))
    assert all(p["predictor_macs"] > 0 for p in lp)
    paper = sweep.paper_point()
    assert paper["mac_share"] == pytest.approx(0.6176, abs=1e-3)
    fig = plots.plot_accuracy_vs_macs({"history": pts, "low-rank": lp}, points=refs, paper=paper)
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and "multiply-adds" in ax.get_xlabel()
    plots.save_figure(fig, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000
