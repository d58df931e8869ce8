"""Loading the real datasets from $PYANN_DATA (../shared/datasets on the project machines)."""

import numpy as np
import pytest

from pyann.data import (ChecksumError, DatasetNotFoundError, UnofficialDataWarning,
                        channel_stats, load_cifar10, load_fashion_mnist, load_mnist)

pytestmark = pytest.mark.realdata


def _need(folder, *names):
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        pytest.skip(f"real data absent: {folder} lacks {', '.join(missing)}")


IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.mark.parametrize("loader,folder", [(load_mnist, "mnist"),
                                           (load_fashion_mnist, "fashion-mnist")])
def test_real_mnist_family_is_official(real_data, monkeypatch, loader, folder):
    _need(real_data / folder, *IDX_FILES)
    monkeypatch.setenv("PYANN_DATA", str(real_data))
    ds = loader()
    assert ds.official and ds.notes == ()
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_train.dtype == np.uint8
    assert ds.y_train.shape == (60000,) and ds.y_train.dtype == np.int64
    assert ds.x_test.shape == (10000, 1, 28, 28) and ds.y_test.shape == (10000,)
    assert ds.y_train.min() == 0 and ds.y_train.max() == 9
    assert ds.source_path == real_data / folder
    if folder == "fashion-mnist":
        assert np.bincount(ds.y_train).tolist() == [6000] * 10
        assert np.bincount(ds.y_test).tolist() == [1000] * 10
    else:
        assert ds.y_train[:5].tolist() == [5, 0, 4, 1, 9]


def test_real_cifar_jpeg_copy_needs_opt_in(real_data, monkeypatch):
    archive = real_data / "cifar-10-jpeg" / "cifar-10-binary.tar.gz"
    _need(archive.parent, archive.name)
    monkeypatch.setenv("PYANN_DATA", str(real_data))
    with pytest.raises(DatasetNotFoundError, match="allow_unofficial=True"):
        load_cifar10()
    with pytest.raises(ChecksumError, match="2ccfa0dc45b3f52c0e43ab476a24f1ad"):
        load_cifar10(root=archive.parent)
    with pytest.warns(UnofficialDataWarning, match="UNOFFICIAL"):
        ds = load_cifar10(allow_unofficial=True)
    assert not ds.official and ds.source_path == archive
    assert ds.x_train.shape == (50000, 3, 32, 32) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (10000, 3, 32, 32) and ds.y_test.dtype == np.int64
    assert np.bincount(ds.y_train).tolist() == [5000] * 10
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
    assert ds.classes == ("airplane", "automobile", "bird", "cat", "deer",
                          "dog", "frog", "horse", "ship", "truck")
    mean, std = channel_stats(ds.x_train[:10000])
    np.testing.assert_allclose(mean, [0.4913, 0.4821, 0.4465], atol=0.01)
