"""Training and command-line hardening: resuming only the same run, output folders checked
before any work, divergence stops training, command-line values checked where parsed, empty
inputs and bad worker counts refused, model and results.json written as a pair.

Every test trains on tiny synthetic data (or not at all): the commands' data loaders are
replaced by stand-ins that return a few hundred images, or that fail the test if reached."""
import json

import numpy as np
import pytest

import pyann.data
from pyann import cnn_recipes, io, nn
from pyann.__main__ import main as pyann_main
from pyann.data import Dataset
from pyann.optim import SGD, Adam, Constant, CosineLR
from pyann.train import (CHECKPOINT_NAME, ResumeMismatchError, TrainingDivergedError, evaluate, fit,
                         load_checkpoint, predict, save_checkpoint, History)


def _blobs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, 8)) * 3
    y = rng.integers(0, 3, n)
    return (centres[y] + rng.standard_normal((n, 8))).astype(np.float32), y


def _mlp(seed=0):
    return nn.Sequential(nn.Linear(8, 16, rng=seed), nn.ReLU(), nn.Linear(16, 3, rng=seed + 1))


def _fit(epochs, tmp_path, schedule=None, seed=0, config=None, resume=False, lr=0.05):
    x, y = _blobs()
    model = _mlp()
    opt = SGD(model.parameters(), lr=lr, momentum=0.9)
    history = fit(model, (x, y), epochs, opt, batch_size=32, seed=seed, schedule=schedule,
                  checkpoint_dir=tmp_path, resume=resume, config=config, progress=False)
    return model, history


def _images(name, n_train=256, n_test=64, shape=(1, 28, 28)):
    """A tiny learnable image dataset; each name gets its own labels (as MNIST and
    Fashion-MNIST differ), so a run of one is not a run of the other."""
    rng = np.random.default_rng(sum(map(ord, name)))

    def make(n):
        y = rng.integers(0, 10, n)
        x = (rng.random((n,) + shape) * 40).astype(np.uint8)
        for i, label in enumerate(y):
            x[i, :, 2 + 2 * label:4 + 2 * label, 4:24] = 255
        return x, y.astype(np.int64)
    (xtr, ytr), (xte, yte) = make(n_train), make(n_test)
    return Dataset(xtr, ytr, xte, yte, name=name, source_path=None, classes=tuple(map(str, range(10))),
                   official=False)


@pytest.fixture
def tiny_data(monkeypatch, data_stand_in):
    """pyann.data.load returns a tiny synthetic dataset of the asked name; records the calls."""
    calls = []

    def load(name, **kw):
        calls.append(name)
        return _images(name)
    monkeypatch.setattr(pyann.data, "load", load)
    return calls


class _ReachedWork(Exception):
    """Raised by stand-ins for data loading / benchmark runs: the command went past its checks."""


def _no_work(*args, **kwargs):
    raise _ReachedWork


# ---- 4. resuming only the same run --------------------------------------------------------------

def test_resume_refuses_another_configuration_naming_each_field(tmp_path):
    _fit(1, tmp_path, config={"dataset": "mnist", "variant": "plain"})
    with pytest.raises(ResumeMismatchError) as err:
        _fit(2, tmp_path, seed=1, config={"dataset": "fashion-mnist", "variant": "plain"}, resume=True)
    message = str(err.value)
    assert "dataset: checkpoint 'mnist', this run 'fashion-mnist'" in message
    assert "seed: checkpoint 0, this run 1" in message
    assert "variant" not in message.split("Differences:")[1]   # equal fields are not listed


def test_resume_refuses_another_optimiser_and_batch_size(tmp_path):
    _fit(1, tmp_path)
    x, y = _blobs()
    model = _mlp()
    with pytest.raises(ResumeMismatchError) as err:
        fit(model, (x, y), 2, Adam(model.parameters(), lr=0.01), batch_size=16, checkpoint_dir=tmp_path,
            resume=True, progress=False)
    assert "batch_size: checkpoint 32, this run 16" in str(err.value)
    assert "optimizer.name: checkpoint 'SGD', this run 'Adam'" in str(err.value)


def test_resume_extends_a_constant_schedule_but_not_a_cosine_one(tmp_path):
    # a constant learning rate does not depend on the run's length: 2 epochs then 2 more is the
    # 4-epoch run; a cosine schedule over `epochs` would be another schedule, so it is refused
    full, _ = _fit(4, tmp_path / "full", schedule=Constant(0.05))
    _fit(2, tmp_path / "const", schedule=Constant(0.05))
    resumed, history = _fit(4, tmp_path / "const", schedule=Constant(0.05), resume=True)
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3, 4]
    for k, v in full.state_dict().items():
        np.testing.assert_allclose(resumed.state_dict()[k], v, rtol=1e-6, atol=1e-7)
    _fit(2, tmp_path / "cos", schedule=CosineLR(0.05, 2))
    with pytest.raises(ResumeMismatchError, match=r"schedule.total_epochs: checkpoint 2.0, this run 4.0"):
        _fit(4, tmp_path / "cos", schedule=CosineLR(0.05, 4), resume=True)


def test_resume_refuses_a_checkpoint_with_more_epochs_done(tmp_path):
    _fit(3, tmp_path, schedule=Constant(0.05))
    with pytest.raises(ResumeMismatchError, match="3 epochs done, more than the 2 asked for"):
        _fit(2, tmp_path, schedule=Constant(0.05), resume=True)


def test_load_checkpoint_leaves_model_and_optimizer_untouched_when_the_optimizer_state_does_not_fit(tmp_path):
    model, _ = _fit(1, tmp_path)
    arrays, meta = io.load_arrays(tmp_path / CHECKPOINT_NAME)
    arrays["optim/velocity.0"] = arrays["optim/velocity.0"][:2]   # model state fine, optimizer's not
    io.save_arrays(tmp_path / CHECKPOINT_NAME, arrays, meta)
    fresh = _mlp(seed=5)
    opt = SGD(fresh.parameters(), lr=0.05, momentum=0.9)
    before = fresh.state_dict()
    with pytest.raises(ValueError, match="velocity.0"):
        load_checkpoint(tmp_path / CHECKPOINT_NAME, fresh, opt)
    for k, v in before.items():
        np.testing.assert_array_equal(fresh.state_dict()[k], v)
    assert opt.steps == 0 and not any(v.any() for v in opt.velocity)


def test_optimizer_load_state_dict_validates_everything_before_copying():
    model = _mlp()
    source = Adam(model.parameters(), lr=0.01)
    source.steps, source.m[0][...] = 7, 1.0
    state = source.state_dict()
    del state["v.3"]
    target = Adam(_mlp().parameters(), lr=0.01)
    with pytest.raises(ValueError, match=r"missing keys \['v.3'\]"):
        target.load_state_dict(state)
    assert target.steps == 0 and not target.m[0].any()


def test_train_resume_with_another_dataset_or_seed_is_refused(tmp_path, tiny_data, capsys):
    out = tmp_path / "run"
    base = ["train", "--model", "fcn1", "--epochs", "1", "--batch-size", "64", "--out", str(out)]
    assert pyann_main(base + ["--dataset", "mnist", "--checkpoint"]) == 0
    model_bytes = (out / "model.npz").read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        pyann_main(base + ["--dataset", "fashion-mnist", "--seed", "3", "--resume"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "dataset: checkpoint 'mnist', this run 'fashion-mnist'" in err and "seed: checkpoint 0, this run 3" in err
    assert len(err.strip().splitlines()) == 1
    assert (out / "model.npz").read_bytes() == model_bytes    # nothing written under the wrong label
    assert json.loads((out / "results.json").read_text())["dataset"] == "mnist"


def test_wrn_recipe_refuses_a_checkpoint_of_another_run_in_out(tmp_path, monkeypatch):
    monkeypatch.setattr(pyann.data, "load_cifar10", lambda **kw: _images("cifar10", 64, 16, (3, 32, 32)))
    kwargs = dict(depth=10, width=1, epochs=1, batch_size=32, progressive=(), workers=1, curve_images=None,
                  out=tmp_path, progress=False)
    cnn_recipes.wrn_cifar10(seed=0, **kwargs)
    assert (tmp_path / CHECKPOINT_NAME).exists()
    with pytest.raises(ResumeMismatchError, match="seed: checkpoint 0, this run 1"):
        cnn_recipes.wrn_cifar10(seed=1, **kwargs)


# ---- 5. output folders checked before any work ----------------------------------------------------

def _unwritable(tmp_path):
    # a folder under a regular file cannot be created, even by root (chmod would not stop root)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker / "out"


def test_train_refuses_an_unwritable_out_before_loading_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pyann.data, "load", _no_work)
    with pytest.raises(SystemExit) as exit_:
        pyann_main(["train", "--model", "fcn1", "--epochs", "1", "--out", str(_unwritable(tmp_path))])
    assert exit_.value.code == 2
    assert "cannot write to output folder" in capsys.readouterr().err


def test_relu_study_refuses_an_unwritable_out_before_training(tmp_path, monkeypatch, capsys):
    import pyann.relu_prediction.study as study
    monkeypatch.setattr(study, "run_study", _no_work)
    with pytest.raises(SystemExit) as exit_:
        pyann_main(["relu-study", "--epochs", "1", "--out", str(_unwritable(tmp_path))])
    assert exit_.value.code == 2
    assert "cannot write to output folder" in capsys.readouterr().err


def test_cnn_recipes_refuse_an_unwritable_out_before_loading_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pyann.data, "load_mnist", _no_work)
    monkeypatch.setattr(pyann.data, "load_cifar10", _no_work)
    for recipe in ("cnn3-mnist", "wrn-cifar10"):
        with pytest.raises(SystemExit) as exit_:
            cnn_recipes.main([recipe, "--epochs", "1", "--out", str(_unwritable(tmp_path))])
        assert exit_.value.code == 2
        assert "cannot write to output folder" in capsys.readouterr().err
    # the library functions check too, before loading anything
    with pytest.raises(OSError, match="cannot write to output folder"):
        cnn_recipes.cnn3_mnist(epochs=1, out=_unwritable(tmp_path))


@pytest.mark.parametrize("argv", [["kernels", "--json"], ["train", "--json"], ["relu", "--out"]])
def test_bench_refuses_an_unwritable_output_before_running(tmp_path, monkeypatch, capsys, argv):
    import importlib
    from bench.__main__ import BENCHMARKS, main as bench_main
    monkeypatch.setattr(importlib.import_module(BENCHMARKS[argv[0]][0]), "run", _no_work)
    target = _unwritable(tmp_path) / ("x.json" if argv[1] == "--json" else "")
    with pytest.raises(SystemExit) as exit_:
        bench_main(argv + [str(target)])
    assert exit_.value.code == 2
    assert "cannot write to output folder" in capsys.readouterr().err


# ---- 8. divergence, command-line values, empty inputs, workers, the model/results pair ---------------

def test_fit_stops_at_the_first_non_finite_loss_naming_epoch_and_step(tmp_path):
    # a finite learning rate for epoch 1 and the first half of epoch 2, then NaN: the weights go
    # NaN at step 6 (e = 1.5) and the loss of step 7 is the first non-finite one
    def schedule(e):
        return 0.05 if e < 1.5 else float("nan")
    with pytest.raises(TrainingDivergedError, match=r"loss is nan at epoch 2, step 7 of 10"):
        _fit(3, tmp_path, schedule=schedule)
    # the last checkpoint is the finite epoch 1
    arrays, meta = io.load_arrays(tmp_path / CHECKPOINT_NAME)
    assert meta["epoch"] == 1 and all(np.isfinite(v).all() for v in arrays.values())


def test_fit_stops_when_an_epoch_leaves_weights_non_finite(tmp_path):
    # the very last step of epoch 1 makes the weights NaN; no later loss would show it
    def schedule(e):
        return float("nan") if e >= 0.9 else 0.05
    with pytest.raises(TrainingDivergedError, match=r"NaN or Inf after epoch 1"):
        _fit(1, tmp_path, schedule=schedule)
    assert not (tmp_path / CHECKPOINT_NAME).exists()


def test_train_command_reports_divergence_in_one_line_and_writes_no_model(tmp_path, tiny_data, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        pyann_main(["train", "--model", "fcn1", "--epochs", "1", "--lr", "1e30", "--out", str(out)])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training diverged" in err[0] and "epoch 1" in err[0]
    assert not (out / "model.npz").exists() and not (out / "results.json").exists()


def test_optimizer_refuses_a_nan_learning_rate():
    with pytest.raises(ValueError, match="lr must be positive and finite"):
        SGD(_mlp().parameters(), lr=float("nan"))


BAD_VALUES = [
    ("pyann", ["train", "--epochs", "0"], "--epochs"),
    ("pyann", ["train", "--epochs", "-1"], "--epochs"),
    ("pyann", ["train", "--seed", "-1"], "--seed"),
    ("pyann", ["train", "--batch-size", "0"], "--batch-size"),
    ("pyann", ["train", "--lr", "0"], "--lr"),
    ("pyann", ["train", "--lr", "nan"], "--lr"),
    ("pyann", ["relu-study", "--epochs", "0"], "--epochs"),
    ("pyann", ["relu-study", "--probe-size", "-1"], "--probe-size"),
    ("pyann", ["relu-study", "--lr", "inf"], "--lr"),
    ("cnn", ["cnn3-mnist", "--limit", "0"], "--limit"),
    ("cnn", ["cnn3-mnist", "--limit", "-5"], "--limit"),
    ("cnn", ["cnn3-mnist", "--epochs", "0"], "--epochs"),
    ("cnn", ["wrn-cifar10", "--workers", "0"], "--workers"),
    ("cnn", ["wrn-cifar10", "--minutes", "-1"], "--minutes"),
    ("cnn", ["wrn-cifar10", "--progressive", "16:0"], "--progressive"),
    ("cnn", ["wrn-cifar10", "--dropout", "1.5"], "--dropout"),
    ("bench", ["kernels", "--n", "0"], "--n"),
    ("bench", ["kernels", "--n", "-5"], "--n"),
    ("bench", ["kernels", "--repeats", "0"], "--repeats"),
    ("bench", ["train", "--workers", "0"], "--workers"),
    ("bench", ["train", "--models", "cnn3,resnet"], "--models"),
    ("bench", ["relu", "--n", "0"], "--n"),
    ("bench", ["relu", "--activity-l1", "0,-1"], "--activity-l1"),
]


@pytest.mark.parametrize("prog,argv,option", BAD_VALUES, ids=[" ".join(a) for _, a, _ in BAD_VALUES])
def test_bad_command_line_values_are_usage_errors(prog, argv, option, monkeypatch, capsys, tmp_path):
    import importlib
    import pyann.relu_prediction.study as study
    from bench.__main__ import BENCHMARKS, main as bench_main
    monkeypatch.chdir(tmp_path)   # if a value got through, nothing lands in the checkout
    monkeypatch.setattr(pyann.data, "load", _no_work)
    monkeypatch.setattr(study, "run_study", _no_work)
    for name in cnn_recipes.RECIPES:
        monkeypatch.setitem(cnn_recipes.RECIPES, name, _no_work)
    for module, _ in BENCHMARKS.values():
        monkeypatch.setattr(importlib.import_module(module), "run", _no_work)
    main = {"pyann": pyann_main, "cnn": cnn_recipes.main, "bench": bench_main}[prog]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and "error" in err


def test_evaluate_and_predict_refuse_zero_rows():
    model = _mlp()
    x, y = _blobs()
    with pytest.raises(ValueError, match="evaluate: x has 0 samples"):
        evaluate(model, x[:0], y[:0])
    with pytest.raises(ValueError, match="predict: x has 0 samples"):
        predict(model, x[:0])
    assert predict(model, x[:5]).shape == (5, 3)


@pytest.mark.parametrize("workers", [0, -1])
def test_evaluate_predict_and_fit_refuse_the_same_bad_worker_counts(workers):
    model = _mlp()
    x, y = _blobs()
    for call in (lambda: evaluate(model, x, y, workers=workers), lambda: predict(model, x, workers=workers),
                 lambda: fit(model, (x, y), 1, SGD(model.parameters(), 0.1), workers=workers)):
        with pytest.raises(ValueError, match=f"workers must be a positive integer, got {workers}"):
            call()


def test_train_never_leaves_old_results_beside_a_new_model(tmp_path, tiny_data, monkeypatch):
    """A kill after model.npz is replaced but before results.json is: simulated by making
    every rename onto results.json fail in the second run."""
    import os
    out = tmp_path / "run"
    args = ["train", "--model", "fcn1", "--epochs", "1", "--batch-size", "64", "--out", str(out)]
    assert pyann_main(args) == 0
    real_replace = os.replace

    class Killed(BaseException):
        pass

    def replace(src, dst, *a, **kw):
        if os.path.basename(dst) == "results.json":
            raise Killed
        return real_replace(src, dst, *a, **kw)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(Killed):
        pyann_main(args[:-2] + ["--seed", "1", "--out", str(out)])
    monkeypatch.setattr(os, "replace", real_replace)
    results = out / "results.json"
    if results.exists():   # whatever is there must describe the model beside it
        recorded = json.loads(results.read_text())
        assert recorded["seed"] == nn.serialization.read_metadata(out / "model.npz")["seed"]
    assert (out / "model.npz").exists()


def test_train_results_record_the_model_they_describe(tmp_path, tiny_data):
    import hashlib
    out = tmp_path / "run"
    assert pyann_main(["train", "--model", "fcn1", "--epochs", "1", "--batch-size", "64", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    digest = hashlib.sha256((out / "model.npz").read_bytes()).hexdigest()
    recorded = results.get("companion_files", {}).get("model.npz", {}).get("sha256") or results.get("model_sha256")
    assert recorded == digest


def test_fit_config_must_agree_with_fit_arguments_and_be_json(tmp_path):
    with pytest.raises(ValueError, match=r"config=\) says seed=4 but fit was called with 0"):
        _fit(1, tmp_path, config={"seed": 4})
    with pytest.raises(ValueError, match="JSON values"):
        _fit(1, tmp_path, config={"lr": float("nan")})


def test_save_checkpoint_records_the_configuration(tmp_path):
    _fit(1, tmp_path, config={"dataset": "mnist"})
    _, meta = io.load_arrays(tmp_path / CHECKPOINT_NAME)
    assert meta["config"]["dataset"] == "mnist" and meta["config"]["seed"] == 0
    assert meta["config"]["optimizer"] == {"name": "SGD", "lr": 0.05, "weight_decay": 0.0, "decay_all": False,
                                           "momentum": 0.9, "nesterov": False}
    assert meta["config"]["train_data"]["samples"] == 300
