"""pyann.provenance: the record every results.json and bench JSON carries, and that every writer
of results adds it."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import pyann
from pyann import provenance as prov
from pyann.data import Dataset

KEYS = {"pyann_version", "git_commit", "git_dirty", "command_line", "machine", "dataset", "created_utc"}


def _dataset(n=40, name="custom", official=False, source=None):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (n, 1, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n).astype(np.int64)
    return Dataset(x, y, x[: n // 2], y[: n // 2], name=name, source_path=source,
                   classes=tuple(map(str, range(10))), official=official, notes=("made in a test",))


def test_record_has_every_field_and_is_strict_json():
    rec = prov.provenance(_dataset(), argv=["pyann", "train", "--epochs", "2"])
    assert KEYS <= set(rec)
    assert rec["pyann_version"] == pyann.__version__
    assert rec["command_line"] == ["pyann", "train", "--epochs", "2"]
    for key in ("cpu", "cores", "blas", "numpy", "python", "pyann_isa", "pyann_threads"):
        assert key in rec["machine"]
    json.dumps(rec, allow_nan=False)


def test_default_command_line_is_sys_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["prog", "--flag", "value"])
    assert prov.provenance()["command_line"] == ["prog", "--flag", "value"]


def test_git_commit_of_this_checkout():
    if shutil.which("git") is None or not (prov._checkout_root(prov.Path(prov.__file__).resolve().parent)):
        pytest.skip("not running from a git checkout")
    head = subprocess.run(["git", "-C", os.path.dirname(prov.__file__), "rev-parse", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    assert prov.provenance()["git_commit"] == head


def test_git_commit_unknown_outside_a_checkout_and_without_git(tmp_path, monkeypatch):
    got = prov.git_commit(tmp_path)
    assert got["commit"] == "unknown" and got["dirty"] is None and got["why"]
    (tmp_path / ".git").mkdir()                       # a broken checkout: git fails, we do not
    assert prov.git_commit(tmp_path)["commit"] == "unknown"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))   # no git on PATH at all
    rec = prov.provenance()
    assert rec["git_commit"] in ("unknown",) and rec["git_why"]


def test_dataset_identity_checksums_the_arrays():
    a, b = _dataset(), _dataset()
    ia, ib = prov.dataset_identity(a), prov.dataset_identity(b)
    assert ia["checksum"]["value"] == ib["checksum"]["value"] and len(ia["checksum"]["value"]) == 64
    assert ia["official"] is False and ia["notes"] == ["made in a test"]
    assert ia["sizes"] == {"train": 40, "test": 20}
    b.x_train[0, 0, 0, 0] ^= 1                         # one bit of one pixel
    assert prov.dataset_identity(b)["checksum"]["value"] != ia["checksum"]["value"]


def test_dataset_identity_of_files_and_of_names(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"abc")
    (folder / "unrelated.txt").write_bytes(b"zzz")
    ident = prov.dataset_identity(_dataset(name="mnist", source=folder))
    assert ident["files_md5"] == {"t10k-labels-idx1-ubyte.gz": "900150983cd24fb0d6963f7d28e17f72"}
    assert prov.dataset_identity(None)["name"] is None
    unknown = prov.dataset_identity("no-such-dataset")
    assert unknown["name"] == "no-such-dataset" and unknown["checksum"] == "unknown" and unknown["why"]


def test_dataset_identity_of_the_real_mnist():
    pyann_data = pytest.importorskip("pyann.data")
    try:
        ds = pyann_data.load_mnist()
    except pyann_data.DatasetNotFoundError:
        pytest.skip("MNIST not available")
    ident = prov.dataset_identity(ds)
    spec = {f.path.split("/")[-1]: f.md5 for v in pyann_data.get_spec("mnist").variants for f in v.files}
    assert ident["official"] is True
    assert ident["files_md5"] and all(spec[name] == md5 for name, md5 in ident["files_md5"].items())
    by_name = prov.dataset_identity("mnist")
    assert by_name["official"] is True and by_name["files_md5"] == ident["files_md5"]


def test_stamp_never_raises_when_a_piece_fails(monkeypatch):
    monkeypatch.setattr(prov, "machine_info", lambda: 1 / 0)
    monkeypatch.setattr(prov, "_arrays_sha256", lambda ds: 1 / 0)
    out = prov.stamp({"x": 1}, dataset=_dataset())
    assert out["x"] == 1 and out["provenance"]["machine"]["cpu"] == "unknown"
    assert out["provenance"]["dataset"]["checksum"] == "unknown"


def test_machine_line_fits_the_width():
    info = dict(prov.machine_info(), cpu="A very long CPU model name " * 3)
    assert all(len(line) <= 120 for line in prov.machine_line(info).splitlines())


def test_write_model_and_results_stamps_results(tmp_path):
    from pyann import nn
    from pyann.io import read_json
    from pyann.outputs import write_model_and_results
    model = nn.build("fcn1", rng=0)
    write_model_and_results(tmp_path / "m.npz", lambda p: nn.save(model, p), tmp_path / "results.json",
                            {"dataset": "custom", "accuracy": 0.5}, dataset=_dataset())
    got = read_json(tmp_path / "results.json")
    assert got["accuracy"] == 0.5 and KEYS <= set(got["provenance"])
    assert got["provenance"]["dataset"]["checksum"]["value"] == prov.dataset_identity(_dataset())["checksum"]["value"]


def test_relu_study_results_json_has_provenance(tmp_path):
    from pyann.io import read_json
    from pyann.relu_prediction.study import run_study
    ds = _dataset(n=120)
    run_study(((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)), epochs=1, out_dir=tmp_path, probe_size=20,
              verbose=False, progress=False, sweep=False, save_states=False)
    got = read_json(tmp_path / "results.json")
    assert KEYS <= set(got["provenance"])
    assert got["provenance"]["dataset"]["name"] == "custom" and got["provenance"]["dataset"]["official"] is False


def test_dataset_identity_of_located_files():
    pyann_data = pytest.importorskip("pyann.data")
    try:
        found = pyann_data.locate("mnist", None)
    except pyann_data.DatasetError:
        pytest.skip("MNIST not available")
    ident = prov.dataset_identity(found)
    assert ident["name"] == "mnist" and ident["official"] is True
    assert set(ident["files_md5"]) == {p.name for p in found.paths.values()}
