"""Where datasets are found: search order, checksums, unofficial copies, the not-found error."""

import dataclasses
import hashlib
import warnings

import numpy as np
import pytest

from pyann.data import (ChecksumError, DatasetError, DatasetNotFoundError, UnofficialDataWarning,
                        cache_dir, load_cifar10, load_fashion_mnist, load_mnist, locate,
                        read_located)
from pyann.data.registry import MNIST, FileSpec, Variant


def _spec_matching(folder, base_spec=MNIST, suffix=".gz"):
    """A copy of ``base_spec`` whose official md5s are those of the files in ``folder``, so
    that synthetic files count as official."""
    files = tuple(
        FileSpec(f.role, f.path, hashlib.md5((folder / f.path).read_bytes()).hexdigest())
        for f in base_spec.variants[0 if suffix == ".gz" else 1].files
    )
    return dataclasses.replace(base_spec, variants=(Variant("idx-gz", "idx", files),))


def _load_unofficial(**kwargs):
    with pytest.warns(UnofficialDataWarning):
        return load_mnist(allow_unofficial=True, **kwargs)


@pytest.fixture
def copies(tmp_path, build, monkeypatch, isolated_env):
    """Four MNIST copies with different pixels: explicit root, $PYANN_DATA, cache, system."""
    places = {
        "root": tmp_path / "explicit",
        "env": tmp_path / "env-data",
        "cache": isolated_env.cache,
        "system": isolated_env.system,
    }
    arrays = {}
    for seed, (key, base) in enumerate(places.items()):
        arrays[key] = build.write_mnist(base / "mnist", seed=seed)
    monkeypatch.setenv("PYANN_DATA", str(places["env"]))
    return places, arrays


def _which(ds, arrays):
    matches = [k for k, a in arrays.items() if np.array_equal(ds.x_train[:, 0], a[0])]
    assert len(matches) == 1
    return matches[0]


def test_search_order_root_then_env_then_cache_then_system(copies):
    places, arrays = copies
    ds = _load_unofficial(root=places["root"])
    assert _which(ds, arrays) == "root" and ds.source_path == places["root"] / "mnist"
    assert _which(_load_unofficial(), arrays) == "env"
    for key in ("env", "cache"):
        for f in (places[key] / "mnist").iterdir():
            f.unlink()
        expected = "cache" if key == "env" else "system"
        assert _which(_load_unofficial(), arrays) == expected


def test_located_reports_its_source(copies):
    places, _ = copies
    assert locate("mnist", places["root"], allow_unofficial=True).source == "root= argument"
    assert locate("mnist", allow_unofficial=True).source == "$PYANN_DATA"


def test_root_may_be_the_dataset_folder_itself(tmp_path, build):
    arrays = build.write_mnist(tmp_path / "just-here")
    ds = _load_unofficial(root=tmp_path / "just-here")
    np.testing.assert_array_equal(ds.y_test, arrays[3])


def test_cache_respects_xdg_and_defaults_to_home(monkeypatch, isolated_env, tmp_path):
    assert cache_dir() == tmp_path / "xdg-cache" / "pyann"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == isolated_env.home / ".cache" / "pyann"


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "raw"])
def test_loaded_arrays_are_nchw_uint8_and_int64(tmp_path, build, gz):
    arrays = build.write_mnist(tmp_path / "mnist", gz=gz)
    ds = _load_unofficial(root=tmp_path)
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (5, 1, 28, 28)
    assert ds.y_train.dtype == np.int64 and ds.y_test.shape == (5,)
    np.testing.assert_array_equal(ds.x_train[:, 0], arrays[0])
    np.testing.assert_array_equal(ds.y_train, arrays[1])
    assert ds.classes == tuple("0123456789") and ds.name == "mnist"


def test_wrong_md5_is_rejected_naming_file_expected_and_actual(tmp_path, build):
    build.write_mnist(tmp_path / "mnist")
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    actual = hashlib.md5(path.read_bytes()).hexdigest()
    with pytest.raises(ChecksumError) as err:
        load_mnist(root=tmp_path)
    msg = str(err.value)
    assert str(path) in msg and actual in msg and "f68b3c2dcbeaaa9fbdd348bbdeb94873" in msg
    assert "allow_unofficial=True" in msg
    assert err.value.path == path and err.value.actual == actual
    assert err.value.expected == "f68b3c2dcbeaaa9fbdd348bbdeb94873"


def test_allow_unofficial_loads_and_marks_the_result(tmp_path, build):
    build.write_mnist(tmp_path / "mnist")
    with pytest.warns(UnofficialDataWarning, match="UNOFFICIAL.*mnist"):
        ds = load_mnist(root=tmp_path, allow_unofficial=True)
    assert ds.official is False and len(ds.notes) == 4
    assert "UNOFFICIAL" in repr(ds)


def test_unofficial_data_is_still_fully_validated(tmp_path, build):
    images, labels, x_test, y_test = build.make_mnist_arrays()
    labels[3] = 12
    build.write_mnist(tmp_path / "mnist", arrays=(images, labels, x_test, y_test))
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte.gz: label out of range 0..9: "
                                           r"record 3 has label 12"):
        load_mnist(root=tmp_path, allow_unofficial=True)
    build.write_mnist(tmp_path / "mnist", arrays=(images, labels[:5], x_test, y_test))
    with pytest.raises(DatasetError, match="holds 12 images but .* holds 5 labels"):
        load_mnist(root=tmp_path, allow_unofficial=True)


def test_official_checksums_load_as_official(tmp_path, build):
    build.write_mnist(tmp_path / "mnist")
    spec = _spec_matching(tmp_path / "mnist")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no UnofficialDataWarning
        found = locate(spec, tmp_path)
        ds = read_located(found)
    assert found.official and ds.official and ds.notes == ()
    # One flipped byte later, the same files are rejected.
    path = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.gz"):
        locate(spec, tmp_path)


def test_not_found_lists_every_location_and_the_fixes(tmp_path, monkeypatch, isolated_env):
    monkeypatch.setenv("PYANN_DATA", str(tmp_path / "env-data"))
    (isolated_env.cache / "fashion-mnist").mkdir(parents=True)
    (tmp_path / "explicit").mkdir()   # a root that does not exist is an error of its own
    with pytest.raises(DatasetNotFoundError) as err:
        load_fashion_mnist(root=tmp_path / "explicit")
    msg = str(err.value)
    for place in (tmp_path / "explicit" / "fashion-mnist", tmp_path / "env-data" / "fashion-mnist",
                  isolated_env.cache / "fashion-mnist", isolated_env.system / "fashion-mnist"):
        assert str(place) in msg
    assert "exists but holds none of the files" in msg  # the empty cache folder
    assert "download: disabled" in msg
    assert "PYANN_DATA" in msg and "root=" in msg
    assert "pyann data fetch fashion-mnist" in msg and "make data" in msg
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, DatasetError)
    assert len(err.value.tried) == 6


def test_not_found_says_what_is_unset(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_mnist()
    assert "root= argument: not given" in str(err.value)
    assert "$PYANN_DATA: not set" in str(err.value)


def test_incomplete_folder_names_the_missing_file(tmp_path, build):
    build.write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match="missing train-labels-idx1-ubyte.gz"):
        load_mnist(root=tmp_path, allow_unofficial=True)


# --------------------------------------------------------------------------- CIFAR-10

def test_cifar_python_archive_loads_with_opt_in(tmp_path, build, small_cifar):
    batches = build.make_cifar_batches(records=small_cifar)
    build.write_cifar_archive(tmp_path / "cifar-10" / "cifar-10-python.tar.gz",
                              build.cifar_files(batches, "python"))
    with pytest.raises(ChecksumError, match="c58f30108f718f92721af3b95e74349a"):
        load_cifar10(root=tmp_path)
    with pytest.warns(UnofficialDataWarning):
        ds = load_cifar10(root=tmp_path, allow_unofficial=True)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    assert ds.source_path == tmp_path / "cifar-10" / "cifar-10-python.tar.gz"
    assert ds.classes[0] == "airplane" and not ds.official


def test_cifar_extracted_binary_folder_cannot_be_verified(tmp_path, build, small_cifar):
    build.write_cifar_folder(tmp_path / "cifar-10",
                             build.cifar_files(build.make_cifar_batches(small_cifar), "binary"))
    with pytest.raises(ChecksumError, match="no official md5 is known"):
        load_cifar10(root=tmp_path)
    with pytest.warns(UnofficialDataWarning):
        ds = load_cifar10(root=tmp_path, allow_unofficial=True)
    assert ds.source_path == tmp_path / "cifar-10" / "cifar-10-batches-bin"


def test_cifar_batch_size_is_enforced_by_the_loader(tmp_path, build):
    build.write_cifar_folder(tmp_path / "cifar-10",
                             build.cifar_files(build.make_cifar_batches(4), "binary"))
    with pytest.raises(DatasetError, match="data_batch_1.bin: expected 10000 records, got 4"):
        load_cifar10(root=tmp_path, allow_unofficial=True)


def test_cifar_jpeg_copy_is_searched_only_with_opt_in(tmp_path, build, small_cifar, monkeypatch):
    jpeg = tmp_path / "shared" / "cifar-10-jpeg"
    build.write_cifar_archive(jpeg / "cifar-10-binary.tar.gz",
                              build.cifar_files(build.make_cifar_batches(small_cifar), "binary"))
    monkeypatch.setenv("PYANN_DATA", str(tmp_path / "shared"))
    with pytest.raises(DatasetNotFoundError) as err:
        load_cifar10()
    assert "An unofficial copy of CIFAR-10" in str(err.value)
    assert str(jpeg) in str(err.value) and "allow_unofficial=True" in str(err.value)
    with pytest.warns(UnofficialDataWarning, match="c32a1d4ab5d03f1284b67883e8d87530"):
        ds = load_cifar10(allow_unofficial=True)
    assert ds.official is False and ds.source_path == jpeg / "cifar-10-binary.tar.gz"


def test_genuine_folder_is_preferred_to_the_jpeg_copy(tmp_path, build, small_cifar, monkeypatch):
    files = build.cifar_files(build.make_cifar_batches(small_cifar, seed=1), "binary")
    build.write_cifar_archive(tmp_path / "cifar-10-jpeg" / "cifar-10-binary.tar.gz", files)
    build.write_cifar_archive(tmp_path / "cifar-10" / "cifar-10-binary.tar.gz", files)
    with pytest.warns(UnofficialDataWarning):
        ds = load_cifar10(root=tmp_path, allow_unofficial=True)
    assert ds.source_path == tmp_path / "cifar-10" / "cifar-10-binary.tar.gz"
