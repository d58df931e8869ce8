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


def test_bench_relu_writes_both_models_rows_and_figure(tmp_path, monkeypatch, data_stand_in):
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
    assert main(["relu", "--n", "200", "--repeats", "1", "--repeats-one", "1", "--activity-l1", "0,0.001",
                 "--out", str(tmp_path)]) == 0
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


def test_kernels_bench_has_the_dense_floor_rows(tmp_path, capsys):
    assert main(["kernels", "--n", "40", "--repeats", "1", "--floor-repeats", "1", "--floor-threads", "1,2",
                 "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "kernels.json").read_text())
    assert "pyann C dense packed" in {r["kernel"] for r in result["rows"]}
    floor = result["floor"]
    assert "thread CPU time" in floor["method"] and "round-robin" in floor["method"]
    rows = floor["rows"]
    kernels_seen = ["numpy @ (OpenBLAS)", "pyann dense (old)", "pyann dense packed"]
    for shape in ("784x512", "512x512"):
        one = [r for r in rows if r["shape"] == shape and r["threads"] == 1]
        assert [r["kernel"] for r in one] == kernels_seen and {r["clock"] for r in one} == {"thread CPU"}
        assert one[0]["vs_openblas"] == 1.0 and all(r["seconds"] > 0 and r["vs_openblas"] > 0 for r in one)
        assert len([r for r in rows if r["shape"] == shape]) == 6   # 1 thread and 2
    assert "dense floor" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["kernels", "--floor-threads", "0"])


# ---- the one command line of the benchmarks, and the quickstart ---------------------------------

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import bench.relu
import pyann.cli.common
import pyann.data.resolution as resolution

REPO = Path(__file__).resolve().parents[1]


def test_help_lists_every_benchmark_and_the_main_ones_options(capsys):
    from bench.__main__ import BENCHMARKS
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for name, (_, description) in BENCHMARKS.items():
        assert f"  {name} " in text and description in text
    assert "  all " in text and "--quick" in text and "--latency-split" in text and "(default: 20)" in text


@pytest.mark.parametrize("name,flags", [("relu", ["--out DIR", "--data-root DIR", "--offline", "--quick"]),
                                        ("kernels", ["--out DIR"]),
                                        ("train", ["--out DIR", "--batch-size", "--depth", "(default: cnn3,wrn)"])])
def test_each_benchmark_uses_the_shared_flag_names(name, flags, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for flag in flags:
        assert flag in text
    assert "--json" not in text and "--batch " not in text and "wrn16_2" not in text


def test_quick_sets_a_tiny_run_and_explicit_flags_win(monkeypatch):
    seen = []
    monkeypatch.setattr(bench.relu, "run", seen.append)
    assert main(["relu", "--quick", "--n", "250", "--out", str(Path.cwd() / "bench-results")]) == 0
    args = seen[0]
    assert (args.epochs, args.n, args.repeats, args.repeats_one, args.no_sweep) == (1, 250, 1, 1, True)
    assert args.train_images == 5000 and args.activity_l1 == [0.0]
    assert not args.latency_split   # the slow optional rows are opt-in


def test_default_run_benchmarks_the_papers_model_and_the_sparse_variant_is_opt_in(monkeypatch):
    seen = []
    monkeypatch.setattr(bench.relu, "run", seen.append)
    assert main(["relu", "--out", str(Path.cwd() / "bench-results")]) == 0
    assert main(["relu", "--activity-l1", "0,1e-3", "--out", str(Path.cwd() / "bench-results")]) == 0
    assert seen[0].activity_l1 == [0.0] and seen[0].epochs == 20   # one model to train on a first run
    assert seen[1].activity_l1 == [0.0, 1e-3]


def _fake_training(monkeypatch, data):
    trained = {}

    def fake_trained_model(name, dataset, seed=0, epochs=20, progress=None, activity_l1=0.0, callbacks=(), **kw):
        if activity_l1 not in trained:
            trained[activity_l1] = pyann.recipes.mlp_recipe("mlp5", data, epochs=1, activity_l1=activity_l1,
                                                            progress=False, callbacks=callbacks)
        model, history = trained[activity_l1]
        return model, history.to_dict()
    monkeypatch.setattr(pyann.recipes, "trained_model", fake_trained_model)


def test_relu_bench_says_what_it_trains_and_where_its_data_came_from(tmp_path, monkeypatch, capsys):
    data = _digits()
    monkeypatch.setattr(pyann.data, "load", lambda name, **kw: data)
    monkeypatch.setattr(pyann.cli.common, "prepare_data", lambda name, args, **kw: print("data: stand-in header"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _fake_training(monkeypatch, data)
    assert main(["relu", "--n", "200", "--repeats", "1", "--repeats-one", "1", "--no-sweep",
                 "--activity-l1", "0", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("data: stand-in header")
    cached = tmp_path / "cache" / "pyann" / "models" / "mlp5-mnist-e20-s0.npz"
    assert (f"mlp5: not cached yet: training mlp5 (the project recipe) on mnist for 20 epochs, seed 0, once"
            in out and f"cached as {cached}" in out)
    assert "  mlp5: epoch 1/20, test acc " in out           # progress, one line per epoch
    rows = json.loads((tmp_path / "relu.json").read_text())["rows"]
    assert not any("both cores per image" in r["row"] for r in rows)   # opt-in now
    assert main(["relu", "--n", "200", "--repeats", "1", "--repeats-one", "1", "--no-sweep", "--activity-l1", "0",
                 "--latency-split", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "relu.json").read_text())["rows"]
    assert sum("both cores per image" in r["row"] for r in rows) == 2


@pytest.mark.realdata
def test_relu_bench_downloads_mnist_unless_offline(tmp_path, monkeypatch, capsys, data_root):
    """No dataset anywhere: the bench downloads MNIST into the user cache (md5-checked), or with
    --offline stops with one line that says so. The network is a fake serving the real files."""
    import io
    import pyann.data.download as download
    monkeypatch.delenv("PYANN_DATA", raising=False)
    monkeypatch.delenv("PYANN_OFFLINE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(resolution, "CHECKOUT_DIRS", ())
    monkeypatch.setattr(resolution, "SYSTEM_DIRS", ())
    served = []

    def opener(url, timeout=60.0):
        served.append(url)
        blob = (data_root / "mnist" / url.rsplit("/", 1)[1]).read_bytes()
        response = io.BytesIO(blob)
        response.headers = {"Content-Length": str(len(blob))}
        return response
    monkeypatch.setattr(download, "default_opener", opener)
    monkeypatch.setattr(pyann.data, "load", lambda name, **kw: _digits())
    monkeypatch.setattr(bench.relu, "bench_model", lambda *a, **k: (_ for _ in ()).throw(SystemExit(0)))
    with pytest.raises(SystemExit) as exit_:
        main(["relu", "--offline", "--out", str(tmp_path / "out")])
    assert exit_.value.code == 1 and served == []
    err = capsys.readouterr().err
    assert err.startswith("python -m bench relu: error: MNIST not found") and "offline mode" in err
    with pytest.raises(SystemExit):   # bench_model's stand-in stops the run once the data is there
        main(["relu", "--out", str(tmp_path / "out")])
    assert len(served) == 4
    cache = tmp_path / "cache" / "pyann" / "mnist"
    assert (f"data: MNIST from {cache} (via download): official files (downloaded, md5 checked)"
            in capsys.readouterr().out)


def _fresh_copy(target: Path) -> Path:
    """The checkout's files as a clone would have them (tracked and new, not ignored: no build
    products, no caches) in target/main, with target/shared/datasets beside it."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    clone = target / "main"
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / rel)
    return clone


@pytest.mark.realdata
def test_quickstart_main_command_in_a_fresh_clone(tmp_path, data_root):
    """`python -m bench` (here with --quick) in a fresh copy of the repository, with no
    PYANN_DATA and an empty cache: it finds ../shared/datasets beside the checkout by itself,
    trains and caches its models, and writes its results."""
    clone = _fresh_copy(tmp_path)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "datasets").symlink_to(data_root.resolve(), target_is_directory=True)
    assert not list(clone.glob("pyann/_kernels*"))   # nothing built in the copy: the kernels come from
    env = {k: v for k, v in os.environ.items() if k not in ("PYANN_DATA", "PYANN_OFFLINE", "PYTHONPATH")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), PYANN_KERNELS_DIR=str(REPO))   # this checkout's build
    run = subprocess.run([sys.executable, "-m", "bench", "--quick"], cwd=clone, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    shared = tmp_path / "shared" / "datasets" / "mnist"
    assert (f"data: MNIST from {shared} (via ../shared/datasets beside the checkout): official files "
            f"(md5 checked)") in out
    assert "mlp5: not cached yet: training mlp5" in out
    assert (tmp_path / "cache" / "pyann" / "models" / "mlp5-mnist-e1-s0-n5000.npz").is_file()
    assert (clone / "bench-results" / "relu.json").is_file()
    assert "Traceback" not in run.stderr


def test_training_uses_one_blas_thread_on_a_busy_machine(monkeypatch, capsys):
    from threadpoolctl import threadpool_info
    monkeypatch.setattr(os, "getloadavg", lambda: (99.0, 99.0, 99.0))
    with bench.relu._training_threads():
        threads = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    assert threads == {1} and "one BLAS thread" in capsys.readouterr().out
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    with bench.relu._training_threads():
        pass
    assert capsys.readouterr().out == ""
