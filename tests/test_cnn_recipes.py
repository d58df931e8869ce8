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


def test_full_epochs_for_budget_fits_the_minutes_after_the_stages():
    model = nn.build("wrn", depth=10, width=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 64)

    def full_epochs(minutes, stages):
        return cnn_recipes._full_epochs_for_budget(model, x, y, 8, ProgressiveResize(CropFlip(4), stages),
                                                   minutes, n_eval=64, eval_batch_size=16, steps=2)
    assert full_epochs(1e-4, []) == 1 and full_epochs(1e4, []) > 1
    # the stages' time comes off the budget first
    assert full_epochs(1e4, [(16, 100000)]) < full_epochs(1e4, [])
    assert full_epochs(1e-4, [(16, 1)]) == 1


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


def test_report_command_redraws_from_results_json(tmp_path, capsys):
    import json
    (tmp_path / "results.json").write_text(json.dumps(_result(0.6)))
    assert cnn_recipes.main(["report", "--out", str(tmp_path)]) == 0
    assert "**60.00 %**" in (tmp_path / "report.md").read_text()
    with pytest.raises(SystemExit):
        cnn_recipes.main(["report"])          # no folder: a usage error, not a traceback
