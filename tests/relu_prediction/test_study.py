"""The activation study end to end on a small synthetic dataset, the probe choice and the CLI."""
import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from pyann.data import Dataset
from pyann.relu_prediction import paper
from pyann.relu_prediction.cli import add_relu_study_parser, cmd_relu_study
from pyann.relu_prediction.recorder import agreement_by_epoch
from pyann.relu_prediction.report import render_report
from pyann.relu_prediction.study import FIGURES, as_dataset, choose_probe, combine_studies, rerender, run_study


def _synthetic(name="mnist", n_train=128, n_test=64, seed=0):
    """Three noisy 28x28 prototypes; named like a real dataset so the paper columns appear."""
    rng = np.random.default_rng(seed)
    protos = rng.random((3, 1, 28, 28))

    def make(n):
        y = rng.integers(0, 3, n)
        x = np.clip(protos[y] * 200 + rng.normal(0, 40, (n, 1, 28, 28)), 0, 255).astype(np.uint8)
        return x, y.astype(np.int64)
    (xtr, ytr), (xte, yte) = make(n_train), make(n_test)
    return Dataset(x_train=xtr, y_train=ytr, x_test=xte, y_test=yte, name=name, source_path=Path("."),
                   classes=("a", "b", "c"), official=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("relu-study")
    results = run_study(_synthetic(), epochs=4, seed=0, out_dir=out, probe_size=32, verbose=False,
                        progress=False, batch_size=64)
    return out, results


def test_study_writes_every_output(study):
    out, results = study
    for name in list(FIGURES.values()) + ["results.json", "report.md", "states.npz"]:
        assert (out / name).is_file(), name
    for name in FIGURES.values():
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))           # atomic writes leave no temporaries
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["table1"] == json.loads(json.dumps(results["table1"]))
    assert set(on_disk["files"].values()) >= {"results.json", "report.md", "states.npz", *FIGURES.values()}


def test_table1_uses_test_accuracy_and_the_papers_row(study):
    _, r = study
    t1 = r["table1"]
    assert t1["epochs"] == [4]                     # a 4-epoch run reaches only the paper's first column
    assert t1["accuracy_pct"][0] == pytest.approx(100 * r["history"]["epochs"][3]["val_acc"])
    assert t1["paper_pct"] == [paper.TABLE1_ACCURACY["mnist"][4]]
    assert t1["diff_pct"][0] == pytest.approx(t1["accuracy_pct"][0] - 94.96)
    assert t1["all_epochs"] == [1, 2, 3, 4]


def test_figure2_matches_the_saved_states(study):
    out, r = study
    f2 = r["figure2"]
    assert f2["epochs"] == [2, 3, 4]
    assert len(f2["agreement_pct"]) == 4 and all(len(l) == 3 for l in f2["agreement_pct"])
    with np.load(out / "states.npz") as z:
        widths = z["widths"].tolist()
        epochs = z["epochs"].tolist()
        assert epochs == [1, 2, 3, 4] and widths == [512] * 4 and z["probe_indices"].shape == (32,)
        states = {e: [np.unpackbits(z[f"layer{k + 1}"][i], axis=1, count=w).astype(bool)
                      for k, w in enumerate(widths)] for i, e in enumerate(epochs)}
    want = agreement_by_epoch(states)
    for k in range(4):
        assert f2["agreement_pct"][k] == pytest.approx([100 * v for v in want["agreement"][k]])
        e, e_prev = states[3][k], states[2][k]
        assert f2["agreement_pct"][k][1] == pytest.approx(100 * np.mean(e == e_prev))
    assert set(f2["checks"]) >= {"rises_with_training", "deeper_is_higher", "final_by_layer_pct"}


def test_table3_and_firing_rates_are_consistent(study):
    _, r = study
    t3, fr = r["table3"], r["firing_rates"]
    assert t3["images"] == 64 and fr["train_images"] == 128
    assert t3["paper_pct"] == list(paper.TABLE3_ACTIVE_SHARE["mnist"])
    for k in range(4):
        assert t3["active_pct"][k] == pytest.approx(100 * fr["test"][k]["mean"])
        assert t3["train_active_pct"][k] == pytest.approx(100 * fr["train"][k]["mean"])
        assert sum(fr["test"][k]["hist_counts"]) == 512
        assert 0 <= fr["train"][k]["dead"] + fr["train"][k]["rare"] <= 512


def test_report_prints_paper_numbers_beside_ours(study):
    out, r = study
    md = (out / "report.md").read_text()
    assert md == render_report(json.loads((out / "results.json").read_text()))
    assert "94.96" in md and "67.31" in md and "10.21" in md      # Table 1 and Table 3, paper
    assert f"{r['table1']['accuracy_pct'][0]:.2f}" in md
    assert f"{r['table3']['active_pct'][3]:.2f}" in md
    assert f"{r['figure2']['agreement_pct'][2][-1]:.2f}" in md
    for png in FIGURES.values():
        assert f"]({png})" in md
    assert "32 test images" in md


def test_rerender_redraws_from_results_json(study):
    out, r = study
    (out / FIGURES["figure2"]).unlink()
    again = rerender(out)
    assert (out / FIGURES["figure2"]).is_file()
    for got, want in zip(again["figure2"]["agreement_pct"], r["figure2"]["agreement_pct"]):
        assert got == pytest.approx(want)
    assert "states.npz" in again["files"].values()


def test_choose_probe_is_seeded_and_fixed():
    ds = _synthetic(n_train=50, n_test=40)
    name, idx, x = choose_probe(ds, "test", 10, seed=3)
    name2, idx2, _ = choose_probe(ds, "test", 10, seed=3)
    assert name == "test" and idx.tolist() == idx2.tolist() and len(set(idx.tolist())) == 10
    assert idx.tolist() == sorted(idx.tolist())
    assert x.dtype == np.float32 and x.shape == (10, 1, 28, 28)
    np.testing.assert_allclose(x, ds.x_test[idx] / 255.0, rtol=1e-6)
    assert choose_probe(ds, "test", 10, seed=4)[1].tolist() != idx.tolist()
    assert choose_probe(ds, "train", None)[1].tolist() == list(range(50))
    assert choose_probe(ds, "test", 1000)[1].tolist() == list(range(40))
    with pytest.raises(ValueError):
        choose_probe(ds, "validation")


def test_as_dataset_accepts_arrays():
    ds = _synthetic(n_train=8, n_test=4)
    d = as_dataset(((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)))
    assert d.name == "custom" and not d.official and d.x_train.shape == (8, 1, 28, 28)
    assert as_dataset(ds) is ds
    with pytest.raises(ValueError):
        as_dataset(42)


def test_cli_parser_and_command(monkeypatch, tmp_path, capsys, data_stand_in):
    parser = argparse.ArgumentParser(prog="python -m pyann")
    sub = parser.add_subparsers(dest="command", required=True)
    add_relu_study_parser(sub)
    args = parser.parse_args(["relu-study", "--dataset", "fashion-mnist", "--epochs", "3",
                              "--out", str(tmp_path / "{dataset}")])
    assert args.func is cmd_relu_study and args.epochs == 3 and args.probe == "test" and args.probe_size == 2000

    seen = {}

    def fake_run_study(dataset, **kw):
        seen.update(kw, dataset=dataset)
        return {"table1": {"epochs": [], "accuracy_pct": [], "paper_pct": None},
                "table3": {"active_pct": [10.0, 20.0], "paper_pct": None},
                "figure2": {"epochs": [2], "agreement_pct": [[90.0], [95.0]]},
                "files": {"report": "report.md"}}
    monkeypatch.setattr("pyann.relu_prediction.study.run_study", fake_run_study)
    assert args.func(args) == 0
    assert seen["dataset"] == "fashion-mnist" and seen["epochs"] == 3
    assert seen["out_dir"] == str(tmp_path / "fashion-mnist") and seen["activity_l1"] == 0.0
    assert "layer 2: 20.00" in capsys.readouterr().out


def test_combine_studies_puts_datasets_side_by_side(study, tmp_path):
    out, r = study
    other = json.loads((out / "results.json").read_text())
    other["dataset"] = "fashion-mnist"
    other["table1"]["paper_pct"] = [paper.TABLE1_ACCURACY["fashion-mnist"][4]]
    other["table3"]["paper_pct"] = None
    combined = combine_studies([out, other], tmp_path / "both")
    assert combined["datasets"] == ["mnist", "fashion-mnist"]
    assert (tmp_path / "both" / "figure2_both.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "both" / "report.md").read_text()
    assert "| MNIST, paper | 94.96 |" in md and "| Fashion-MNIST, paper | 85.98 |" in md
    assert f"| MNIST, pyann | {r['table1']['accuracy_pct'][0]:.2f} |" in md
    assert "| Fashion-MNIST, paper | 67.31" not in md         # no Table 3 in the paper for Fashion-MNIST
    assert json.loads((tmp_path / "both" / "results.json").read_text())["table3"]["mnist"]["paper_pct"][0] == 67.31


def test_cli_all_runs_both_datasets_and_combines(monkeypatch, tmp_path, data_stand_in):
    parser = argparse.ArgumentParser(prog="python -m pyann")
    add_relu_study_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["relu-study", "--dataset", "all", "--out", str(tmp_path / "runs")])
    ran, combined = [], {}
    monkeypatch.setattr("pyann.relu_prediction.cli._run_one", lambda a, ds: ran.append(ds))
    monkeypatch.setattr("pyann.relu_prediction.study.combine_studies",
                        lambda folders, out: combined.update(folders=folders, out=out))
    assert args.func(args) == 0
    assert ran == ["mnist", "fashion-mnist"]
    assert combined == {"folders": [str(tmp_path / "runs" / "mnist"), str(tmp_path / "runs" / "fashion-mnist")],
                        "out": str(tmp_path / "runs" / "both")}


def test_study_includes_the_predictor_sweep(study):
    out, r = study
    assert r["sweep"]["status"] == "ok"
    assert (out / "accuracy_vs_macs.png").is_file() and r["files"]["sweep"] == "accuracy_vs_macs.png"
    assert "](accuracy_vs_macs.png)" in (out / "report.md").read_text()


def test_a_failing_sweep_is_reported_not_fatal(monkeypatch):
    from pyann import nn
    from pyann.relu_prediction import study as study_mod, sweep

    def boom(*a, **k):
        raise RuntimeError("kernel exploded")
    monkeypatch.setattr(sweep, "sweep_history", boom)
    got = study_mod.sweep_hook(nn.build("mlp5", rng=0), _synthetic(n_train=32, n_test=16), None)
    assert got == {"status": "failed: RuntimeError: kernel exploded"}


def test_sparse_activation_variant_is_recorded_and_sparser(study, tmp_path):
    _, plain = study
    sparse = run_study(_synthetic(), epochs=4, seed=0, out_dir=tmp_path, probe_size=32, verbose=False,
                       progress=False, batch_size=64, activity_l1=0.05, sweep=False)
    assert sparse["recipe"]["activity_l1"] == 0.05 and "L1 penalty 0.05" in sparse["recipe"]["optimizer"]
    assert "L1 penalty 0.05" in (tmp_path / "report.md").read_text()
    assert np.mean(sparse["table3"]["active_pct"]) < np.mean(plain["table3"]["active_pct"])
