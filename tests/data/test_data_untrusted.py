"""Untrusted dataset files: crafted pickles, compression bombs, huge files, malformed values.

Each test feeds pyann.data a file that a careless reader would crash on, run out of memory
over, or silently misread, and checks for the named DatasetError instead (file name and what
is wrong in the message).
"""

import gzip
import io
import os
import pickle
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

import pyann
import pyann.data.cifar as cifar
import pyann.data.idx as idx
from pyann.data import DatasetError, errors, load_mnist
from pyann.data.cifar import parse_binary_batch, parse_meta_pickle, parse_python_batch, read_cifar10
from pyann.data.idx import parse_idx, read_idx, read_idx_images, read_idx_labels


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct as found
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct as found
    return found


class _ForgedDtype:
    """Pickles as numpy.dtype(code) followed by dtype.__setstate__(state), any state we like."""

    def __init__(self, code, state):
        self.code, self.state = code, state

    def __reduce__(self):
        return (np.dtype, (self.code, False, True), self.state)


class _ForgedArray:
    """Pickles as _reconstruct(ndarray, (0,), b'b') then ndarray.__setstate__(state)."""

    def __init__(self, shape, dtype, raw):
        self.shape, self.dtype, self.raw = shape, dtype, raw

    def __reduce__(self):
        return (_reconstruct(), (np.ndarray, (0,), b"b"),
                (1, self.shape, self.dtype, False, self.raw))


# An object field at offset 0 of an 8-byte record, with flags 0: the dtype claims to hold no
# objects, so numpy copies raw bytes into it, and reading an element dereferences them.
_OBJECT_FIELD_STATE = (3, "|", None, ("f",), {"f": (np.dtype("O"), 0)}, 8, 1, 0)
_POINTERS = (0x4141414141414140).to_bytes(8, "little")


def _crafted_batches(build) -> dict[str, bytes]:
    pixels = np.zeros((2, 3072), np.uint8)
    forged = _ForgedArray((2,), _ForgedDtype("V8", _OBJECT_FIELD_STATE), _POINTERS * 2)
    # 'u1' is a plain code, but its state adds a field: the state must be checked too, not
    # only the code.
    fields_state = (3, "|", None, ("f",), {"f": (np.dtype("u1"), 0)}, -1, -1, 0)
    forged_u1 = _ForgedArray((2,), _ForgedDtype("u1", fields_state), b"\x01\x02")
    return {
        "object_field_py3": pickle.dumps({b"data": pixels, b"labels": forged}, protocol=4),
        "object_field_py2": build.py2_pickle({"data": pixels, "labels": forged}),
        "object_field_in_data": pickle.dumps({b"data": forged, b"labels": [0, 1]}, protocol=4),
        "fields_on_u1": pickle.dumps({b"data": pixels, b"labels": forged_u1}, protocol=4),
    }


def test_crafted_batch_with_object_dtype_is_refused_not_a_crash(tmp_path, build):
    # In a child process: on an unsafe reader this segfaults, which must fail this test, not
    # kill the test runner.
    batches = _crafted_batches(build)
    for name, payload in batches.items():
        (tmp_path / name).write_bytes(payload)
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from pyann.data import DatasetError
        from pyann.data.cifar import parse_python_batch
        for path in sys.argv[1:]:
            try:
                x, y = parse_python_batch(Path(path).read_bytes(), Path(path).name,
                                          records_per_batch=None)
                print("ACCEPTED", Path(path).name, y, flush=True)
            except DatasetError as exc:
                print("REFUSED", exc, flush=True)
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(pyann.__file__).resolve().parents[1]))
    run = subprocess.run([sys.executable, "-c", script, *(str(tmp_path / n) for n in batches)],
                         capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, f"reader died with status {run.returncode}: {run.stderr[-500:]}"
    lines = run.stdout.splitlines()
    assert len(lines) == len(batches)
    for name, line in zip(batches, lines):
        assert line.startswith(f"REFUSED {name}: "), line
        assert "dtype" in line, line
    assert "'V8' is not a plain numeric dtype" in lines[0]
    assert "refusing pickled dtype state" in lines[3]


def test_forged_dtype_never_reaches_numpy_setstate(monkeypatch, build):
    # The unpickler hands out stand-ins: even with a harmless state, numpy's own dtype and
    # ndarray constructors are never called on the pickle's arguments.
    plain = _ForgedArray((2,), _ForgedDtype("u1", (3, "|", None, None, None, -1, -1, 0)),
                         b"\x03\x07")
    batch = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": plain}, protocol=4)
    assert parse_python_batch(batch, "b", records_per_batch=None)[1].tolist() == [3, 7]
    # Flags are ignored, not trusted: a forged flag word on a plain code changes nothing.
    flagged = _ForgedArray((2,), _ForgedDtype("u1", (3, "|", None, None, None, -1, -1, 63)),
                           b"\x01\x02")
    batch = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": flagged},
                         protocol=4)
    assert parse_python_batch(batch, "b", records_per_batch=None)[1].tolist() == [1, 2]
    unpickler = cifar.RestrictedUnpickler(io.BytesIO(b""), name="f")
    assert unpickler.find_class("numpy", "dtype") is not np.dtype


@pytest.mark.parametrize("payload,fragment", [
    # BYTEARRAY8 declaring 2**62 bytes: the C unpickler allocates before reading.
    (b"\x80\x05\x96" + (2 ** 62).to_bytes(8, "little") + b"x.", "opcode BYTEARRAY8"),
    # NEWOBJ on the admitted numpy.ndarray global, bypassing _reconstruct.
    (b"\x80\x02cnumpy\nndarray\n)\x81.", "opcode NEWOBJ"),
    # REDUCE calling numpy.ndarray directly.
    (b"\x80\x02cnumpy\nndarray\nK\x03\x85R.", "refusing to call numpy.ndarray"),
])
def test_pickle_paths_around_the_stand_ins_are_refused(payload, fragment):
    with pytest.raises(DatasetError, match=fragment) as err:
        parse_python_batch(payload, "data_batch_1", records_per_batch=None)
    assert "data_batch_1" in str(err.value)


def _batch(labels, data=None) -> bytes:
    data = np.zeros((len(labels), 3072), np.uint8) if data is None else data
    return pickle.dumps({b"data": data, b"labels": labels}, protocol=4)


def test_object_array_labels_are_refused():
    labels = np.array([1, 2], dtype=object)
    with pytest.raises(DatasetError, match=r"b: pickled dtype 'O8' is not a plain numeric dtype"):
        parse_python_batch(_batch(labels), "b", records_per_batch=None)


@pytest.mark.parametrize("labels,fragment", [
    ([0, 2.0], r"record 1 has label 2.0, a float \(labels are not truncated\)"),
    ([0, 3.7], r"record 1 has label 3.7, a float"),
    ([True, 1], r"record 0 has label True, a bool"),
    ([0, "3"], r"record 1 has label '3', a str"),
    ([0, None], r"record 1 has label None, a NoneType"),
    ([2 ** 70, 1], r"label out of range 0..9: record 0 has label 1180591620717411303424"),
    ([1, -2 ** 70], r"label out of range 0..9: record 1 has label -1180591620717411303424"),
    ([1, -1], r"label out of range 0..9: record 1 has label -1"),
    (np.array([0.0, 1.0]), r"b'labels' must be a list of ints or a 1-D integer array, got a "
                           r"float64 array"),
    (np.array([True, False]), r"got a bool array"),
    (np.array([[1], [2]]), r"got a int64 array of shape \(2, 1\)"),
    (np.array([1, 2 ** 63], np.uint64), r"record 1 has label 9223372036854775808"),
    ("0123", r"b'labels' must be a list of ints, got str"),
])
def test_malformed_python_labels_are_named_errors(labels, fragment):
    n = 2 if not isinstance(labels, str) else 4
    payload = _batch(labels, np.zeros((n, 3072), np.uint8))
    with pytest.raises(DatasetError, match=fragment) as err:
        parse_python_batch(payload, "data_batch_9", records_per_batch=None)
    assert str(err.value).startswith("data_batch_9: ")


def test_plain_labels_still_load_as_lists_and_integer_arrays():
    for labels in ([3, 9], np.array([3, 9], np.uint8), np.array([3, 9], ">i8")):
        x, y = parse_python_batch(_batch(labels), "b", records_per_batch=None)
        assert y.dtype == np.int64 and y.tolist() == [3, 9]


def test_fortran_ordered_and_big_endian_arrays_keep_their_values():
    data = np.asfortranarray((np.arange(2 * 3072) % 251).astype(np.uint8).reshape(2, 3072))
    x, y = parse_python_batch(_batch(np.array([4, 5], ">u2"), data), "b",
                              records_per_batch=None)
    np.testing.assert_array_equal(x.reshape(2, 3072), data)
    assert y.tolist() == [4, 5]


@pytest.mark.parametrize("data,fragment", [
    (np.zeros((2, 3072), object), r"pickled dtype 'O8' is not a plain numeric dtype"),
    ([[0] * 3072] * 2, r"b'data' is a list, not a numpy array"),
    (np.zeros((2, 3072), np.complex64), r"pickled dtype 'c8' is not a plain numeric dtype"),
])
def test_pixels_that_are_not_a_plain_uint8_array(data, fragment):
    with pytest.raises(DatasetError, match=fragment):
        parse_python_batch(_batch([0, 1], data), "b", records_per_batch=None)


def test_array_whose_data_does_not_match_its_shape():
    short = _ForgedArray((3,), _ForgedDtype("u1", (3, "|", None, None, None, -1, -1, 0)),
                         b"\x01\x02")
    with pytest.raises(DatasetError, match=r"b: pickled array of shape \(3,\) and dtype uint8 "
                                           r"needs 3 bytes of data, got 2"):
        parse_python_batch(_batch(short, np.zeros((3, 3072), np.uint8)), "b",
                           records_per_batch=None)


def test_meta_names_must_be_strings():
    payload = pickle.dumps({b"label_names": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}, protocol=4)
    with pytest.raises(DatasetError, match=r"batches.meta: b'label_names' must hold strings"):
        parse_meta_pickle(payload, "batches.meta")


def test_empty_cifar_batch_is_refused():
    with pytest.raises(DatasetError, match=r"test_batch.bin: holds 0 records: an empty batch"):
        parse_binary_batch(b"", "test_batch.bin", records_per_batch=None)
    with pytest.raises(DatasetError, match=r"data_batch_1: holds 0 records"):
        parse_python_batch(_batch([], np.zeros((0, 3072), np.uint8)), "data_batch_1",
                           records_per_batch=None)


# --------------------------------------------------------------------------- IDX headers

def test_idx_header_with_255_dimensions():
    data = bytes([0, 0, 0x08, 255]) + (1).to_bytes(4, "big") * 255 + b"\x07"
    with pytest.raises(DatasetError, match=r"weird.idx: IDX header declares 255 dimensions; an "
                                           r"IDX array needs 1 to 32"):
        parse_idx(data, "weird.idx")


def test_idx_header_with_0_dimensions():
    with pytest.raises(DatasetError, match=r"f: IDX header declares 0 dimensions"):
        parse_idx(bytes([0, 0, 0x08, 0]) + b"\x07", "f")


def test_idx_split_with_0_images_is_refused(tmp_path, build):
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(build.idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    with pytest.raises(DatasetError, match=r"holds 0 images \(shape \(0, 28, 28\)\): an empty "
                                           r"split") as err:
        read_idx_images(path)
    assert str(path) in str(err.value)
    path.write_bytes(build.idx_bytes(np.zeros((3, 28, 0), np.uint8)))
    with pytest.raises(DatasetError, match=r"images of shape \(28, 0\) hold no pixels"):
        read_idx_images(path)
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    labels.write_bytes(build.idx_bytes(np.zeros(0, np.uint8)))
    with pytest.raises(DatasetError, match=r"holds 0 labels"):
        read_idx_labels(labels)


def test_loader_refuses_an_empty_test_split(tmp_path, build):
    x_train, y_train, _, _ = build.make_mnist_arrays()
    empty = (x_train, y_train, np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8))
    build.write_mnist(tmp_path / "mnist", arrays=empty)
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte.gz: holds 0 images"):
        load_mnist(tmp_path, allow_unofficial=True)


def test_loader_refuses_image_and_label_counts_that_differ(tmp_path, build):
    x_train, y_train, x_test, y_test = build.make_mnist_arrays()
    build.write_mnist(tmp_path / "mnist", arrays=(x_train, y_train, x_test, y_test[:-1]))
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte.gz holds 5 images but "
                                           r".*t10k-labels-idx1-ubyte.gz holds 4 labels"):
        load_mnist(tmp_path, allow_unofficial=True)


# --------------------------------------------------------------------------- bounded reads

class _Endless:
    """An endless stream of zeros that records how much was asked of it."""

    def __init__(self):
        self.served = 0

    def read(self, n=-1):
        assert n is not None and n >= 0, "an unbounded read() of an endless stream"
        self.served += n
        return bytes(n)


def test_bounded_read_stops_one_byte_past_the_bound():
    from pyann.data.reading import read_stream

    stream = _Endless()
    with pytest.raises(errors.DatasetTooLargeError, match=r"s: holds more than 1,000 bytes"):
        read_stream(stream, 1000, "s")
    assert stream.served == 1001


def _gzip_bomb(path: Path, expanded: int) -> Path:
    with gzip.open(path, "wb", compresslevel=9) as f:
        header = bytes([0, 0, 0x08, 1]) + expanded.to_bytes(4, "big")
        f.write(header)
        block = bytes(1 << 20)
        for _ in range(expanded // len(block)):
            f.write(block)
    return path


def test_idx_gzip_bomb_stops_at_the_bound(tmp_path):
    bomb = _gzip_bomb(tmp_path / "train-labels-idx1-ubyte.gz", 8 << 20)
    assert bomb.stat().st_size < 64 << 10  # 8 MiB of content in a few kilobytes
    with pytest.raises(errors.DatasetTooLargeError,
                       match=r"train-labels-idx1-ubyte.gz: gunzips to more than 1,048,576 "
                             r"bytes") as err:
        read_idx(bomb, max_bytes=1 << 20)
    assert err.value.limit == 1 << 20 and str(bomb) in str(err.value)


def test_idx_bound_applies_through_the_loader(tmp_path, build, monkeypatch):
    build.write_mnist(tmp_path / "mnist")
    _gzip_bomb(tmp_path / "mnist" / "train-images-idx3-ubyte.gz", 4 << 20)
    monkeypatch.setattr(idx, "MAX_IDX_BYTES", 1 << 20)
    with pytest.raises(errors.DatasetTooLargeError,
                       match=r"train-images-idx3-ubyte.gz: gunzips to more than 1,048,576"):
        load_mnist(tmp_path, allow_unofficial=True)


def test_huge_file_in_cifar_folder_is_refused_before_reading(tmp_path, build):
    files = build.cifar_files(build.make_cifar_batches(4), "binary")
    build.write_cifar_folder(tmp_path, files)
    huge = tmp_path / "cifar-10-batches-bin" / "data_batch_2.bin"
    with open(huge, "r+b") as f:  # sparse: no disk space or time spent
        f.truncate(cifar.MAX_BATCH_BYTES + 3073)
    with pytest.raises(errors.DatasetTooLargeError,
                       match=r"data_batch_2.bin: is 67,111,937 bytes, more than 67,108,864 "
                             r"bytes"):
        read_cifar10(tmp_path, records_per_batch=4)


def test_cifar_folder_bound_is_a_parameter(tmp_path, build):
    files = build.cifar_files(build.make_cifar_batches(4), "python")
    build.write_cifar_folder(tmp_path, files)
    with pytest.raises(errors.DatasetTooLargeError, match=r"more than 1,000 bytes"):
        read_cifar10(tmp_path, records_per_batch=4, max_bytes=1000)
    assert read_cifar10(tmp_path, records_per_batch=4, max_bytes=20_000).y_train.shape == (20,)


def test_compression_bomb_among_skipped_archive_members(tmp_path, build):
    files = build.cifar_files(build.make_cifar_batches(4), "binary")
    archive = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=9) as tar:
        junk = tarfile.TarInfo("cifar-10-batches-bin/readme.html")
        junk.size = 16 << 20
        tar.addfile(junk, io.BytesIO(bytes(junk.size)))
        for rel, data in files.items():
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert archive.stat().st_size < 256 << 10
    with pytest.raises(errors.DatasetTooLargeError,
                       match=r"cifar-10-binary.tar.gz: decompresses to more than"):
        read_cifar10(archive, records_per_batch=4, max_bytes=1 << 20)


def test_oversized_archive_member_names_archive_and_member(tmp_path, build):
    files = build.cifar_files(build.make_cifar_batches(4), "binary")
    archive = build.write_cifar_archive(tmp_path / "c.tar.gz", files)
    with pytest.raises(errors.DatasetTooLargeError,
                       match=r"c.tar.gz:cifar-10-batches-bin/data_batch_1.bin: archive member "
                             r"is 12,292 bytes, more than 10,000 bytes"):
        read_cifar10(archive, records_per_batch=4, max_bytes=10_000)
