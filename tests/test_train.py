"""fit / evaluate: learning, determinism, checkpoints and resume, errors."""
import io

import numpy as np
import pytest

from pyann import nn, ops
from pyann.optim import SGD, CosineLR
from pyann.train import Callback, PrintTable, evaluate, fit, predict


def _blobs(n=600, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, 8)) * 3
    y = rng.integers(0, 3, n)
    x = (centres[y] + rng.standard_normal((n, 8))).astype(np.float32)
    return x, y


def _run(epochs, seed=0, dropout=0.0, **kw):
    x, y = _blobs()
    model = nn.Sequential(nn.Linear(8, 16, rng=seed), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3, rng=seed + 1))
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = fit(model, (x, y), epochs, opt, batch_size=32, validation=(x, y), seed=seed,
                  schedule=CosineLR(0.05, 4), **kw)
    return model, opt, history


def test_fit_learns_and_records_history():
    model, _, history = _run(4)
    assert len(history.epochs) == 4
    assert history.last()["val_acc"] > 0.95
    assert history.epochs[-1]["loss"] < history.epochs[0]["loss"]
    assert set(history.epochs[0]) >= {"epoch", "loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}


def test_same_seed_same_weights():
    a, _, _ = _run(2, seed=3)
    b, _, _ = _run(2, seed=3)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_resume_from_checkpoint_equals_uninterrupted(tmp_path, dropout):
    full, _, full_hist = _run(4, dropout=dropout)
    _run(2, dropout=dropout, checkpoint_dir=tmp_path)  # "interrupted" after epoch 2
    resumed, _, hist = _run(4, dropout=dropout, checkpoint_dir=tmp_path, resume=True)
    for k, v in full.state_dict().items():
        np.testing.assert_allclose(v, resumed.state_dict()[k], rtol=1e-6, atol=1e-7)
    assert [e["epoch"] for e in hist.epochs] == [1, 2, 3, 4]
    assert hist.last()["val_acc"] == pytest.approx(full_hist.last()["val_acc"])


def test_resume_refuses_checkpoint_of_other_architecture(tmp_path):
    _run(1, checkpoint_dir=tmp_path)
    x, y = _blobs()
    other = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3))
    with pytest.raises(ValueError, match="another architecture"):
        fit(other, (x, y), 2, SGD(other.parameters(), 0.1), checkpoint_dir=tmp_path, resume=True)


def test_callbacks_see_every_epoch_and_table_prints():
    seen = []

    class Spy(Callback):
        def on_epoch_end(self, epoch, model, logs):
            seen.append((epoch, logs["val_acc"]))
    out = io.StringIO()
    _run(3, callbacks=[Spy(), PrintTable(out)])
    assert [e for e, _ in seen] == [1, 2, 3]
    assert len(out.getvalue().strip().splitlines()) == 4


def test_evaluate_and_predict_restore_training_mode():
    model, _, _ = _run(1)
    x, y = _blobs(50, seed=1)
    model.train()
    result = evaluate(model, x, y, batch_size=7)
    assert model.training and 0.0 <= result["accuracy"] <= 1.0
    assert predict(model, x, batch_size=7).shape == (50, 3)


def test_evaluate_with_flip_scores_the_mean_of_both_orientations():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, 1, 1, rng=0), nn.Flatten(), nn.Linear(2 * 4 * 5, 3, rng=1)).eval()
    x = rng.standard_normal((9, 1, 4, 5)).astype(np.float32)
    mean = (model.forward(x) + model.forward(np.ascontiguousarray(x[..., ::-1]))) / 2
    y = mean.argmax(axis=1)
    y[:3] = (y[:3] + 1) % 3                            # three wrong labels: 6 of 9 right
    result = evaluate(model, x, y, batch_size=4, flip=True)
    assert result["accuracy"] == pytest.approx(6 / 9)
    assert result["loss"] == pytest.approx(float(ops.softmax_cross_entropy_forward(mean, y)[0]), rel=1e-5)
    plain = model.forward(x).argmax(axis=1)
    assert evaluate(model, x, plain, batch_size=4)["accuracy"] == 1.0   # flip off: the plain outputs


def test_fit_skips_the_input_gradient_and_restores_the_setting():
    x, y = _blobs(64)
    model = nn.Sequential(nn.Linear(8, 3))
    seen = []

    class Spy(Callback):
        def on_epoch_end(self, epoch, model, logs):
            seen.append(model[0].input_grad)
    fit(model, (x, y), 1, SGD(model.parameters(), 0.1), callbacks=[Spy()])
    assert seen == [False] and model[0].input_grad


def test_fit_rejects_bad_input():
    x, y = _blobs(10)
    model = nn.Sequential(nn.Linear(8, 3))
    opt = SGD(model.parameters(), 0.1)
    with pytest.raises(ValueError, match="float32"):
        fit(model, (x.astype(np.float64), y), 1, opt)
    with pytest.raises(ValueError, match="10 samples but y has 9"):
        fit(model, (x, y[:9]), 1, opt)
    with pytest.raises(ValueError, match="unknown loss"):
        fit(model, (x, y), 1, opt, loss="hinge")
