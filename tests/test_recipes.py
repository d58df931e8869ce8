"""The shared MLP recipe and the trained-model cache."""
import numpy as np

import pyann.data
from pyann import recipes
from pyann.data import Dataset


def _tiny_digits(seed=0):
    # 10 classes that a linear model separates: a bright band whose row is the label
    rng = np.random.default_rng(seed)
    def make(n):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 30, (n, 1, 28, 28)).astype(np.uint8)
        for i, label in enumerate(y):
            x[i, 0, 2 + 2 * label: 4 + 2 * label, 4:24] = 255
        return x, y.astype(np.int64)
    (xtr, ytr), (xte, yte) = make(500), make(200)
    return Dataset(xtr, ytr, xte, yte, name="tiny", source_path=None, classes=tuple(map(str, range(10))),
                   official=False)


def test_mlp_recipe_learns_tiny_digits():
    model, history = recipes.mlp_recipe("fcn2", _tiny_digits(), epochs=3, progress=False)
    assert history.last()["val_acc"] > 0.9


def test_trained_model_is_cached_and_reused(tmp_path, monkeypatch):
    calls = []

    def fake_load(name, root=None):
        calls.append(name)
        return _tiny_digits()
    monkeypatch.setattr(pyann.data, "load", fake_load)
    model, history = recipes.trained_model("fcn1", "tiny", epochs=1, cache=tmp_path)
    again, history2 = recipes.trained_model("fcn1", "tiny", epochs=1, cache=tmp_path)
    assert calls == ["tiny"], "the second call must come from the cache"
    np.testing.assert_array_equal(model[1].weight.data, again[1].weight.data)
    assert history2 == history
    # a corrupt cache file is retrained, not trusted
    next((tmp_path / "models").glob("*.npz")).write_bytes(b"garbage")
    recipes.trained_model("fcn1", "tiny", epochs=1, cache=tmp_path)
    assert calls == ["tiny", "tiny"]


def test_activity_penalty_variant_is_sparser_and_cached_apart(tmp_path, monkeypatch):
    from pyann.relu_prediction import hidden_states
    monkeypatch.setattr(pyann.data, "load", lambda name, root=None: _tiny_digits())
    plain, _ = recipes.trained_model("fcn2", "tiny", epochs=3, cache=tmp_path)
    sparse, history = recipes.trained_model("fcn2", "tiny", epochs=3, cache=tmp_path, activity_l1=0.05)
    assert sorted(p.name for p in (tmp_path / "models").glob("*.npz")) == [
        "fcn2-tiny-e3-s0-l10.05.npz", "fcn2-tiny-e3-s0.npz"]
    assert history["epochs"][-1]["val_acc"] > 0.9
    x = _tiny_digits().x_test.reshape(200, -1).astype(np.float32) / 255
    share = lambda m: np.mean([s.mean() for s in hidden_states(m, x)])
    assert share(sparse) < 0.6 * share(plain)   # measured 0.25 vs 0.48
