"""`pyann substitution-study`: the smoke preset end to end from the command line (results.json,
the summary lines), the measured plan of --estimate, and every user error as one line with a
non-zero status: a bad --preset, an unknown candidate, a position out of range, identity at a
shape-changing position, an unreachable --scheduler (within seconds)."""
import contextlib
import io
import json
import shutil
import socket
import time

import pytest

from pyann.__main__ import main


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One small smoke study from the command line (one substitution), its output and its folder."""
    out = tmp_path_factory.mktemp("cli") / "smoke"
    text = io.StringIO()
    with contextlib.redirect_stdout(text):   # capsys is per test; this fixture is per module
        code = main(["substitution-study", "--preset", "smoke", "--out", str(out), "--only", "6:identity",
                     "--workers", "2"])
    return code, text.getvalue(), out


def test_smoke_study_from_the_command_line(smoke_run):
    code, printed, out = smoke_run
    assert code == 0
    r = json.loads((out / "results.json").read_text())
    assert [t["id"] for t in r["trials"]][:4] == ["baseline-s0", "baseline-s1", "baseline-s2", "p6-identity-s0"]
    assert "substitution-study smoke: writing to" in printed
    assert "baseline after 2 epochs" in printed and "over 3 seeds" in printed
    assert "batch 8: budget" in printed and "trials run" in printed


def _fails(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    return exit_.value.code, err


def _with_teacher(smoke_run, tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    shutil.copy(smoke_run[2] / "teacher.npz", out / "teacher.npz")   # the error comes after the teacher
    return str(out)


@pytest.mark.parametrize("pair, message", [
    ("3:no_such_op", "unknown candidate"),
    ("9:conv_bn_e1", "out of range"),
    ("3:identity", "not available at position 3"),
])
def test_bad_substitution_is_one_line(smoke_run, tmp_path, capsys, pair, message):
    code, err = _fails(capsys, ["substitution-study", "--preset", "smoke", "--out", _with_teacher(smoke_run, tmp_path),
                                "--only", pair])
    assert code == 1 and message in err
    assert err.startswith("pyann substitution-study: error:") and err.count("\n") == 1 and "Traceback" not in err


def test_bad_preset_is_a_usage_error(capsys):
    code, err = _fails(capsys, ["substitution-study", "--preset", "fast", "--out", "x"])
    assert code == 2 and "invalid choice: 'fast'" in err


def test_malformed_only_is_a_usage_error(capsys):
    code, err = _fails(capsys, ["substitution-study", "--preset", "smoke", "--only", "basic_e2"])
    assert code == 2 and "POSITION:CANDIDATE" in err


def test_unreachable_scheduler_is_one_line_within_seconds(tmp_path, capsys):
    pytest.importorskip("distributed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    code, err = _fails(capsys, ["substitution-study", "--preset", "smoke", "--out", str(tmp_path / "x"),
                                "--scheduler", f"tcp://127.0.0.1:{port}", "--scheduler-timeout", "2"])
    assert time.perf_counter() - t0 < 10
    assert code == 1 and "cannot reach the Dask scheduler" in err and err.count("\n") == 1


def test_estimate_prints_the_measured_plan(capsys):
    assert main(["substitution-study", "--preset", "smoke", "--estimate"]) == 0
    out = capsys.readouterr().out
    assert "smoke preset (WRN-16-2)" in out and "measured at" in out and "21 trials" in out
