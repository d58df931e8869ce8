"""python -m pyann train, end to end on real MNIST (the CI's real-data training check)."""
import json

import pytest

from pyann import nn
from pyann.__main__ import main


@pytest.mark.realdata
def test_train_mlp5_on_real_mnist(tmp_path, data_root, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "mlp5", "--dataset", "mnist", "--epochs", "1",
                 "--data-root", str(data_root), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    # one epoch of the project recipe reaches ~97 % on MNIST; 95 % leaves room for noise only
    assert results["final_test_accuracy"] > 0.95
    assert len(results["history"]["epochs"]) == 1
    model = nn.load(out / "model.npz")
    assert model.num_parameters() == 784 * 512 + 512 + 3 * (512 * 512 + 512) + 512 * 10 + 10
    table = capsys.readouterr().out
    assert "test acc" in table and "final test accuracy" in table


def test_train_reports_missing_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("PYANN_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from pyann.data import DatasetNotFoundError
    with pytest.raises(DatasetNotFoundError) as err:
        main(["train", "--dataset", "mnist", "--epochs", "1", "--data-root", str(tmp_path / "empty"),
              "--out", str(tmp_path / "o")])
    message = str(err.value)
    assert str(tmp_path / "empty") in message and "PYANN_DATA" in message
