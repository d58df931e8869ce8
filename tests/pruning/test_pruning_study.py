"""The prune-study runner (pyann.pruning.study) on a tiny configuration and synthetic 28x28
digits: every file is written, results.json is strict JSON, the pruned models load with their
masks, a second run resumes without recomputing any point, another configuration in the same
folder is refused, and report.md has no empty table. Runs in seconds to a minute (figures
included) on a loaded two-core machine."""
import dataclasses
import json
import re
import types

import numpy as np
import pytest

from pyann import nn, pruning
from pyann.pruning import study


def synthetic_digits(n, rng):
    """uint8 (n, 1, 28, 28) images whose class is a bright band at a class-dependent row."""
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 60, (n, 1, 28, 28)).astype(np.uint8)
    for k in range(10):
        x[y == k, 0, 2 * k + 1:2 * k + 7, 4:24] += 150
    return x, y.astype(np.int64)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    xtr, ytr = synthetic_digits(240, rng)
    xte, yte = synthetic_digits(120, rng)
    return types.SimpleNamespace(x_train=xtr, y_train=ytr, x_test=xte, y_test=yte, name="synthetic")


TINY = study.Config("quick", dense_epochs=1, train_limit=240, test_limit=120, sens_test_limit=120,
                    sweep_removed=(0.0, 0.5, 0.95), retrain_keep=(0.5, 0.1), retrain_epochs=1,
                    sens_densities=(1.0, 0.3, 0.05), sens_retrain_epochs=1, sens_retrain_limit=60,
                    alloc_retrain_epochs=1, lr=0.02, batch_size=60)


def assert_no_empty_table(text):
    lines = text.splitlines()
    tables = 0
    for i, line in enumerate(lines):
        if re.fullmatch(r"\|(---\|)+", line):
            tables += 1
            assert i + 1 < len(lines) and lines[i + 1].startswith("|"), f"empty table under {lines[i - 1]!r}"
    assert tables > 0


def test_study_writes_everything_and_resumes(data, tmp_path):
    out = tmp_path / "fcn2"
    r = study.run_study("fcn2", out, config=TINY, data=data, progress=False, log=lambda *a: None)
    assert r["resume"]["reused"] == 0 and r["resume"]["computed"] > 20
    for name in ("results.json", "report.md", "sensitivity-before.csv", "sensitivity-after.csv",
                 "figure3-weight-histogram.png", "figure4-accuracy-vs-removed.png", "figure5-sensitivity.png",
                 "figure6-allocation-accuracy.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    # strict JSON (no NaN / Infinity tokens), the same dict as returned, provenance recorded
    text = (out / "results.json").read_text()
    saved = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON token {c}"))
    assert saved["model"] == "fcn2" and "provenance" in saved
    assert [p["target_removed"] for p in saved["figure4"]["sweep"]] == [0.0, 0.5, 0.95]
    # Distiller's CSV columns, one row per layer x density
    rows = pruning.read_sensitivity_csv(out / "sensitivity-before.csv")
    assert len(rows) == 3 * 3 and {r.layer for r in rows} == {"1", "3", "5"}
    # allocations: both methods at both budgets, each pruned model saved with its masks at its densities
    allocs = saved["allocations"]
    assert {(a["label"], a["method"]) for a in allocs} == {(l, m) for l in ("paper", "no_loss")
                                                           for m in ("uniform", "optimal")}
    for a in allocs:
        assert a["allocation"]["gain"] <= 1.0
        m = nn.load(out / a["model_file"])
        dens = pruning.density(m)
        for layer in a["allocation"]["layers"]:
            assert dens[layer["layer"]] == pytest.approx(layer["density"], abs=1e-3)
    # the retraining sweep's models: masks kept, pruned weights exactly 0, the keep ratio asked
    for p in saved["figure4"]["retrained"]:
        m = nn.load(out / p["model_file"])
        kept = sum(int(mask.sum()) for mask in pruning.masks(m).values())
        assert kept == p["kept"] and kept / 266200 == pytest.approx(p["keep"], abs=1e-4)
        for layer in pruning.prunable_layers(m).values():
            assert not layer.weight.data[~layer.weight.mask].any()
    report = (out / "report.md").read_text()
    assert_no_empty_table(report)
    assert "0.145" in report and "0.149" in report and "0.197" in report   # the paper's table beside ours
    assert "What was scaled" in report

    # a second run: nothing recomputed, the same numbers
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.json") if p.name != "study.json"}
    again = study.run_study("fcn2", out, config=TINY, data=data, progress=False, log=lambda *a: None)
    assert again["resume"]["computed"] == 0 and again["resume"]["reused"] == r["resume"]["computed"]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.json") if p.name != "study.json"} == stamps
    assert again["figure4"] == r["figure4"] and again["allocations"] == r["allocations"]

    # an interrupted run: a lost point (and its model) is all that is redone
    (out / "points" / "retrain-0.1.json").unlink()
    third = study.run_study("fcn2", out, config=TINY, data=data, progress=False, log=lambda *a: None)
    assert third["resume"]["computed_keys"] == ["retrain-0.1"]

    # another configuration in the same folder is refused, naming the folder
    with pytest.raises(ValueError, match="another configuration"):
        study.run_study("fcn2", out, config=dataclasses.replace(TINY, retrain_epochs=2), data=data,
                        progress=False, log=lambda *a: None)


def test_fcn1_study_has_figure2_and_no_per_layer_tables(data, tmp_path):
    cfg = dataclasses.replace(TINY, sens_densities=(), sens_retrain_epochs=0, alloc_retrain_epochs=0,
                              retrain_keep=(0.3,))
    r = study.run_study("fcn1", tmp_path, config=cfg, data=data, progress=False, log=lambda *a: None)
    assert (tmp_path / "figure2-weight-patterns.png").is_file()
    assert np.asarray(r["figure2"]["patterns"]).shape == (10, 28, 28)
    assert "allocations" not in r and "figure5" not in r
    report = (tmp_path / "report.md").read_text()
    assert_no_empty_table(report)
    assert "fcn1 has one layer" in report
    assert "![figure2-weight-patterns](figure2-weight-patterns.png)" in report and "(report.md)" not in report


def test_prune_study_is_a_pyann_command():
    from pyann.cli import build_parser
    args = build_parser().parse_args(["prune-study", "--model", "cnn3", "--quick", "--out", "x"])
    assert args.model == "cnn3" and args.quick and args.out == "x"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["prune-study", "--model", "vgg"])
    with pytest.raises(ValueError, match="model must be one of"):
        study.config_for("vgg")
