"""CNN recipes: a smoke run of cnn3 on a slice of real MNIST, and the time-budget helper."""
import numpy as np
import pytest

from pyann import cnn_recipes, nn
from pyann.data.augment import CropFlip, ProgressiveResize


@pytest.mark.realdata
@pytest.mark.slow
def test_cnn3_mnist_smoke(data_root, tmp_path):
    result = cnn_recipes.cnn3_mnist(epochs=2, batch_size=64, limit=4096, root=data_root, out=tmp_path,
                                    progress=False)
    assert result["test"]["accuracy"] > 0.9
    assert (tmp_path / "results.json").exists() and (tmp_path / "cnn3_mnist.npz").exists()
    loaded = nn.load(tmp_path / "cnn3_mnist.npz")
    assert loaded.spec() == result["model"].spec()


def _budget_inputs():
    model = nn.build("wrn", depth=10, width=1)
    rng = np.random.default_rng(0)
    return model, rng.standard_normal((64, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, 64)


def test_full_epochs_for_budget_times_real_steps():
    model, x, y = _budget_inputs()

    def full_epochs(minutes):
        return cnn_recipes._full_epochs_for_budget(model, x, y, 8, ProgressiveResize(CropFlip(4), [(16, 1)]),
                                                   minutes, n_eval=64, eval_batch_size=16, steps=2)
    assert full_epochs(1e-4) == 1          # at least one full-size epoch, however small the budget
    assert full_epochs(1e4) > 1000


def test_full_epochs_for_budget_takes_the_stages_off_first(monkeypatch):
    # fixed costs per epoch: training 10 s at 16 px, 40 s at full size; evaluation 2 s / 5 s
    monkeypatch.setattr(cnn_recipes, "_epoch_seconds", lambda model, x, y, bs, augment, steps, workers:
                        {16: 10.0, None: 40.0}[augment.size])
    monkeypatch.setattr(cnn_recipes, "_eval_seconds", lambda model, xb, n_eval, workers: {16: 2.0, 32: 5.0}[xb.shape[-1]])
    model, x, y = _budget_inputs()

    def full_epochs(stages, final_images=0):
        return cnn_recipes._full_epochs_for_budget(model, x, y, 8, ProgressiveResize(CropFlip(4), stages),
                                                   minutes=10, n_eval=64, eval_batch_size=16,
                                                   final_images=final_images)
    assert full_epochs([]) == 12               # 600 s * 0.97 = 582 s, 45 s per full epoch
    assert full_epochs([], final_images=9 * 64) == 11   # 9 more evaluations: (582 - 9 * 5) / 45 = 11.9
    assert full_epochs([(16, 10)]) == 10       # (582 - 10 * 12) / 45 = 10.3
    assert full_epochs([(16, 100)]) == 1       # the stages alone overrun: still one full epoch


def test_parse_stages():
    assert cnn_recipes._parse_stages("16:3,24:2") == [(16, 3), (24, 2)]
    assert cnn_recipes._parse_stages("none") == []
    with pytest.raises(Exception, match="SIZE:EPOCHS"):
        cnn_recipes._parse_stages("16-3")


def _result(accuracy):
    history = [{"epoch": e + 1, "loss": 1.0 / (e + 1), "train_acc": 0.5 + 0.1 * e, "val_loss": 1.0,
                "val_acc": 0.45 + 0.1 * e, "lr": 0.01, "seconds": 120.0, "eval_seconds": 30.0,
                "image_size": size} for e, size in enumerate([16, 32])]
    return {"recipe": "wrn16_2_cifar10", "config": {"epochs": 2, "official_data": False},
            "history": history, "test": {"loss": 1.0, "accuracy": accuracy}, "target": 0.85}


def test_write_report_table_time_and_target(tmp_path):
    cnn_recipes.write_report(tmp_path, _result(0.5512))
    report = (tmp_path / "report.md").read_text()
    assert "JPEG-derived" in report
    assert "**55.12 %** after 2 epochs, 5.0 minutes" in report and "target 85 %: missed" in report
    assert "| 1 | 16 | 1.0000 | 50.00 % | 45.00 % |" in report and "| 2.5 |" in report
    assert (tmp_path / "training-curve.png").read_bytes().startswith(b"\x89PNG")
    cnn_recipes.write_report(tmp_path, _result(0.851))
    assert "target 85 %: met" in (tmp_path / "report.md").read_text()
    flipped = dict(_result(0.849), test_flip={"loss": 0.9, "accuracy": 0.8534, "seconds": 80.0}, wall_minutes=7.25)
    flipped["config"]["curve_images"] = 2000
    cnn_recipes.write_report(tmp_path, flipped)
    report = (tmp_path / "report.md").read_text()
    assert "**84.90 %**" in report and "target 85 %: missed." in report     # the plain accuracy alone
    assert "80 s more): **85.34 %**; target 85 %: met with it." in report     # the flip one, said apart
    assert "(7.2 minutes from start to finish" in report
    assert "| test acc (first 2000 images) |" in report and "the per-epoch curve uses the first 2000" in report


def test_report_command_redraws_from_results_json(tmp_path, capsys):
    import json
    (tmp_path / "results.json").write_text(json.dumps(_result(0.6)))
    assert cnn_recipes.main(["report", "--out", str(tmp_path)]) == 0
    assert "**60.00 %**" in (tmp_path / "report.md").read_text()
    with pytest.raises(SystemExit):
        cnn_recipes.main(["report"])          # no folder: a usage error, not a traceback


def test_final_test_scores_plain_and_flipped_from_two_passes():
    from pyann import nn
    from pyann.train import evaluate
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1, rng=0), nn.BatchNorm2d(4), nn.ReLU(), nn.GlobalAvgPool(),
                          nn.Linear(4, 10, rng=1))
    test = (rng.standard_normal((250, 3, 8, 8)).astype(np.float32), rng.integers(0, 10, 250))
    plain, flip = cnn_recipes._test_plain_and_flipped(model, test, workers=2)
    for ours, ref in ((plain, evaluate(model, *test, batch_size=100)),
                      (flip, evaluate(model, *test, batch_size=100, flip=True))):
        assert ours["accuracy"] == ref["accuracy"]
        assert ours["loss"] == pytest.approx(ref["loss"], rel=1e-5)
    assert flip["seconds"] > 0
