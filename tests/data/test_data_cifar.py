"""CIFAR-10 reading: both formats, archive and folder, validation, and safe unpickling."""

import io
import os
import pickle

import numpy as np
import pytest

from pyann.data import DatasetError
from pyann.data.cifar import (RestrictedUnpickler, parse_binary_batch, parse_meta_txt,
                              parse_python_batch, read_cifar10, safe_unpickle)


def _expected(batches, names):
    x = np.concatenate([batches[b][0] for b in names])
    y = np.concatenate([batches[b][1] for b in names]).astype(np.int64)
    return x, y


def _check(arrays, batches, fmt, classes):
    x_train, y_train = _expected(batches, [b for b in batches if b != "test_batch"])
    assert arrays.format == fmt
    assert arrays.x_train.shape == (20, 3, 32, 32) and arrays.x_train.dtype == np.uint8
    assert arrays.y_train.dtype == np.int64 and arrays.y_test.dtype == np.int64
    np.testing.assert_array_equal(arrays.x_train, x_train)
    np.testing.assert_array_equal(arrays.y_train, y_train)
    np.testing.assert_array_equal(arrays.x_test, batches["test_batch"][0])
    np.testing.assert_array_equal(arrays.y_test, batches["test_batch"][1])
    assert arrays.classes == tuple(classes)
    assert arrays.x_train.flags.writeable and arrays.x_test.flags.writeable


@pytest.mark.parametrize("fmt", ["binary", "python"])
@pytest.mark.parametrize("where", ["archive", "parent-folder", "batches-folder"])
def test_read_both_formats_from_archive_and_folder(tmp_path, build, fmt, where):
    batches = build.make_cifar_batches(records=4)
    files = build.cifar_files(batches, fmt)
    if where == "archive":
        path = build.write_cifar_archive(tmp_path / f"cifar-10-{fmt}.tar.gz", files)
    else:
        build.write_cifar_folder(tmp_path, files)
        folder = "cifar-10-batches-bin" if fmt == "binary" else "cifar-10-batches-py"
        path = tmp_path if where == "parent-folder" else tmp_path / folder
    arrays = read_cifar10(path, records_per_batch=4)
    _check(arrays, batches, fmt, build.CIFAR_CLASSES)


def test_pixel_layout_is_rgb_planes_row_major(build):
    image = np.zeros((1, 3, 32, 32), np.uint8)
    image[0, 0, 0, 1] = 11   # R, row 0, column 1
    image[0, 1, 2, 0] = 22   # G, row 2, column 0
    image[0, 2, 31, 31] = 33  # B, last pixel
    data = build.cifar_binary_record_bytes(image, np.array([7], np.uint8))
    assert data[0] == 7 and data[1 + 1] == 11 and data[1 + 1024 + 64] == 22 and data[-1] == 33
    x, y = parse_binary_batch(data, records_per_batch=1)
    np.testing.assert_array_equal(x, image)
    assert y.tolist() == [7]


def test_python3_pickles_load_too():
    batch = {"data": (np.arange(2 * 3072) % 256).astype(np.uint8).reshape(2, 3072), "labels": [3, 9]}
    x, y = parse_python_batch(pickle.dumps(batch, protocol=4), "b", records_per_batch=2)
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [3, 9]


def test_wrong_record_size_names_file(build):
    data = build.cifar_binary_record_bytes(*build.make_cifar_batches(2)["data_batch_1"]) + b"\x00"
    with pytest.raises(DatasetError, match=r"data_batch_1.bin: size 6147 bytes is not a multiple "
                                           r"of the 3073-byte record"):
        parse_binary_batch(data, "data_batch_1.bin")


def test_record_count_is_checked(build):
    data = build.cifar_binary_record_bytes(*build.make_cifar_batches(4)["test_batch"])
    with pytest.raises(DatasetError, match="test_batch.bin: expected 10000 records, got 4"):
        parse_binary_batch(data, "test_batch.bin")
    assert len(parse_binary_batch(data, records_per_batch=None)[1]) == 4


@pytest.mark.parametrize("fmt", ["binary", "python"])
def test_label_out_of_range_names_the_archive_member(tmp_path, build, fmt):
    batches = build.make_cifar_batches(4)
    batches["data_batch_3"][1][2] = 10
    archive = build.write_cifar_archive(tmp_path / "c.tar.gz", build.cifar_files(batches, fmt))
    with pytest.raises(DatasetError, match=r"label out of range 0..9: record 2 has label 10") as err:
        read_cifar10(archive, records_per_batch=4)
    assert f"{archive}:cifar-10-batches-" in str(err.value) and "data_batch_3" in str(err.value)


def test_python_batch_with_bad_data_array():
    bad = {b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}
    with pytest.raises(DatasetError, match="f: b'data' must be a uint8 array"):
        parse_python_batch(pickle.dumps(bad, protocol=4), "f", records_per_batch=None)
    with pytest.raises(DatasetError, match="f: the pickled dict has no b'data'"):
        parse_python_batch(pickle.dumps({b"x": 1}, protocol=4), "f")
    with pytest.raises(DatasetError, match="f: expected a pickled dict, got list"):
        parse_python_batch(pickle.dumps([1], protocol=4), "f")
    with pytest.raises(DatasetError, match="f: not a valid CIFAR-10 pickle"):
        parse_python_batch(b"\x80\x02garbage", "f")


class _Exploit:
    """Unpickling this calls os.system (how a malicious 'dataset' runs code)."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_restricted_unpickler_refuses_os_system_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"data": _Exploit(f"touch {marker}"), "labels": []}, protocol=4)
    assert b"system" in payload  # the pickle really names os.system (posix.system)
    with pytest.raises(DatasetError, match=r"evil_batch: refusing to unpickle global "
                                           r"(os|posix)\.system"):
        parse_python_batch(payload, "evil_batch")
    assert not marker.exists()
    # Sanity check that the payload is live: the ordinary unpickler would run it.
    pickle.loads(payload)
    assert marker.exists()


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("numpy", "load"),
                                         ("numpy.core.multiarray", "scalar"),
                                         ("subprocess", "Popen"), ("_codecs", "encode")])
def test_restricted_unpickler_admits_only_array_globals(module, name):
    payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"."
    with pytest.raises(DatasetError, match=f"refusing to unpickle global {module}.{name}"):
        safe_unpickle(payload, "f")
    # The admitted globals are validating stand-ins: a pickle never gets numpy's own
    # constructors (whose __setstate__ trusts its argument).
    unpickler = RestrictedUnpickler(io.BytesIO(b""), name="f")
    for admitted in [("numpy", "ndarray"), ("numpy", "dtype"),
                     ("numpy.core.multiarray", "_reconstruct"),
                     ("numpy._core.multiarray", "_reconstruct")]:
        assert unpickler.find_class(*admitted) not in (np.ndarray, np.dtype)


def test_malicious_pickle_inside_archive_is_refused(tmp_path, build):
    files = build.cifar_files(build.make_cifar_batches(4), "python")
    marker = tmp_path / "pwned"
    files["cifar-10-batches-py/data_batch_2"] = pickle.dumps(_Exploit(f"touch {marker}"))
    archive = build.write_cifar_archive(tmp_path / "c.tar.gz", files)
    with pytest.raises(DatasetError, match="data_batch_2: refusing to unpickle global"):
        read_cifar10(archive, records_per_batch=4)
    assert not marker.exists()


def test_corrupt_and_truncated_archive(tmp_path, build):
    files = build.cifar_files(build.make_cifar_batches(4), "binary")
    archive = build.write_cifar_archive(tmp_path / "c.tar.gz", files)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated archive") as err:
        read_cifar10(archive, records_per_batch=4)
    assert str(archive) in str(err.value)
    archive.write_bytes(b"not a tar file at all")
    with pytest.raises(DatasetError, match=f"{archive}: corrupt or truncated archive"):
        read_cifar10(archive)


def test_archive_missing_a_batch_lists_it(tmp_path, build):
    files = build.cifar_files(build.make_cifar_batches(4), "binary")
    del files["cifar-10-batches-bin/data_batch_4.bin"]
    archive = build.write_cifar_archive(tmp_path / "c.tar.gz", files)
    with pytest.raises(DatasetError, match=r"no complete CIFAR-10 batch set.*"
                                           r"missing cifar-10-batches-bin/data_batch_4.bin"):
        read_cifar10(archive, records_per_batch=4)


def test_meta_txt_must_hold_ten_names():
    assert parse_meta_txt(b"a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n")[-1] == "j"
    with pytest.raises(DatasetError, match="meta.txt: expected 10 class names"):
        parse_meta_txt(b"a\nb\n", "meta.txt")
