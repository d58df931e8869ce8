"""ActivationRecorder and the study's statistics, on hand-made states and a tiny MLP."""
import numpy as np
import pytest

from pyann.nn import zoo
from pyann.optim import SGD
from pyann.relu_prediction import hidden_states
from pyann.relu_prediction.recorder import (ActivationRecorder, agreement_by_epoch, firing_rate_summary,
                                            state_agreement, stay_off_probability)
from pyann.train import Callback, fit


# ---- the statistics, by hand ----------------------------------------------------------------

def test_state_agreement_by_hand():
    prev = np.array([[1, 0, 1, 0], [0, 0, 1, 1]], bool)
    cur = np.array([[1, 1, 1, 0], [0, 1, 0, 1]], bool)
    # equal at 5 of 8 (sample, neuron) pairs
    assert state_agreement(prev, cur) == pytest.approx(5 / 8)
    assert state_agreement(prev, prev) == 1.0
    assert state_agreement(prev, ~prev) == 0.0


def test_stay_off_probability_by_hand():
    prev = np.array([[1, 0, 1, 0], [0, 0, 1, 1]], bool)
    cur = np.array([[1, 1, 1, 0], [0, 1, 0, 1]], bool)
    # prev is off at (0,1), (0,3), (1,0), (1,1); cur is off at (0,3), (1,0): 2 of 4
    assert stay_off_probability(prev, cur) == pytest.approx(0.5)
    assert stay_off_probability(np.ones((2, 3), bool), np.zeros((2, 3), bool)) is None


def test_statistics_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        state_agreement(np.zeros((2, 3), bool), np.zeros((3, 2), bool))
    with pytest.raises(ValueError, match="shape"):
        stay_off_probability(np.zeros((2, 3), bool), np.zeros((2, 4), bool))


def test_agreement_by_epoch_on_a_known_sequence():
    # one layer of 2 samples x 2 neurons over epochs 1, 2, 3 and 5 (epoch 4 missing)
    s = {1: [np.array([[0, 0], [0, 0]], bool)],
         2: [np.array([[1, 0], [0, 0]], bool)],   # vs 1: 3/4 equal; off->off 3/4
         3: [np.array([[1, 0], [0, 0]], bool)],   # vs 2: 4/4; off->off 3/3
         5: [np.array([[0, 1], [1, 0]], bool)]}   # no epoch 4: not compared
    a = agreement_by_epoch(s)
    assert a["epochs"] == [2, 3]
    assert a["agreement"] == [[pytest.approx(0.75), pytest.approx(1.0)]]
    assert a["stay_off"] == [[pytest.approx(0.75), pytest.approx(1.0)]]


def test_agreement_by_epoch_two_layers_are_independent():
    s = {1: [np.zeros((1, 4), bool), np.zeros((1, 2), bool)],
         2: [np.array([[1, 1, 0, 0]], bool), np.zeros((1, 2), bool)]}
    a = agreement_by_epoch(s)
    assert a["agreement"] == [[0.5], [1.0]]


def test_firing_rate_summary_categories():
    rates = np.array([0.0, 0.0, 0.01, 0.049, 0.05, 0.5, 0.95, 0.96, 1.0])
    s = firing_rate_summary(rates)
    assert (s["neurons"], s["dead"], s["rare"], s["always"], s["never_off"]) == (9, 2, 2, 2, 1)
    assert sum(s["hist_counts"]) == 9 and len(s["hist_edges"]) == len(s["hist_counts"]) + 1
    assert s["hist_counts"][0] == 3           # [0, 2 %): the two dead neurons and the 1 % one
    assert s["mean"] == pytest.approx(rates.mean()) and s["median"] == pytest.approx(0.05)
    with pytest.raises(ValueError):
        firing_rate_summary(np.array([]))


# ---- the recorder on a tiny MLP ---------------------------------------------------------------

def _tiny_problem(seed=0, n=96):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return x, y


class _Snapshot(Callback):
    """Computes the states itself at every epoch end, for comparison."""

    def __init__(self, probe):
        self.probe, self.seen = probe, {}

    def on_epoch_end(self, epoch, model, logs):
        self.seen[epoch] = hidden_states(model, self.probe)


def _fit(model, x, y, callbacks, epochs=3):
    return fit(model, (x, y), epochs, SGD(model.parameters(), lr=0.1, momentum=0.9), batch_size=16,
               callbacks=callbacks, seed=0, progress=False)


def test_recorder_records_every_epoch_exactly():
    x, y = _tiny_problem()
    probe = x[:40]
    model = zoo.mlp([6, 13, 5, 3], rng=0)    # widths 13 and 5: not multiples of 8 (packbits padding)
    rec, snap = ActivationRecorder(probe, batch_size=7), _Snapshot(probe)
    _fit(model, x, y, [rec, snap])
    assert rec.epochs == [1, 2, 3] and rec.widths == [13, 5] and rec.num_layers == 2
    for e in rec.epochs:
        got = rec.states(e)
        assert [g.dtype for g in got] == [bool, bool]
        assert [g.shape for g in got] == [(40, 13), (40, 5)]
        for g, want in zip(got, snap.seen[e]):
            np.testing.assert_array_equal(g, want)
    # the last epoch's states are the final model's
    for g, want in zip(rec.states(3), hidden_states(model, probe)):
        np.testing.assert_array_equal(g, want)
    ls = rec.layer_states(2)
    assert ls.shape == (3, 40, 5)
    np.testing.assert_array_equal(ls[1], snap.seen[2][1])
    with pytest.raises(KeyError):
        rec.states(4)
    with pytest.raises(ValueError):
        rec.layer_states(3)


def test_recorder_agreement_and_active_share_match_the_states():
    x, y = _tiny_problem(1)
    model = zoo.mlp([6, 16, 16, 3], rng=1)
    rec = ActivationRecorder(x[:50])
    _fit(model, x, y, [rec], epochs=4)
    a = rec.agreement()
    assert a["epochs"] == [2, 3, 4]
    for k in range(2):
        for i, e in enumerate(a["epochs"]):
            want = np.mean(rec.states(e)[k] == rec.states(e - 1)[k])
            assert a["agreement"][k][i] == pytest.approx(want)
    sh = rec.active_share()
    assert sh["epochs"] == [1, 2, 3, 4]
    assert sh["share"][1][2] == pytest.approx(rec.states(3)[1].mean())


def test_recorder_packed_arrays_round_trip():
    x, y = _tiny_problem(2)
    model = zoo.mlp([6, 13, 3], rng=2)
    rec = ActivationRecorder(x[:20])
    _fit(model, x, y, [rec], epochs=2)
    p = rec.packed()
    assert p["epochs"].tolist() == [1, 2] and p["widths"].tolist() == [13]
    assert p["layer1"].dtype == np.uint8 and p["layer1"].shape == (2, 20, 2)
    np.testing.assert_array_equal(np.unpackbits(p["layer1"], axis=2, count=13).astype(bool)[1], rec.states(2)[0])


def test_a_new_fit_starts_a_new_record():
    x, y = _tiny_problem(3)
    rec = ActivationRecorder(x[:10])
    _fit(zoo.mlp([6, 8, 3], rng=0), x, y, [rec], epochs=3)
    _fit(zoo.mlp([6, 8, 3], rng=1), x, y, [rec], epochs=2)
    assert rec.epochs == [1, 2]


def test_recorder_rejects_bad_probe():
    with pytest.raises(ValueError, match="float32"):
        ActivationRecorder(np.zeros((4, 6), np.float64))
    with pytest.raises(ValueError, match="empty"):
        ActivationRecorder(np.zeros((0, 6), np.float32))
