"""IDX parsing: shapes, dtypes, magic numbers, exact payload sizes, gzip errors."""

import gzip

import numpy as np
import pytest

from pyann.data import DatasetError
from pyann.data.idx import (MAGIC_IMAGES, MAGIC_LABELS, parse_idx, read_idx, read_idx_images,
                            read_idx_labels)


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "raw"])
def test_images_and_labels_round_trip(tmp_path, build, gz):
    images, labels, _, _ = build.make_mnist_arrays()
    build.write_mnist(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    got_images = read_idx_images(tmp_path / f"train-images-idx3-ubyte{suffix}")
    got_labels = read_idx_labels(tmp_path / f"train-labels-idx1-ubyte{suffix}")
    assert got_images.shape == (12, 28, 28) and got_images.dtype == np.uint8
    assert got_labels.shape == (12,) and got_labels.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.flags.writeable and got_images.flags.c_contiguous


@pytest.mark.parametrize("code,dtype", [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16),
                                        (0x0C, np.int32), (0x0D, np.float32), (0x0E, np.float64)])
def test_generic_idx_types_are_big_endian_decoded(build, code, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if code == 0x08:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    got = parse_idx(build.idx_bytes(array, code))
    assert got.dtype == np.dtype(dtype).newbyteorder("=")
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, array)


def test_gzip_is_detected_by_content_not_name(tmp_path, build):
    raw = build.idx_bytes(np.arange(5, dtype=np.uint8))
    (tmp_path / "labels.gz").write_bytes(raw)           # not gzipped despite the name
    (tmp_path / "labels.idx").write_bytes(gzip.compress(raw))  # gzipped without the name
    np.testing.assert_array_equal(read_idx(tmp_path / "labels.gz"), np.arange(5))
    np.testing.assert_array_equal(read_idx(tmp_path / "labels.idx"), np.arange(5))


def test_wrong_magic_names_file_and_both_magics(tmp_path, build):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(build.idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DatasetError) as err:
        read_idx_images(path)
    msg = str(err.value)
    assert str(path) in msg and "magic" in msg
    assert str(MAGIC_LABELS) in msg and str(MAGIC_IMAGES) in msg


@pytest.mark.parametrize("header", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"PK\x03\x04"],
                         ids=["nonzero-first-byte", "unknown-type", "zip-file"])
def test_not_an_idx_file(header):
    with pytest.raises(DatasetError, match="somefile.*magic"):
        parse_idx(header + b"\x00\x00\x00\x01" + b"\x00", "somefile")


def test_short_header():
    with pytest.raises(DatasetError, match="f: too short.*expected at least 4 bytes, got 2"):
        parse_idx(b"\x00\x00", "f")
    with pytest.raises(DatasetError, match=r"f: truncated IDX header: expected 16 bytes"):
        parse_idx(b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02", "f")


def test_truncated_payload_reports_expected_and_actual(tmp_path, build):
    data = build.idx_bytes(np.zeros((4, 28, 28), np.uint8))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data[:-10]))
    with pytest.raises(DatasetError) as err:
        read_idx_images(path)
    msg = str(err.value)
    assert str(path) in msg and "truncated" in msg
    assert f"needs {4 * 28 * 28} bytes" in msg and f"got {4 * 28 * 28 - 10}" in msg


def test_trailing_garbage_is_rejected(tmp_path, build):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(build.idx_bytes(np.zeros(7, np.uint8)) + b"junk")
    with pytest.raises(DatasetError, match=r"4 trailing bytes.*needs 7 bytes.*got 11"):
        read_idx_labels(path)


def test_corrupt_gzip_names_the_file(tmp_path, build):
    good = gzip.compress(build.idx_bytes(np.arange(5000, dtype=np.uint8) % 251))
    corrupt = bytearray(good)
    corrupt[len(corrupt) // 2] ^= 0xFF
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(bytes(corrupt))
    with pytest.raises(DatasetError, match="corrupt or truncated gzip") as err:
        read_idx(path)
    assert str(path) in str(err.value)
    path.write_bytes(good[: len(good) // 2])  # a truncated download
    with pytest.raises(DatasetError, match="corrupt or truncated gzip"):
        read_idx(path)
