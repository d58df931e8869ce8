"""pyann.io: atomic writes that clean up after killed writers, files written as one unit, strict JSON."""
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from pyann import io, nn

REPO = Path(__file__).resolve().parents[1]


def _temporaries(folder: Path):
    return sorted(p.name for p in folder.glob(".*.tmp"))


def _strict_load(path):
    def refuse(token):
        raise AssertionError(f"{path} is not strict JSON: it holds {token}")
    return json.loads(Path(path).read_text(), parse_constant=refuse)


def _start_writer_that_hangs(code: str):
    """A python process that runs `code`, which prints 'ready' mid-write and then hangs."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise AssertionError(f"writer did not start: {line!r} {proc.stderr.read()}")
    return proc


def _kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait()   # reaped: its pid is gone, as after any crash
    proc.stdout.close()
    proc.stderr.close()


# ---- 5a. temporaries of killed writers -----------------------------------------------------------

def test_atomic_write_removes_the_temporary_of_a_killed_writer(tmp_path):
    target = tmp_path / "model.npz"
    target.write_bytes(b"old")
    proc = _start_writer_that_hangs(f"""
        import time
        from pyann.io import atomic_write
        def write(f):
            f.write(b"x" * 100_000)
            f.flush()
            print("ready", flush=True)
            time.sleep(60)
        atomic_write({str(target)!r}, write)
    """)
    _kill(proc)
    assert target.read_bytes() == b"old"
    left = _temporaries(tmp_path)
    assert len(left) == 1 and left[0].startswith(".model.npz.")
    io.atomic_write(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"
    assert _temporaries(tmp_path) == []


def test_live_writers_temporaries_are_kept_dead_and_old_ones_removed(tmp_path):
    target = tmp_path / "results.json"
    host = io._host_tag()
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(done.stdout)
    live = tmp_path / f".results.json.{host}-{os.getpid()}.abcd1234.tmp"        # this process: alive
    dead = tmp_path / f".results.json.{host}-{dead_pid}.abcd1234.tmp"
    remote = tmp_path / ".results.json.otherhost-1.abcd1234.tmp"                 # pid not checkable
    legacy_new = tmp_path / ".results.json.k3j_x9q2.tmp"                          # before pids: by age
    legacy_old = tmp_path / ".results.json.a8b7c6d5.tmp"
    remote_old = tmp_path / ".results.json.otherhost-2.abcd1234.tmp"
    other_target = tmp_path / f".model.npz.{host}-{dead_pid}.abcd1234.tmp"       # not this target's
    for p in (live, dead, remote, legacy_new, legacy_old, remote_old, other_target):
        p.write_bytes(b"partial")
    day_ago = time.time() - io.STALE_AFTER_SECONDS - 60
    for p in (legacy_old, remote_old):
        os.utime(p, (day_ago, day_ago))
    io.write_json(target, {"a": 1})
    assert {p.name for p in tmp_path.glob(".*.tmp")} == {live.name, remote.name, legacy_new.name,
                                                         other_target.name}


# ---- 5b. several files as one unit ----------------------------------------------------------------

def _old_pair(folder: Path):
    model = nn.Sequential(nn.Linear(3, 2, rng=0))
    io.write_together({folder / "model.npz": nn.serialization.writer(model), folder / "results.json": {"run": 1}})
    return (folder / "model.npz").read_bytes(), (folder / "results.json").read_bytes()


def test_write_together_records_each_companion_and_check_together_verifies(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2, rng=0))
    digests = io.write_together({tmp_path / "model.npz": nn.serialization.writer(model, {"note": 1}),
                                 tmp_path / "results.json": {"accuracy": 0.5}})
    results = _strict_load(tmp_path / "results.json")
    assert results["accuracy"] == 0.5
    assert results["companion_files"] == {"model.npz": digests[tmp_path / "model.npz"]}
    assert digests[tmp_path / "model.npz"]["bytes"] == (tmp_path / "model.npz").stat().st_size
    assert io.check_together(tmp_path / "results.json")["accuracy"] == 0.5
    assert nn.serialization.read_metadata(tmp_path / "model.npz") == {"note": 1}
    assert _temporaries(tmp_path) == []


def test_check_together_detects_a_model_rewritten_without_its_results(tmp_path):
    _old_pair(tmp_path)
    nn.save(nn.Sequential(nn.Linear(3, 2, rng=1)), tmp_path / "model.npz")   # as a killed run would leave it
    with pytest.raises(ValueError, match=r"model.npz is not the file .*results.json was written with"):
        io.check_together(tmp_path / "results.json")
    (tmp_path / "model.npz").unlink()
    with pytest.raises(ValueError, match="model.npz, which is missing"):
        io.check_together(tmp_path / "results.json")
    io.write_json(tmp_path / "plain.json", {"a": 1})
    with pytest.raises(ValueError, match="records no 'companion_files'"):
        io.check_together(tmp_path / "plain.json")


def test_write_together_error_in_a_writer_changes_no_file(tmp_path):
    old = _old_pair(tmp_path)

    def fails(f):
        f.write(b"half")
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError, match="disk full"):
        io.write_together({tmp_path / "model.npz": b"new model", tmp_path / "other.bin": fails,
                           tmp_path / "results.json": {"run": 2}})
    assert ((tmp_path / "model.npz").read_bytes(), (tmp_path / "results.json").read_bytes()) == old
    assert not (tmp_path / "other.bin").exists() and _temporaries(tmp_path) == []
    io.check_together(tmp_path / "results.json")


def test_write_together_killed_mid_write_leaves_the_old_pair(tmp_path):
    old = _old_pair(tmp_path)
    proc = _start_writer_that_hangs(f"""
        import time
        from pathlib import Path
        from pyann import io
        def hang(f):
            f.write(b"y" * 100_000)
            f.flush()
            print("ready", flush=True)
            time.sleep(60)
        folder = Path({str(tmp_path)!r})
        io.write_together({{folder / "model.npz": b"new model", folder / "log.bin": hang,
                            folder / "results.json": {{"run": 2}}}})
    """)
    _kill(proc)
    assert ((tmp_path / "model.npz").read_bytes(), (tmp_path / "results.json").read_bytes()) == old
    assert len(_temporaries(tmp_path)) == 2     # the killed writer's model and log temporaries
    io.check_together(tmp_path / "results.json")
    # the next write of the unit removes them
    io.write_together({tmp_path / "model.npz": b"model 3", tmp_path / "log.bin": b"log",
                       tmp_path / "results.json": {"run": 3}})
    assert _temporaries(tmp_path) == []
    assert io.check_together(tmp_path / "results.json")["run"] == 3


def test_write_together_killed_between_renames_is_detected(tmp_path, monkeypatch):
    _old_pair(tmp_path)
    real_replace, calls = os.replace, []

    def replace_then_die(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt   # the moment between the model's rename and the results'
        real_replace(src, dst)
    monkeypatch.setattr(io.os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        io.write_together({tmp_path / "model.npz": b"new model", tmp_path / "results.json": {"run": 2}})
    monkeypatch.undo()
    assert calls[0] == tmp_path / "model.npz"   # data first, the JSON that records it last
    assert _temporaries(tmp_path) == []
    with pytest.raises(ValueError, match="model.npz is not the file"):
        io.check_together(tmp_path / "results.json")


def test_write_together_refuses_bad_content_before_writing(tmp_path):
    with pytest.raises(TypeError, match="must be bytes, a writer or a dict"):
        io.write_together({tmp_path / "a.bin": 5})
    with pytest.raises(ValueError, match="companion_files"):
        io.write_together({tmp_path / "r.json": {"companion_files": 1}})
    with pytest.raises(ValueError, match=r"r.json: /loss is nan"):
        io.write_together({tmp_path / "m.bin": b"model", tmp_path / "r.json": {"loss": float("nan")}},
                          nonfinite="refuse")
    assert list(tmp_path.iterdir()) == []


# ---- 6. strict JSON ---------------------------------------------------------------------------------

def test_write_json_is_strict_and_records_non_finite_numbers(tmp_path):
    obj = {"loss": float("nan"), "history": [{"loss": 1.5}, {"loss": np.float32("inf")}],
           "a/b~c": {"x": -math.inf}, "array": np.array([1.0, np.nan]), "ok": np.int64(3),
           "path": Path("runs/x"), 7: "int key"}
    path = io.write_json(tmp_path / "results.json", obj)
    raw = _strict_load(path)
    assert raw["loss"] is None and raw["history"][1]["loss"] is None and raw["array"] == [1.0, None]
    assert raw["_nonfinite"] == {"/loss": "nan", "/history/1/loss": "inf", "/a~1b~0c/x": "-inf",
                                 "/array/1": "nan"}
    back = io.read_json(path)
    assert math.isnan(back["loss"]) and back["history"][1]["loss"] == math.inf
    assert back["a/b~c"]["x"] == -math.inf and math.isnan(back["array"][1]) and back["array"][0] == 1.0
    assert back["ok"] == 3 and back["path"] == "runs/x" and back["7"] == "int key"
    assert "_nonfinite" not in back
    finite = io.write_json(tmp_path / "finite.json", {"a": [1, 2.5]})
    assert "_nonfinite" not in _strict_load(finite)


def test_write_json_refuse_mode_names_the_value(tmp_path):
    with pytest.raises(ValueError, match=r"r.json: /history/2 is nan"):
        io.write_json(tmp_path / "r.json", {"history": [1.0, 2.0, float("nan")]}, nonfinite="refuse")
    with pytest.raises(ValueError, match=r"l.json: /1 is inf"):   # no dict to hold the record
        io.write_json(tmp_path / "l.json", [1.0, float("inf")])
    with pytest.raises(ValueError, match="reserved"):
        io.write_json(tmp_path / "k.json", {"_nonfinite": {}, "x": float("nan")})
    with pytest.raises(TypeError, match="set is not JSON serialisable"):
        io.write_json(tmp_path / "t.json", {"x": {1, 2}})
    assert _temporaries(tmp_path) == [] and not list(tmp_path.glob("*.json"))


def test_model_metadata_with_nan_is_strict_json_and_round_trips(tmp_path):
    path = nn.save(nn.Sequential(nn.Linear(2, 2)), tmp_path / "m.npz",
                   metadata={"history": {"loss": [0.5, float("nan")]}})
    with np.load(path, allow_pickle=False) as f:
        text = str(f["__meta__"])
    assert "NaN" not in text and json.loads(text)["metadata"]["history"]["loss"] == [0.5, None]
    loss = nn.serialization.read_metadata(path)["history"]["loss"]
    assert loss[0] == 0.5 and math.isnan(loss[1])


def test_read_json_still_reads_old_files_with_nan_tokens(tmp_path):
    (tmp_path / "old.json").write_text('{"loss": NaN}')
    assert math.isnan(io.read_json(tmp_path / "old.json")["loss"])
    (tmp_path / "bad.json").write_text('{"loss": ')
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        io.read_json(tmp_path / "bad.json")
