"""python -m bench prune: every row computes the pruned model it names (checked inside the run),
the JSON holds every row, the bytes and the provenance; a real tiny training on MNIST-shaped data."""
import json

import numpy as np
import pytest

import bench.__main__ as bench_main
import pyann.cli.common
import pyann.data
from pyann.data import Dataset


@pytest.fixture
def tiny_mnist():
    rng = np.random.default_rng(0)
    centres = rng.integers(0, 255, (10, 1, 28, 28))
    def split(n):
        y = rng.integers(0, 10, n)
        x = np.clip(centres[y] + rng.normal(0, 40, (n, 1, 28, 28)), 0, 255).astype(np.uint8)
        return x, y.astype(np.int64)
    (xtr, ytr), (xte, yte) = split(600), split(200)
    return Dataset(xtr, ytr, xte, yte, name="mnist", source_path=None, classes=tuple(map(str, range(10))),
                   official=True)


def test_bench_prune_rows_bytes_and_json(tmp_path, monkeypatch, capsys, tiny_mnist):
    monkeypatch.setattr(pyann.data, "load", lambda name, **kw: tiny_mnist)
    monkeypatch.setattr(pyann.cli.common, "prepare_data", lambda name, args, **kw: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert bench_main.main(["prune", "--models", "fcn2", "--n", "200", "--repeats", "1", "--epochs", "1",
                            "--density", "0.2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "pruned to 20 % of each layer's weights, not retrained" in out
    result = json.loads((tmp_path / "prune.json").read_text())
    rows = {(r["row"], r["mode"]) for r in result["rows"]}
    for want in [("NumPy/OpenBLAS dense", "batched"), ("pyann sparse", "batched"), ("pyann 4x1 blocked", "batched"),
                 ("pyann sparse", "one image at a time"), ("model file bytes", "-")]:
        assert want in rows
    size = next(r for r in result["rows"] if r["row"] == "model file bytes")
    # fcn2 at 20 %: the dense file holds 266,200 float32 weights and the biases; the compact one
    # float32 values and 16-bit indices of ~20 % of them (6 / 4 x 0.2 = 0.3 of dense), plus row pointers
    weights = 4 * (784 * 300 + 300 * 100 + 100 * 10)
    assert weights < size["dense_bytes"] < weights + 20_000
    assert size["sparse_bytes"] < 0.33 * size["dense_bytes"]
    by_row = {(r["row"], r["mode"]): r for r in result["rows"]}
    assert by_row[("pyann sparse", "batched")]["model_bytes"] == size["sparse_bytes"]
    assert by_row[("pyann dense", "batched")]["model_bytes"] == size["dense_bytes"]
    same = [r["accuracy"] for r in result["rows"] if r.get("weights") == "elementwise"]
    assert len(set(same)) == 1          # one pruned model, one accuracy, whatever the kernel
    assert result["workload"] == {"n": 200, "density": 0.2, "models": ["fcn2"]} and "provenance" in result


def test_bench_prune_refuses_an_unknown_model(tmp_path, monkeypatch, tiny_mnist):
    monkeypatch.setattr(pyann.data, "load", lambda name, **kw: tiny_mnist)
    monkeypatch.setattr(pyann.cli.common, "prepare_data", lambda name, args, **kw: None)
    with pytest.raises(SystemExit) as exit_:
        bench_main.main(["prune", "--models", "fcn2,vgg", "--out", str(tmp_path)])
    assert exit_.value.code == 2
