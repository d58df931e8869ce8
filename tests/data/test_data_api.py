"""The public API: load() dispatch, Dataset, to_float, channel_stats, batches, the CLI."""

import dataclasses

import numpy as np
import pytest

import pyann.data as data
from pyann.data import Dataset, DatasetError, batches, channel_stats, num_batches, to_float
from pyann.data.__main__ import main


def test_public_names_exist():
    for name in data.__all__:
        assert hasattr(data, name), name


@pytest.mark.parametrize("alias,canonical", [("MNIST", "mnist"), ("fashion_mnist", "fashion-mnist"),
                                             ("fmnist", "fashion-mnist"), ("cifar-10", "cifar10")])
def test_load_dispatches_on_name_and_aliases(alias, canonical):
    with pytest.raises(data.DatasetNotFoundError, match="not found"):
        data.load(alias)
    assert data.get_spec(alias).name == canonical


def test_unknown_dataset_name():
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'; known datasets: mnist"):
        data.load("imagenet")


def _toy_dataset():
    x = np.zeros((3, 1, 28, 28), np.uint8)
    y = np.arange(3, dtype=np.int64)
    return Dataset(x, y, x, y, "mnist", source_path="/nowhere", classes=tuple("0123456789"),
                   official=True)


def test_dataset_is_frozen_with_short_repr():
    ds = _toy_dataset()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"
    assert repr(ds).startswith("Dataset(name='mnist', train=(3, 1, 28, 28)")
    assert ds.num_classes == 10 and ds.image_shape == (1, 28, 28)


def test_to_float_range_and_dtype():
    x = np.array([[[[0, 128, 255]]]], np.uint8)
    out = to_float(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out.ravel(), [0.0, 128 / 255, 1.0], rtol=1e-6)


def test_to_float_normalises_per_channel():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50, 3, 4, 4), dtype=np.uint8)
    mean, std = channel_stats(x)
    out = to_float(x, mean, std)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-4)
    with pytest.raises(ValueError, match="mean has 2 values for 3 channels"):
        to_float(x, mean=[0.5, 0.5])
    with pytest.raises(ValueError, match="must be uint8"):
        to_float(x.astype(np.float32))


def test_channel_stats_matches_numpy():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (37, 3, 5, 5), dtype=np.uint8)
    mean, std = channel_stats(x, chunk=8)
    xf = x.astype(np.float64) / 255
    np.testing.assert_allclose(mean, xf.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, xf.std(axis=(0, 2, 3)), rtol=1e-9)


def test_batches_in_order_cover_everything():
    x, y = np.arange(10)[:, None], np.arange(10)
    got = list(batches(x, y, 4))
    assert [len(b) for _, b in got] == [4, 4, 2] == [4, 4, 2][: num_batches(10, 4)]
    np.testing.assert_array_equal(np.concatenate([b for _, b in got]), y)
    assert [len(b) for _, b in batches(x, y, 4, drop_last=True)] == [4, 4]
    assert num_batches(10, 4, drop_last=True) == 2


def test_batches_shuffle_is_seeded_and_pairs_stay_together():
    x, y = np.arange(100) * 10, np.arange(100)
    first = [yb.tolist() for _, yb in batches(x, y, 32, shuffle=True, rng=5)]
    again = [yb.tolist() for _, yb in batches(x, y, 32, shuffle=True, rng=np.random.default_rng(5))]
    assert first == again and sorted(sum(first, [])) == list(range(100))
    assert sum(first, []) != list(range(100))
    for xb, yb in batches(x, y, 32, shuffle=True, rng=1):
        np.testing.assert_array_equal(xb, yb * 10)
    gen = np.random.default_rng(2)  # a Generator advances: two epochs differ
    epoch1 = [yb.tolist() for _, yb in batches(x, y, 100, shuffle=True, rng=gen)]
    epoch2 = [yb.tolist() for _, yb in batches(x, y, 100, shuffle=True, rng=gen)]
    assert epoch1 != epoch2


def test_batches_argument_errors():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="x has 4 samples but y has 3"):
        list(batches(x, np.zeros(3), 2))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        list(batches(x, np.zeros(4), 0))
    with pytest.raises(ValueError, match="needs rng="):
        list(batches(x, np.zeros(4), 2, shuffle=True))


def test_cli_info_and_fetch(tmp_path, build, capsys, monkeypatch):
    build.write_mnist(tmp_path / "mnist")
    monkeypatch.setenv("PYANN_DATA", str(tmp_path))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"mnist: UNOFFICIAL, idx-gz, found via $PYANN_DATA: {tmp_path / 'mnist'}" in out
    assert "fashion-mnist: not available (Fashion-MNIST not found" in out
    assert main(["fetch", "mnist", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "pyann data fetch: error: MNIST: the files found at" in err and "allow_unofficial" in err
    assert main(["fetch", "mnist", "--allow-unofficial"]) == 0
    assert "MISMATCH (official f68b3c2dcbeaaa9fbdd348bbdeb94873)" in capsys.readouterr().out


def test_cli_fetch_failure_lists_locations(capsys):
    # The autouse fixture blocks the network, so the download fails (and says so).
    assert main(["fetch", "fashion-mnist"]) == 1
    err = capsys.readouterr().err
    assert "Fashion-MNIST not found" in err and "download: failed" in err
    assert main(["fetch", "nope"]) == 1
    assert "unknown dataset 'nope'" in capsys.readouterr().err
