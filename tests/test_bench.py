"""The benchmark harness end to end on a tiny model and synthetic digits (no timing asserted:
timings belong to the benchmark itself, on a quiet machine)."""
import json

import numpy as np

import pyann.data
import pyann.recipes
from bench.__main__ import main
from pyann.data import Dataset
from pyann.nn import zoo


def _digits(n_train=600, n_test=200, seed=0):
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 10, n)
        x = np.zeros((n, 1, 28, 28), np.uint8)
        for i, label in enumerate(y):   # a bright bar whose row is the label, on a sparse background
            x[i, 0, 2 + 2 * label:4 + 2 * label, 4:24] = 255
            x[i, 0][rng.random((28, 28)) < 0.05] = 90
        return x, y.astype(np.int64)
    (xtr, ytr), (xte, yte) = make(n_train), make(n_test)
    return Dataset(xtr, ytr, xte, yte, name="mnist", source_path=None, classes=tuple(map(str, range(10))),
                   official=False)


def test_bench_relu_writes_both_models_rows_and_figure(tmp_path, monkeypatch):
    data = _digits()
    monkeypatch.setattr(pyann.data, "load", lambda name, **kw: data)
    trained = {}

    def fake_trained_model(name, dataset, seed=0, epochs=20, progress=None, activity_l1=0.0, **kw):
        if activity_l1 not in trained:
            trained[activity_l1] = pyann.recipes.mlp_recipe("mlp5", data, epochs=2, activity_l1=activity_l1,
                                                            progress=False)
        model, history = trained[activity_l1]
        return model, history.to_dict()
    monkeypatch.setattr(pyann.recipes, "trained_model", fake_trained_model)
    assert main(["relu", "--n", "200", "--repeats", "1", "--repeats-one", "1", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "relu.json").read_text())
    rows = [r for r in result["rows"] if not r.get("quoted")]
    models = {r["model"] for r in rows}
    assert models == {"mlp5", "mlp5 + activity L1 0.001"}
    for model in models:
        for mode in ("batched", "one image"):
            mine = [r for r in rows if r["model"] == model and r["mode"] == mode and "seconds" in r]
            numpy_row = next(r for r in mine if r["row"] == "NumPy dense")
            assert numpy_row["speedup_vs_numpy"] == 1.0
            exact = next(r for r in mine if r["row"] == "pyann zero-skipping (exact)")
            assert exact["accuracy"] == numpy_row["accuracy"] and exact["mac_share"] < 1.0
    assert (tmp_path / "relu-accuracy-vs-macs.png").stat().st_size > 10_000
    assert set(result["sweeps"]) == models


def test_train_bench_times_every_pyann_row(tmp_path):
    path = tmp_path / "train.json"
    assert main(["train", "--models", "cnn3", "--batch", "8", "--repeats", "1", "--warmup", "0",
                 "--no-torch", "--workers", "2", "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    engines = {r["engine"]: r for r in result["rows"]}
    assert "pyann (NumPy, 2 data-parallel workers)" in engines
    assert all(r["images_per_s"] > 0 for r in result["rows"] if r["engine"].startswith("pyann"))
    assert engines["PyTorch CPU"]["note"] == "skipped (--no-torch)"
