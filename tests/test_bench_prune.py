"""python -m bench prune: every row computes the pruned model it names (checked inside the run),
the JSON holds every row, the bytes and the provenance; a real tiny training on MNIST-shaped data.
The density sweep: break-even interpolation, its JSON and figure; cnn3 at per-layer densities."""
import importlib.util
import json
import math

import numpy as np
import pytest

import bench.__main__ as bench_main
import bench.prune as bench_prune
import pyann.cli.common
import pyann.data
from pyann import nn, pruning
from pyann.data import Dataset

HAVE_SCIPY = importlib.util.find_spec("scipy") is not None


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


@pytest.fixture
def data_stand_in(monkeypatch, tmp_path, tiny_mnist):
    monkeypatch.setattr(pyann.data, "load", lambda name, **kw: tiny_mnist)
    monkeypatch.setattr(pyann.cli.common, "prepare_data", lambda name, args, **kw: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tiny_mnist


def test_bench_prune_rows_bytes_and_json(tmp_path, capsys, data_stand_in):
    assert bench_main.main(["prune", "--models", "fcn2", "--n", "200", "--repeats", "1", "--epochs", "1",
                            "--density", "0.2", "--retrain-epochs", "0", "--no-sweep", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "pruned to 20 % of each layer's weights, not retrained" in out
    result = json.loads((tmp_path / "prune.json").read_text())
    rows = {(r["row"], r["mode"]) for r in result["rows"]}
    for want in [("NumPy/OpenBLAS dense", "batched"), ("pyann sparse", "batched"), ("pyann 4x1 blocked", "batched"),
                 ("pyann sparse", "one image at a time"), ("model file bytes", "-"),
                 ("pyann zero-skipping (dense-stored weights)", "batched"),
                 ("pyann zero-skipping (dense-stored weights)", "one image at a time"),
                 ("pyann sparse + zero-skipping", "batched"), ("pyann sparse + zero-skipping", "one image at a time")]:
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
    timed = [r for r in result["rows"] if "seconds" in r]
    for r in timed:                     # the columns every row carries
        assert r["weight_density"] == pytest.approx(0.2, abs=0.01) and r["images_per_s"] > 0
        assert r["speedup"] > 0 and r["model_bytes"] in (size["dense_bytes"], size["sparse_bytes"])
    assert by_row[("NumPy/OpenBLAS dense", "batched")]["mac_share"] == pytest.approx(1.0)
    assert by_row[("NumPy/OpenBLAS dense", "batched")]["speedup"] == 1.0
    # the sparse kernel executes about the kept weights (the last tile's padding samples too)
    assert 0.2 <= by_row[("pyann sparse", "batched")]["mac_share"] < 0.2 * 256 / 200 + 0.01
    assert by_row[("pyann sparse", "one image at a time")]["mac_share"] == pytest.approx(0.2, abs=0.005)
    assert by_row[("pyann zero-skipping (dense-stored weights)", "batched")]["mac_share"] < 1.0
    # pruned weights and zero inputs both skipped: at most the kept weights' multiply-adds
    for mode in ("batched", "one image at a time"):
        both = by_row[("pyann sparse + zero-skipping", mode)]
        assert 0 < both["mac_share"] <= by_row[("pyann sparse", mode)]["mac_share"] + 1e-9   # same tile padding
        assert both["model_bytes"] == size["sparse_bytes"]
    assert result["workload"] == {"n": 200, "density": 0.2, "models": ["fcn2"], "cnn3_densities": None}
    assert "provenance" in result and "sweep" not in result


def test_bench_prune_refuses_an_unknown_model(tmp_path, data_stand_in):
    with pytest.raises(SystemExit) as exit_:
        bench_main.main(["prune", "--models", "fcn2,vgg", "--out", str(tmp_path)])
    assert exit_.value.code == 2


@pytest.mark.parametrize("value", ["0.3,0.2", "0.3,0,0.1", "0.3,1.5,0.1", "a,b,c", "0.3,,0.1", "0.3,nan,0.1",
                                   "0.1,0.1,0.1,0.1"])
def test_bad_cnn3_densities_are_refused_with_exit_code_2(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exit_:
        bench_main.main(["prune", "--models", "cnn3", "--cnn3-densities", value, "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert "--cnn3-densities" in capsys.readouterr().err


def test_break_even_interpolates_a_synthetic_curve():
    dens = bench_prune.SWEEP_DENSITIES
    # speedup 0.25 / d is a straight line in log-log: the interpolation finds 25 % exactly
    found = bench_prune.break_even(dens, [0.25 / d for d in dens])
    assert found["density"] == pytest.approx(0.25, rel=1e-9) and found["text"] == "25 %"
    assert found["crossings"] == 1
    # between the points 20 % (speedup 2) and 30 % (0.5): log-linear, 2 and 0.5 are symmetric about 1
    s = [8, 7, 6, 5, 2, 0.5, 0.4, 0.3]
    assert bench_prune.break_even(dens, s)["density"] == pytest.approx(math.sqrt(0.2 * 0.3))
    assert bench_prune.break_even(dens, [3.0] * 8) == {"density": None, "text": "above 60 %", "crossings": 0}
    assert bench_prune.break_even(dens, [0.9] * 8)["text"] == "below 1 %"
    # a speedup of exactly 1 is break-even at that point; order of the points does not matter
    assert bench_prune.break_even([0.4, 0.1, 0.2], [0.5, 2.0, 1.0])["density"] == pytest.approx(0.2)
    # a noisy curve crossing twice: the last crossing (20-30 %), and the count says the curve is noisy
    noisy = bench_prune.break_even(dens, [4, 3, 1.2, 0.8, 1.1, 0.9, 0.5, 0.4])
    assert 0.2 < noisy["density"] < 0.3 and noisy["crossings"] == 2
    # a dip below 1 at the sparsest point only: faster everywhere above it
    assert bench_prune.break_even(dens, [0.9, 1.1, 1.2, 1.3, 1.5, 1.4, 1.2, 1.1])["text"] == "above 60 %"
    assert bench_prune.break_even(dens, [0.9, 1.1, 1.2, 1.3, 1.5, 1.4, 1.2, 0.9])["density"] > 0.4
    with pytest.raises(ValueError):
        bench_prune.break_even([], [])
    with pytest.raises(ValueError):
        bench_prune.break_even([0.1, 0.2], [1.0, 0.0])


def test_sweep_json_shape_and_figure(tmp_path, monkeypatch, capsys):
    def no_data(*a, **kw):
        raise AssertionError("the sweep alone needs no dataset")
    monkeypatch.setattr(pyann.data, "load", no_data)
    assert bench_main.main(["prune", "--sweep", "--sweep-n", "70", "--sweep-n-one", "40", "--sweep-repeats", "1",
                            "--sweep-densities", "0.5,0.05", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "prune.json").read_text())
    assert result["rows"] == [] and result["workload"]["models"] == []
    sweep = result["sweep"]
    assert sweep["shapes"] == ["784x300", "512x512"] and sweep["densities"] == [0.05, 0.5] and sweep["n"] == 70
    assert sweep["n_one_at_a_time"] == 40
    points = sweep["points"]
    for shape in sweep["shapes"]:
        for mode in ("batched", "one image at a time"):
            group = [p for p in points if p["shape"] == shape and p["mode"] == mode]
            assert {p["n"] for p in group} == {70 if mode == "batched" else 40}
            base = next(p for p in group if p["row"] == "NumPy/OpenBLAS dense")
            assert base["speedup_vs_numpy"] == 1.0
            for p in group:
                assert p["seconds"] > 0 and p["speedup_vs_numpy"] == pytest.approx(base["seconds"] / p["seconds"])
            sparse = {(p["row"], p["structure"], p["density"]): p for p in group if p["structure"] != "dense"}
            i, o = map(int, shape.split("x"))
            kept = sparse[("pyann sparse", "unstructured", 0.05)]["macs_per_sample"]
            assert kept == round(0.05 * i * o)                    # the layer is pruned as stated
            if mode == "batched":
                assert ("pyann 4x1 blocked", "4x1 blocks", 0.5) in sparse
                assert sparse[("pyann 4x1 blocked", "4x1 blocks", 0.05)]["macs_per_sample"] == 4 * round(0.05 * i * o / 4)
                # scipy is an optional peer: its rows exist exactly when it is installed
                assert (("scipy.sparse CSR", "unstructured", 0.5) in sparse) == HAVE_SCIPY
            else:
                assert ("pyann sparse", "4x1 blocks", 0.5) in sparse
    be = sweep["break_even"]
    assert len(be) == 2 * (2 + HAVE_SCIPY + 2)   # per shape: sparse, blocked (scipy) batched; 2 one-image series
    for b in be:
        for vs in ("vs NumPy/OpenBLAS dense", "vs pyann dense"):
            d, text = b[vs]["density"], b[vs]["text"]
            assert (d is None and text in ("below 5 %", "above 50 %")) or (0.05 <= d <= 0.5 and text.endswith(" %"))
    png = tmp_path / "prune-sweep.png"
    assert sweep["figure"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "break-even" in out and "784x300 one image" in out


def test_cnn3_rows_compute_the_pruned_model(tmp_path, monkeypatch, capsys, data_stand_in):
    dense = nn.build("cnn3", rng=0)     # untrained: the test is about the outputs, not the accuracy
    monkeypatch.setattr(bench_prune, "cnn3_dense_model", lambda args, data: (dense, "a test model"))
    assert bench_main.main(["prune", "--models", "cnn3", "--n", "70", "--repeats", "1", "--no-sweep",
                            "--cnn3-retrain-epochs", "0", "--cnn3-densities", "0.5,0.2,0.3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "50 % (layer 0), 20 % (layer 3), 30 % (layer 7)" in out
    result = json.loads((tmp_path / "prune.json").read_text())
    rows = {r["row"]: r for r in result["rows"] if r["model"] == "cnn3" and r["mode"] in ("batched", "-")}
    one = {r["row"]: r for r in result["rows"] if r["model"] == "cnn3" and r["mode"] == "one image at a time"}
    for want in ("NumPy/OpenBLAS dense im2col", "pyann sparse, kernel measured per layer",
                 "pyann sparse, every layer", "pyann 4x1 blocked"):
        assert want in rows and want in one
        assert one[want]["accuracy"] == rows[want]["accuracy"]   # one image at a time: the same model
    assert "model file bytes" in rows
    # the same pruning done here: the rows' accuracy is the pruned model's, computed by its forward
    model = pruning.clone(dense)
    pruning.prune_to_density(model, {"0": 0.5, "3": 0.2, "7": 0.3})
    from pyann.data import to_float
    from pyann.pruning.study import CNN3_MEAN, CNN3_STD
    x = to_float(data_stand_in.x_test[:70], CNN3_MEAN, CNN3_STD)
    acc = float(np.mean(model.eval().forward(x).argmax(1) == data_stand_in.y_test[:70]))
    for name, r in rows.items():
        if name == "model file bytes" or r["weights"] != "elementwise":
            continue
        assert r["accuracy"] == acc, name
        assert r["weight_density"] == pytest.approx(bench_prune.weight_density(model))
    total = (0.5 * 288 + 0.2 * 18432 + 0.3 * 31360) / (288 + 18432 + 31360)
    assert rows["NumPy/OpenBLAS dense im2col"]["weight_density"] == pytest.approx(total, abs=1e-3)
    assert rows["NumPy/OpenBLAS dense im2col"]["mac_share"] == pytest.approx(1.0)
    # every layer sparse: about the kept weights' multiply-adds per output position (tiles padded)
    report = pruning.sparsity_report(model, (1, 28, 28))
    assert report.gain <= rows["pyann sparse, every layer"]["mac_share"] < report.gain * 1.1
    assert rows["pyann sparse, every layer"]["model_bytes"] == report.compact_file_bytes
    assert rows["NumPy/OpenBLAS dense im2col"]["model_bytes"] == report.dense_file_bytes
    assert result["workload"]["cnn3_densities"] == [0.5, 0.2, 0.3]


def test_quick_sets_a_tiny_run_and_explicit_flags_win(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(bench_prune, "run", seen.append)
    assert bench_main.main(["prune", "--quick", "--sweep-n", "256", "--out", str(tmp_path)]) == 0
    assert bench_main.main(["prune", "--out", str(tmp_path)]) == 0
    quick, default = seen
    assert (quick.n, quick.repeats, quick.models, quick.sweep_n_one, quick.sweep_repeats) == (300, 1, ["fcn2"], 128, 1)
    assert (quick.retrain_epochs, quick.cnn3_retrain_epochs) == (0, 0)
    assert (default.retrain_epochs, default.cnn3_retrain_epochs) == (8, 2)
    assert quick.sweep_n == 256                                   # given explicitly: kept
    # the default run: every model, the paper's cnn3 allocation, the sweep included
    assert default.models == ["fcn2", "mlp5", "cnn3"] and default.cnn3_densities == [0.285, 0.154, 0.112]
    assert not default.sweep and not default.no_sweep and default.sweep_n is None and default.n == 10000
    with pytest.raises(SystemExit) as exit_:                     # one or the other
        bench_main.main(["prune", "--sweep", "--no-sweep", "--out", str(tmp_path)])
    assert exit_.value.code == 2


def test_retrain_epochs_retrains_with_the_masks_held(tmp_path, capsys, data_stand_in):
    assert bench_main.main(["prune", "--models", "fcn2", "--n", "100", "--repeats", "1", "--epochs", "1",
                            "--density", "0.2", "--retrain-epochs", "1", "--no-sweep", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "retrained 1 epoch(s) on 600 training images, masks held" in out
    assert "fcn2, pruned to 20 % of each layer (magnitude, retrained 1 epoch with the masks held)" in out
    result = json.loads((tmp_path / "prune.json").read_text())
    assert result["models"]["fcn2"]["retrained"] == "retrained 1 epoch with the masks held"
    timed = [r for r in result["rows"] if "seconds" in r]
    assert timed and all(r["weight_density"] == pytest.approx(0.2, abs=0.01) for r in timed)   # still pruned
    same = {r["accuracy"] for r in timed if r["weights"] == "elementwise"}
    assert len(same) == 1   # every row computes the one retrained model (each checked against it in the run)
    # a second run loads both retrained models (elementwise and 4x1) from the cache: the same rows' accuracy
    assert bench_main.main(["prune", "--models", "fcn2", "--n", "100", "--repeats", "1", "--epochs", "1",
                            "--density", "0.2", "--retrain-epochs", "1", "--no-sweep", "--out", str(tmp_path / "again")]) == 0
    out = capsys.readouterr().out
    assert out.count("retrained 1 epoch(s), masks held: from the cache") == 2 and "training images, masks held" not in out
    again = json.loads((tmp_path / "again" / "prune.json").read_text())
    assert {(r["row"], r["mode"], r["accuracy"]) for r in again["rows"] if "seconds" in r} == \
        {(r["row"], r["mode"], r["accuracy"]) for r in timed}
