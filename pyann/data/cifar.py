"""CIFAR-10 in both official formats, read from the ``.tar.gz`` archive or an extracted folder.

Binary format (``cifar-10-batches-bin/``): ``data_batch_1.bin`` .. ``data_batch_5.bin`` and
``test_batch.bin``, each 10,000 records of 3,073 bytes: one label byte (0..9), then 3,072
pixel bytes (the 32x32 R plane, then G, then B, each row-major). ``batches.meta.txt`` lists
the class names, one per line.

Python format (``cifar-10-batches-py/``): ``data_batch_1`` .. ``data_batch_5`` and
``test_batch``, Python-2 pickles of a dict with ``b'data'`` (uint8, 10000 x 3072, same pixel
order) and ``b'labels'`` (10,000 ints). They are read with :class:`RestrictedUnpickler`,
which can rebuild plain numeric numpy arrays and containers and nothing else: a pickle can
run arbitrary code, or hand numpy a forged dtype that turns file bytes into object pointers,
and a dataset file is not trusted code.

Both formats give the same arrays: images uint8 (N, 3, 32, 32), labels int64 (N,). Every file
and archive member is read through :mod:`pyann.data.reading`, bounded by
:data:`MAX_BATCH_BYTES`.
"""

from __future__ import annotations

import functools
import io
import math
import os
import pickle
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DatasetError, DatasetTooLargeError
from .reading import (CHUNK_BYTES, DECOMPRESSION_ERRORS, BoundedReader, open_decompressed,
                      read_file, read_stream)

__all__ = [
    "RECORD_BYTES", "IMAGE_BYTES", "RECORDS_PER_BATCH", "NUM_CLASSES",
    "TRAIN_BATCHES", "TEST_BATCH", "BIN_FOLDER", "PY_FOLDER", "MAX_BATCH_BYTES",
    "CifarArrays", "RestrictedUnpickler", "safe_unpickle",
    "parse_binary_batch", "parse_python_batch", "parse_meta_txt", "parse_meta_pickle",
    "read_cifar10",
]

IMAGE_BYTES = 3 * 32 * 32
RECORD_BYTES = 1 + IMAGE_BYTES
RECORDS_PER_BATCH = 10_000
NUM_CLASSES = 10
TRAIN_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
TEST_BATCH = "test_batch"
BIN_FOLDER = "cifar-10-batches-bin"
PY_FOLDER = "cifar-10-batches-py"

# The bound on every file read: a genuine batch is 30,730,000 bytes (binary) or about
# 31,035,000 (python pickle), the meta files are tiny.
MAX_BATCH_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class CifarArrays:
    """Decoded CIFAR-10: images uint8 (N, 3, 32, 32), labels int64 (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...] | None  # from the meta file, None when there is none
    format: str                       # "binary" or "python"


# --------------------------------------------------------------------------- unpickling
#
# A numpy array pickle is three calls: ``numpy.dtype(code, align, copy)`` then
# ``dtype.__setstate__(state)``, and ``_reconstruct(ndarray, (0,), b'b')`` then
# ``ndarray.__setstate__((version, shape, dtype, fortran, raw))``. Handing numpy's own
# ``__setstate__`` methods untrusted state is not safe: a dtype state can describe a
# structured dtype with an object field while its flags deny holding objects, and an array of
# that dtype then takes raw file bytes as object pointers, which any later element access
# dereferences (a segfault, or worse). So the unpickler never calls them: ``find_class`` hands
# out the two stand-ins below, which check every part of the state against what a plain
# numeric array can be, and build the array themselves from a dtype made from a validated
# type code (the pickled flags, fields and sizes are never applied).

_PLAIN_KINDS = "biuf"  # bool, signed, unsigned, float: no objects, no fields, no sub-arrays
_PLAIN_CODE = re.compile(r"b1|[iu][1248]|f[248]")  # how numpy pickles those: 'u1', 'f4', ...
_MAX_PICKLED_DIMS = 32
_BYTE_ORDERS = {"<": "<", ">": ">", "|": "|", "=": "="}


def _text(value) -> str | None:
    """``value`` as str when it is text; Python-2 pickles read with encoding='bytes' give bytes."""
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


class _PickledDtype:
    """Stand-in for ``numpy.dtype`` while unpickling: a plain numeric dtype, or an error.

    ``dtype`` is the real :class:`numpy.dtype`, made only from a checked type code and byte
    order.
    """

    __hash__ = None  # never a dict key or set member: _resolve must be able to replace it

    def __init__(self, name: str, code=None, align=False, copy=True, *rest):
        self.name = name
        text = _text(code)
        if text is None or rest or type(align) not in (bool, int) \
                or type(copy) not in (bool, int):
            raise DatasetError(f"{name}: refusing a pickled dtype built from {code!r:.100}: "
                               f"only plain numeric type codes such as 'u1' or 'i8' are allowed")
        # Checked as text first, so that numpy parses nothing but a kind and a size.
        if not _PLAIN_CODE.fullmatch(text):
            raise DatasetError(f"{name}: pickled dtype {text!r:.100} is not a plain numeric "
                               f"dtype (bool, int, uint or float without fields): refused")
        dtype = np.dtype(text)
        _check_plain_dtype(dtype, name, f"pickled dtype {text!r}")
        self.dtype = dtype
        self.built = False

    def __setstate__(self, state):
        name = self.name
        refused = DatasetError(f"{name}: refusing pickled dtype state {state!r:.200}: only the "
                               f"state of a plain numeric dtype is allowed (no sub-array, field "
                               f"names, fields or metadata)")
        if self.built or not isinstance(state, tuple):
            raise refused
        # The layouts numpy has written over the years, newest first: (version, byte order,
        # sub-array, names, fields, itemsize, alignment[, flags[, metadata]]), and the older
        # ones without version or names. Flags are never applied (they are what a forged
        # state lies with); itemsize must agree with the type code.
        if len(state) == 9 and state[0] == 4:
            _, order, subarray, names, fields, itemsize, _align, _flags, metadata = state
        elif len(state) == 8 and state[0] == 3:
            _, order, subarray, names, fields, itemsize, _align, _flags = state
            metadata = None
        elif len(state) == 7 and state[0] in (1, 2):
            _, order, subarray, names, fields, itemsize, _align = state
            metadata = None
        elif len(state) == 6 and state[0] in (0, 1):
            _, order, subarray, fields, itemsize, _align = state
            names = metadata = None
        elif len(state) == 5:
            order, subarray, fields, itemsize, _align = state
            names = metadata = None
        else:
            raise refused
        order = _BYTE_ORDERS.get(_text(order))
        if order is None or subarray is not None or names is not None or fields is not None \
                or metadata is not None or type(itemsize) is not int \
                or itemsize not in (-1, self.dtype.itemsize):
            raise refused
        if order in "<>" and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(order)
        self.built = True


class _PickledNdarray:
    """What ``find_class('numpy', 'ndarray')`` gives: a token that only :class:`_PickledArray`
    accepts, so no pickle can call the real ``numpy.ndarray``."""

    __hash__ = None

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs):
        raise DatasetError(f"{self.name}: refusing to call numpy.ndarray from a pickle (only "
                           f"_reconstruct(ndarray, ...) is allowed)")


class _PickledArray:
    """Stand-in for ``_reconstruct(ndarray, ...)`` while unpickling; ``array`` once built."""

    __hash__ = None

    def __init__(self, name: str, subtype=None, shape=None, typecode=None, *rest):
        self.name = name
        if not isinstance(subtype, _PickledNdarray) or rest:
            raise DatasetError(f"{name}: refusing to reconstruct {subtype!r:.100}: only plain "
                               f"numpy.ndarray is allowed")
        self.array = None

    def __setstate__(self, state):
        name = self.name
        if self.array is not None or not isinstance(state, tuple) or len(state) not in (4, 5):
            raise DatasetError(f"{name}: refusing pickled array state {state!r:.100}: not "
                               f"(version, shape, dtype, fortran, data)")
        if len(state) == 5:
            version, *state = state
            if version != 1:
                raise DatasetError(f"{name}: pickled array state version {version!r:.50}, "
                                   f"expected 1")
        shape, dtype, fortran, raw = state
        if not isinstance(shape, tuple) or len(shape) > _MAX_PICKLED_DIMS \
                or not all(type(d) is int and d >= 0 for d in shape):
            raise DatasetError(f"{name}: pickled array shape {shape!r:.100} is not a tuple of "
                               f"at most {_MAX_PICKLED_DIMS} non-negative ints")
        if not isinstance(dtype, _PickledDtype) or not dtype.built:
            raise DatasetError(f"{name}: pickled array dtype {dtype!r:.100} is not a checked "
                               f"plain numeric dtype")
        if type(fortran) not in (bool, int) or fortran not in (0, 1):
            raise DatasetError(f"{name}: pickled array order flag {fortran!r:.50} is not a bool")
        # Raw bytes only: a list here is the element list of an object array.
        if not isinstance(raw, bytes):
            raise DatasetError(f"{name}: pickled array data is a {type(raw).__name__}, not raw "
                               f"bytes (object arrays are not allowed)")
        count = math.prod(shape)
        needed = count * dtype.dtype.itemsize
        if len(raw) != needed:
            raise DatasetError(f"{name}: pickled array of shape {shape} and dtype "
                               f"{dtype.dtype} needs {needed} bytes of data, got {len(raw)}")
        flat = np.frombuffer(raw, dtype=dtype.dtype, count=count)
        # A copy: writable, and it does not pin the pickle's bytes.
        self.array = np.array(flat.reshape(shape, order="F" if fortran else "C"), copy=True)


def _check_plain_dtype(dtype, name: str, what: str) -> None:
    """Refuse any dtype but a plain numeric one. ``hasobject`` is not consulted: it reads
    flags that a pickled dtype state can forge."""
    if not isinstance(dtype, np.dtype) or dtype.fields is not None \
            or dtype.subdtype is not None or dtype.kind not in _PLAIN_KINDS:
        raise DatasetError(f"{name}: {what} is not a plain numeric dtype (bool, int, uint or "
                           f"float without fields): refused")


def _check_plain_array(value, name: str, what: str) -> np.ndarray:
    """``value`` if it is a plain ndarray of a plain numeric dtype; checked before any element
    of it is read."""
    if type(value) is not np.ndarray:
        raise DatasetError(f"{name}: {what} is a {type(value).__name__}, not a numpy array")
    _check_plain_dtype(value.dtype, name, f"{what} dtype {value.dtype.str!r}")
    return value


def _resolve(obj, name: str, seen: dict):
    """``obj`` with every stand-in replaced by the real array or dtype it built."""
    key = id(obj)
    if key in seen:
        return seen[key]
    if isinstance(obj, _PickledArray):
        if obj.array is None:
            raise DatasetError(f"{name}: a pickled array has no data (its state is missing)")
        seen[key] = obj.array
    elif isinstance(obj, _PickledDtype):
        seen[key] = obj.dtype
    elif isinstance(obj, list):
        seen[key] = obj
        obj[:] = [_resolve(v, name, seen) for v in obj]
    elif isinstance(obj, dict):
        seen[key] = obj
        for k, v in obj.items():
            obj[k] = _resolve(v, name, seen)
    elif isinstance(obj, tuple):
        seen[key] = tuple(_resolve(v, name, seen) for v in obj)
    elif isinstance(obj, (_PickledNdarray, functools.partial)):
        raise DatasetError(f"{name}: a bare numpy global (never called) is not dataset content")
    else:
        seen[key] = obj
    return seen[key]


def _refusing(opcode: str):
    def refuse(self):
        raise DatasetError(f"{self.name}: refusing pickle opcode {opcode} (never needed for "
                           f"numpy arrays and plain containers)")
    return refuse


# Opcodes a dataset pickle never needs: the ones that instantiate classes by other paths than
# REDUCE (INST, OBJ, NEWOBJ, NEWOBJ_EX), reach globals through the copyreg registry (EXT*) or
# persistent ids, and protocol 5's buffers. BYTEARRAY8 in particular allocates its declared
# length (up to 2**64) before reading any data.
_REFUSED_OPCODES = ("INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4", "PERSID",
                    "BINPERSID", "BYTEARRAY8", "NEXT_BUFFER", "READONLY_BUFFER")


# The pure-Python unpickler (pickle._Unpickler), not the C one: only its opcode table can be
# restricted. On a CIFAR batch it is as fast (the data is a few large strings).
class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that rebuilds plain containers and plain numeric numpy arrays, nothing else.

    ``find_class`` admits exactly the globals an ndarray's pickle names
    (``numpy.core.multiarray._reconstruct`` or its numpy-2 home
    ``numpy._core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype``), and
    returns validating stand-ins for them, never the numpy objects: a pickle cannot reach
    numpy's own ``__setstate__`` (see the comment above). Arrays come out as plain ndarrays of
    bool, int, uint or float dtype without fields. Any other global (``os.system``,
    ``builtins.eval``, ...) raises :class:`DatasetError` before it can be called.

    Opcodes that no numpy array or plain container needs are refused too (see
    ``_REFUSED_OPCODES``). :meth:`load` returns the content with the stand-ins replaced by
    the arrays they built.
    """

    dispatch = dict(pickle._Unpickler.dispatch)
    for _opcode in _REFUSED_OPCODES:
        dispatch[getattr(pickle, _opcode)[0]] = _refusing(_opcode)
    del _opcode

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _PickledArray,
        ("numpy._core.multiarray", "_reconstruct"): _PickledArray,
        ("numpy", "ndarray"): _PickledNdarray,
        ("numpy", "dtype"): _PickledDtype,
    }

    def __init__(self, file, *, name: str = "<pickle>", **kwargs):
        super().__init__(file, **kwargs)
        self.name = name
        self._ndarray = _PickledNdarray(name)

    def find_class(self, module: str, name: str):
        try:
            found = self._ALLOWED[(module, name)]
        except KeyError:
            raise DatasetError(f"{self.name}: refusing to unpickle global {module}.{name} "
                               f"(only numpy arrays are allowed in a dataset file)") from None
        if found is _PickledNdarray:
            return self._ndarray
        return functools.partial(found, self.name)

    def load(self):
        return _resolve(super().load(), self.name, {})


def safe_unpickle(data: bytes, name: str = "<pickle>"):
    """Unpickle a CIFAR python-format file with :class:`RestrictedUnpickler`.

    ``encoding='bytes'`` because the files were written by Python 2: their str keys come back
    as bytes (``b'data'``). Any failure raises :class:`DatasetError` naming ``name``.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), name=name, encoding="bytes").load()
    except DatasetError:
        raise
    except Exception as exc:  # a malformed pickle can fail in many ways
        raise DatasetError(f"{name}: not a valid CIFAR-10 pickle "
                           f"({type(exc).__name__}: {exc})") from exc


# --------------------------------------------------------------------------- batches

def _check_labels(labels: np.ndarray, name: str) -> np.ndarray:
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if bad.size:
        raise DatasetError(f"{name}: label out of range 0..{NUM_CLASSES - 1}: record {bad[0]} "
                           f"has label {labels[bad[0]]} ({bad.size} bad labels in all)")
    return labels.astype(np.int64)


def _check_count(count: int, name: str, records_per_batch: int | None) -> None:
    if count == 0:
        raise DatasetError(f"{name}: holds 0 records: an empty batch")
    if records_per_batch is not None and count != records_per_batch:
        raise DatasetError(f"{name}: expected {records_per_batch} records, got {count}")


def parse_binary_batch(data: bytes, name: str = "<batch>", *,
                       records_per_batch: int | None = RECORDS_PER_BATCH):
    """Decode one binary batch: returns images uint8 (N, 3, 32, 32) and labels int64 (N,).

    Raises :class:`DatasetError` naming ``name`` when the size is not a multiple of the
    3,073-byte record, there are no records, the record count is not ``records_per_batch``
    (``None``: any count), or a label is outside 0..9.
    """
    if len(data) % RECORD_BYTES:
        raise DatasetError(f"{name}: size {len(data)} bytes is not a multiple of the "
                           f"{RECORD_BYTES}-byte record (1 label byte + {IMAGE_BYTES} pixels)")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    _check_count(len(records), name, records_per_batch)
    labels = _check_labels(records[:, 0], name)
    # The reshape is a read-only view into `data`; copy so the result is writable, contiguous
    # and does not keep `data` alive.
    images = records[:, 1:].reshape(-1, 3, 32, 32).copy()
    return images, labels


def _python_labels(labels, name: str) -> np.ndarray:
    """The b'labels' entry as int64, refusing anything but integer class indices.

    A list must hold Python ints; bools are refused although they are ints to Python (a
    True/False label is a sign of the wrong file, not a class index), and so are floats,
    which numpy would silently truncate. An array must be a plain 1-D integer array.
    """
    if isinstance(labels, np.ndarray):
        _check_plain_array(labels, name, "b'labels'")
        if labels.dtype.kind not in "iu" or labels.ndim != 1:
            raise DatasetError(f"{name}: b'labels' must be a list of ints or a 1-D integer "
                               f"array, got a {labels.dtype} array of shape {labels.shape}")
        return _check_labels(labels, name)
    if not isinstance(labels, (list, tuple)):
        raise DatasetError(f"{name}: b'labels' must be a list of ints, got "
                           f"{type(labels).__name__}")
    for i, value in enumerate(labels):
        if type(value) is not int:
            kind = "float (labels are not truncated)" if isinstance(value, float) \
                else type(value).__name__
            raise DatasetError(f"{name}: b'labels' must hold ints 0..{NUM_CLASSES - 1}: record "
                               f"{i} has label {value!r:.50}, a {kind}")
    # Range-checked in Python: a huge int (2**70) must be reported, not overflow int64.
    bad = [i for i, value in enumerate(labels) if not 0 <= value < NUM_CLASSES]
    if bad:
        raise DatasetError(f"{name}: label out of range 0..{NUM_CLASSES - 1}: record {bad[0]} "
                           f"has label {labels[bad[0]]} ({len(bad)} bad labels in all)")
    return np.array(labels, dtype=np.int64).reshape(-1)


def parse_python_batch(data: bytes, name: str = "<batch>", *,
                       records_per_batch: int | None = RECORDS_PER_BATCH):
    """Decode one python-format batch (a pickle); same result and checks as the binary one.

    ``b'labels'`` must be a list of ints (not bools, not floats) or a 1-D integer array.
    """
    batch = safe_unpickle(data, name)
    if not isinstance(batch, dict):
        raise DatasetError(f"{name}: expected a pickled dict, got {type(batch).__name__}")
    # Python-2 pickles give bytes keys; accept str keys too (files re-pickled by Python 3).
    pixels = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if pixels is None or labels is None:
        raise DatasetError(f"{name}: the pickled dict has no b'data' and b'labels' entries "
                           f"(keys: {sorted(map(repr, batch))})")
    _check_plain_array(pixels, name, "b'data'")
    if pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.shape[1] != IMAGE_BYTES:
        raise DatasetError(f"{name}: b'data' must be a uint8 array of shape (N, {IMAGE_BYTES}), "
                           f"got {pixels.dtype} array of shape {pixels.shape}")
    labels = _python_labels(labels, name)
    if labels.shape != (len(pixels),):
        raise DatasetError(f"{name}: {len(pixels)} images but labels of shape {labels.shape}")
    _check_count(len(pixels), name, records_per_batch)
    images = np.array(pixels.reshape(-1, 3, 32, 32), copy=True)
    return images, labels


def _check_classes(names: list[str], name: str) -> tuple[str, ...]:
    if len(names) != NUM_CLASSES or not all(names):
        raise DatasetError(f"{name}: expected {NUM_CLASSES} class names, got {names!r}")
    return tuple(names)


def parse_meta_txt(data: bytes, name: str = "batches.meta.txt") -> tuple[str, ...]:
    """The class names of ``batches.meta.txt``: one per line, blank lines ignored."""
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{name}: not UTF-8 text ({exc})") from exc
    return _check_classes([ln.strip() for ln in lines if ln.strip()], name)


def parse_meta_pickle(data: bytes, name: str = "batches.meta") -> tuple[str, ...]:
    """The class names of the python-format ``batches.meta`` (its ``b'label_names'``)."""
    meta = safe_unpickle(data, name)
    names = meta.get(b"label_names", meta.get("label_names")) if isinstance(meta, dict) else None
    if not isinstance(names, (list, tuple)):
        raise DatasetError(f"{name}: no b'label_names' list in the pickled dict")
    if not all(isinstance(n, (bytes, str)) for n in names):
        raise DatasetError(f"{name}: b'label_names' must hold strings, got "
                           f"{[type(n).__name__ for n in names]}")
    decoded = [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]
    return _check_classes(decoded, name)


# --------------------------------------------------------------------------- archives, folders

_LAYOUTS = {
    # format: (folder, batch file name, meta file name)
    "binary": (BIN_FOLDER, "{}.bin", "batches.meta.txt"),
    "python": (PY_FOLDER, "{}", "batches.meta"),
}


def _layout_paths(fmt: str) -> tuple[list[str], str]:
    folder, pattern, meta = _LAYOUTS[fmt]
    batches = [f"{folder}/{pattern.format(b)}" for b in (*TRAIN_BATCHES, TEST_BATCH)]
    return batches, f"{folder}/{meta}"


def _read_archive(path: Path, wanted: set[str], max_bytes: int) -> dict[str, bytes]:
    """The ``wanted`` members of a tar archive (gzip, bz2, xz or none), in one sequential pass.

    Nothing is extracted to disk. Each wanted member is read through the ``max_bytes`` bound,
    and the decompressed archive as a whole through a bound of one ``max_bytes`` per wanted
    member plus one for everything else, so a compression bomb among the members that are
    skipped is stopped too. A corrupt or truncated archive raises :class:`DatasetError`.
    """
    found: dict[str, bytes] = {}
    archive_limit = (len(wanted) + 1) * max_bytes
    try:
        with open(path, "rb") as raw, open_decompressed(raw) as stream:
            bounded = BoundedReader(stream, archive_limit, str(path), "decompresses to")
            # "r|": a stream, read once front to back; the bounded reader sees every byte.
            with tarfile.open(fileobj=bounded, mode="r|", bufsize=CHUNK_BYTES) as tar:
                for member in tar:
                    name = member.name.removeprefix("./")
                    if name not in wanted:
                        continue
                    label = f"{path}:{name}"
                    if not member.isfile():
                        raise DatasetError(f"{path}: archive member {name} is not a regular "
                                           f"file")
                    if member.size > max_bytes:
                        raise DatasetTooLargeError(
                            f"{label}: archive member is {member.size:,} bytes, more than "
                            f"{max_bytes:,} bytes, far larger than a CIFAR-10 batch",
                            path=label, limit=max_bytes)
                    found[name] = read_stream(tar.extractfile(member), max_bytes, label)
    except DatasetError:
        raise
    except (tarfile.TarError, *DECOMPRESSION_ERRORS) as exc:
        raise DatasetError(f"{path}: corrupt or truncated archive ({type(exc).__name__}: "
                           f"{exc})") from exc
    return found


def _find_folder_base(path: Path) -> Path:
    """The folder that holds ``cifar-10-batches-bin/`` or ``-py/`` (``path`` may be either)."""
    if path.name in (BIN_FOLDER, PY_FOLDER):
        return path.parent
    return path


def _read_folder(base: Path, wanted: set[str], max_bytes: int) -> dict[str, bytes]:
    return {rel: read_file(base / rel, max_bytes)
            for rel in wanted if (base / rel).is_file()}


def _decode(files: dict[str, bytes], source: str, records_per_batch: int | None) -> CifarArrays:
    """Pick the first complete layout among ``files`` and decode it."""
    missing_by_format = {}
    for fmt, parse in (("binary", parse_binary_batch), ("python", parse_python_batch)):
        batches, meta = _layout_paths(fmt)
        missing = [b for b in batches if b not in files]
        if missing:
            missing_by_format[fmt] = missing
            continue
        decoded = [parse(files[b], f"{source}:{b}", records_per_batch=records_per_batch)
                   for b in batches]
        x_train = np.concatenate([x for x, _ in decoded[:-1]])
        y_train = np.concatenate([y for _, y in decoded[:-1]])
        x_test, y_test = decoded[-1]
        classes = None
        if meta in files:
            parse_meta = parse_meta_txt if fmt == "binary" else parse_meta_pickle
            classes = parse_meta(files[meta], f"{source}:{meta}")
        return CifarArrays(x_train, y_train, x_test, y_test, classes, fmt)
    detail = "; ".join(f"{fmt} format missing {', '.join(m)}" for fmt, m in missing_by_format.items())
    raise DatasetError(f"{source}: no complete CIFAR-10 batch set ({detail})")


def read_cifar10(path: str | os.PathLike, *,
                 records_per_batch: int | None = RECORDS_PER_BATCH,
                 max_bytes: int | None = None) -> CifarArrays:
    """Read CIFAR-10 from an archive or a folder, in the binary or the python format.

    ``path`` is a ``.tar.gz`` archive (read in memory, nothing extracted), an extracted
    ``cifar-10-batches-bin/`` or ``cifar-10-batches-py/`` folder, or a folder containing one.
    The binary format is used when both are present. Every batch is validated (record size,
    ``records_per_batch`` records each, labels 0..9); errors name the file. No file or
    archive member larger than ``max_bytes`` (default :data:`MAX_BATCH_BYTES`) is read:
    :class:`DatasetTooLargeError`.

    Returns :class:`CifarArrays`: x_train uint8 (50000, 3, 32, 32), y_train int64 (50000,),
    x_test uint8 (10000, 3, 32, 32), y_test int64 (10000,) for the genuine dataset.
    """
    path = Path(path)
    limit = MAX_BATCH_BYTES if max_bytes is None else max_bytes
    wanted = set()
    for fmt in _LAYOUTS:
        batches, meta = _layout_paths(fmt)
        wanted.update(batches, [meta])
    if path.is_file():
        files = _read_archive(path, wanted, limit)
    elif path.is_dir():
        base = _find_folder_base(path)
        # Read only one layout from a folder: the binary one if it is complete.
        bin_batches, bin_meta = _layout_paths("binary")
        if all((base / b).is_file() for b in bin_batches):
            wanted = set(bin_batches) | {bin_meta}
        files = _read_folder(base, wanted, limit)
    else:
        raise DatasetError(f"{path}: no such file or folder")
    return _decode(files, str(path), records_per_batch)
