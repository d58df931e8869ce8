"""What the benchmarks print and write: the ONNX Runtime peer row, the terminal table (tabulate,
text left / numbers right, 120 columns), and the provenance record in the bench JSON."""
import json
import sys

import numpy as np
import pytest

import pyann.data
import pyann.recipes
from bench.__main__ import main
from bench.common import format_table
from pyann.data import Dataset


def _digits(n_train=600, n_test=200, seed=0):
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 10, n)
        x = np.zeros((n, 1, 28, 28), np.uint8)
        for i, label in enumerate(y):
            x[i, 0, 2 + 2 * label:4 + 2 * label, 4:24] = 255
            x[i, 0][rng.random((28, 28)) < 0.05] = 90
        return x, y.astype(np.int64)
    (xtr, ytr), (xte, yte) = make(n_train), make(n_test)
    return Dataset(xtr, ytr, xte, yte, name="mnist", source_path=None, classes=tuple(map(str, range(10))),
                   official=False, notes=("synthetic digits for a test",))


@pytest.fixture
def tiny_relu_bench(monkeypatch, data_stand_in):
    """Runs `python -m bench relu` on synthetic digits with one tiny model: returns run(tmp, *extra)."""
    data = _digits()
    monkeypatch.setattr(pyann.data, "load", lambda name, **kw: data)
    trained = {}

    def fake_trained_model(name, dataset, seed=0, epochs=20, progress=None, activity_l1=0.0, **kw):
        if activity_l1 not in trained:
            trained[activity_l1] = pyann.recipes.mlp_recipe("mlp5", data, epochs=1, activity_l1=activity_l1,
                                                            progress=False)
        model, history = trained[activity_l1]
        return model, history.to_dict()
    monkeypatch.setattr(pyann.recipes, "trained_model", fake_trained_model)

    def run(tmp_path, *extra):
        argv = ["relu", "--n", "100", "--repeats", "1", "--repeats-one", "1", "--no-sweep",
                "--no-latency-split", "--activity-l1", "0", "--out", str(tmp_path), *extra]
        assert main(argv) == 0
        return json.loads((tmp_path / "relu.json").read_text())
    return run


def test_onnxruntime_is_a_timed_peer_row_in_both_modes(tmp_path, tiny_relu_bench, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    result = tiny_relu_bench(tmp_path, "--one-image-peers")
    out = capsys.readouterr().out
    rows = [r for r in result["rows"] if not r.get("quoted")]
    for mode in ("batched", "one image"):
        ort = next(r for r in rows if r["row"] == "ONNX Runtime CPU dense" and r["mode"] == mode)
        numpy_row = next(r for r in rows if r["row"] == "NumPy dense" and r["mode"] == mode)
        assert ort["seconds"] > 0 and ort["images_per_s"] > 0 and len(ort["timings"]["all"]) == 1
        assert ort["speedup_vs_numpy"] == pytest.approx(numpy_row["seconds"] / ort["seconds"])
        # the same weights: the same predictions up to float rounding on a near-tie
        assert abs(ort["accuracy"] - numpy_row["accuracy"]) <= 0.02
        assert ort["kernel"] == "onnxruntime" and ort["onnxruntime"]
    assert "ONNX Runtime CPU dense" in out


def test_onnxruntime_row_says_not_installed(tmp_path, tiny_relu_bench, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)   # import onnxruntime -> ImportError
    result = tiny_relu_bench(tmp_path, "--one-image-peers")
    missing = [r for r in result["rows"] if r["row"].startswith("ONNX Runtime CPU dense")]
    assert len(missing) == 2 and all(r["note"] == "not installed" and "seconds" not in r for r in missing)
    assert all("not installed" in r["row"] for r in missing)


def test_bench_table_fits_120_columns_text_left_numbers_right(tmp_path, tiny_relu_bench, capsys):
    tiny_relu_bench(tmp_path, "--layers", "1,2,3,4")
    out = capsys.readouterr().out
    table_lines = [line for line in out.splitlines() if "NumPy dense" in line or "---" in line]
    assert table_lines
    printed = out.split("\nmlp5 on mnist", 1)[1].splitlines()   # the header, machine, tables (not progress lines)
    assert max(len(line) for line in printed) <= 120, [line for line in printed if len(line) > 120]
    numpy_line = next(line for line in out.splitlines() if line.startswith("NumPy dense"))
    assert numpy_line.split()[:3] == ["NumPy", "dense", "batched"]   # text columns start at the left edge


def test_format_table_alignment_and_width():
    rows = [{"name": "a", "v": 1.5, "t": "x"}, {"name": "a much longer name " * 8, "v": 12345.25, "t": None}]
    table = format_table(rows, [("name", "name", "s"), ("v", "value", ".2f"), ("t", "text", "s")], max_width=60)
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 60
    header, rule = lines[0], lines[1]
    assert header.startswith("name")
    assert lines[2].startswith("a ")                  # text: left-aligned
    v_end = rule.split("  ")[0].__len__() + 2 + len(rule.split("  ")[1])
    assert lines[2][:v_end].endswith("1.50")           # numbers: right-aligned, flush with the rule
    assert "12345.25" in table and "-" in lines[-1] or "-" in table   # a missing value prints as '-'


def test_bench_json_records_provenance(tmp_path, tiny_relu_bench):
    import pyann
    result = tiny_relu_bench(tmp_path)
    prov = result["provenance"]
    assert prov["pyann_version"] == pyann.__version__
    assert prov["git_commit"]                          # a hex commit here, "unknown" outside a checkout
    assert prov["command_line"]
    assert prov["machine"] == result["machine"]        # the machine the table header printed
    ds = prov["dataset"]
    assert ds["name"] == "mnist" and ds["official"] is False
    assert len(ds["checksum"]["value"]) == 64


def test_relu_results_table_keeps_row_names_whole_and_headers_short():
    from bench.relu import results_table
    names = ["NumPy dense", "pyann combined (low-rank r=32, margin=0, layers 3,4)", "ONNX Runtime CPU dense",
             "pyann masked (paper: history tau=0.5, layers 3,4)"]
    rows = [{"model": "mlp5", "row": n, "mode": m, "accuracy": 0.9735, "seconds": 0.2 + i, "images_per_s": 8658.0,
             "mac_share": 0.5, "speedup_vs_numpy": 1.0} for i, n in enumerate(names) for m in ("batched", "one image")]
    rows.append({"model": "paper", "row": "paper dense (quoted, i7-7700)", "mode": "one image", "accuracy": 0.9841,
                 "seconds": 45.73, "images_per_s": 219.0, "mac_share": 1.0})
    text = results_table(rows)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 120
    for n in names:                                          # one line each: not wrapped
        assert sum(line.startswith(n + " ") for line in lines) == 2
    header_lines = [i for i, line in enumerate(lines) if line.startswith("row")]
    for i in header_lines:                                   # a header of at most two lines above its rule
        assert lines[i + 1].startswith("---") or lines[i + 2].startswith("---")
    paper_line = next(line for line in lines if line.startswith("paper dense"))
    assert paper_line.rstrip().endswith("-")                 # a missing number: '-' at the right edge


def test_prune_bench_has_the_onnxruntime_peer(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxruntime")
    import bench.__main__ as bench_main
    import pyann.cli.common
    data = _digits()
    monkeypatch.setattr(pyann.data, "load", lambda name, **kw: data)
    monkeypatch.setattr(pyann.cli.common, "prepare_data", lambda name, args, **kw: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert bench_main.main(["prune", "--models", "fcn2", "--n", "100", "--repeats", "1", "--epochs", "1",
                            "--retrain-epochs", "0", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "prune.json").read_text())["rows"]
    ort = [r for r in rows if r["row"].startswith("ONNX Runtime")]
    dense = next(r for r in rows if r["row"] == "pyann dense" and r["mode"] == "batched")
    assert len(ort) == 1 and ort[0]["mode"] == "batched" and ort[0]["seconds"] > 0
    assert ort[0]["accuracy"] == pytest.approx(dense["accuracy"], abs=0.02)   # checked against the model in the run too


def test_one_image_peer_rows_are_opt_in(tmp_path, tiny_relu_bench, capsys):
    # a Python loop over 10,000 images: minutes per pass, so the default run leaves them out and says so
    result = tiny_relu_bench(tmp_path)
    peers = [(r["row"], r["mode"]) for r in result["rows"] if r.get("kernel") in ("torch", "onnxruntime")
             or r["row"].startswith(("PyTorch", "ONNX Runtime"))]
    assert peers and all(mode == "batched" for _, mode in peers)
    assert "add --one-image-peers" in capsys.readouterr().out
