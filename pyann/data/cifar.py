"""CIFAR-10 in both official formats, read from the ``.tar.gz`` archive or an extracted folder.

Binary format (``cifar-10-batches-bin/``): ``data_batch_1.bin`` .. ``data_batch_5.bin`` and
``test_batch.bin``, each 10,000 records of 3,073 bytes: one label byte (0..9), then 3,072
pixel bytes (the 32x32 R plane, then G, then B, each row-major). ``batches.meta.txt`` lists
the class names, one per line.

Python format (``cifar-10-batches-py/``): ``data_batch_1`` .. ``data_batch_5`` and
``test_batch``, Python-2 pickles of a dict with ``b'data'`` (uint8, 10000 x 3072, same pixel
order) and ``b'labels'`` (10,000 ints). They are read with :class:`RestrictedUnpickler`,
which can rebuild numpy arrays and nothing else: a pickle can run arbitrary code, and a
dataset file is not trusted code.

Both formats give the same arrays: images uint8 (N, 3, 32, 32), labels int64 (N,).
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DatasetError

__all__ = [
    "RECORD_BYTES", "IMAGE_BYTES", "RECORDS_PER_BATCH", "NUM_CLASSES",
    "TRAIN_BATCHES", "TEST_BATCH", "BIN_FOLDER", "PY_FOLDER",
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

# A genuine batch is about 31 MB; refuse to read an archive member far bigger than that.
_MAX_MEMBER_BYTES = 256 * 1024 * 1024


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

def _numpy_reconstruct():
    """numpy's array-unpickling helper, wherever this numpy version keeps it."""
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds plain containers and numpy arrays, and nothing else.

    ``find_class`` admits exactly the globals an ndarray's pickle names
    (``numpy.core.multiarray._reconstruct`` or its numpy-2 home
    ``numpy._core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype``) and returns
    them without importing anything by name. Any other global (``os.system``,
    ``builtins.eval``, ...) raises :class:`DatasetError` before it can be called.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def __init__(self, file, *, name: str = "<pickle>", **kwargs):
        super().__init__(file, **kwargs)
        self.name = name

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise DatasetError(f"{self.name}: refusing to unpickle global {module}.{name} "
                               f"(only numpy arrays are allowed in a dataset file)") from None


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
    if records_per_batch is not None and count != records_per_batch:
        raise DatasetError(f"{name}: expected {records_per_batch} records, got {count}")


def parse_binary_batch(data: bytes, name: str = "<batch>", *,
                       records_per_batch: int | None = RECORDS_PER_BATCH):
    """Decode one binary batch: returns images uint8 (N, 3, 32, 32) and labels int64 (N,).

    Raises :class:`DatasetError` naming ``name`` when the size is not a multiple of the
    3,073-byte record, the record count is not ``records_per_batch`` (``None``: any count),
    or a label is outside 0..9.
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


def parse_python_batch(data: bytes, name: str = "<batch>", *,
                       records_per_batch: int | None = RECORDS_PER_BATCH):
    """Decode one python-format batch (a pickle); same result and checks as the binary one."""
    batch = safe_unpickle(data, name)
    if not isinstance(batch, dict):
        raise DatasetError(f"{name}: expected a pickled dict, got {type(batch).__name__}")
    # Python-2 pickles give bytes keys; accept str keys too (files re-pickled by Python 3).
    pixels = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if pixels is None or labels is None:
        raise DatasetError(f"{name}: the pickled dict has no b'data' and b'labels' entries "
                           f"(keys: {sorted(map(repr, batch))})")
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2 \
            or pixels.shape[1] != IMAGE_BYTES:
        desc = (f"{pixels.dtype} array of shape {pixels.shape}" if isinstance(pixels, np.ndarray)
                else type(pixels).__name__)
        raise DatasetError(f"{name}: b'data' must be a uint8 array of shape (N, {IMAGE_BYTES}), "
                           f"got {desc}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{name}: b'labels' is not a list of integers ({exc})") from exc
    if labels.shape != (len(pixels),):
        raise DatasetError(f"{name}: {len(pixels)} images but labels of shape {labels.shape}")
    _check_count(len(pixels), name, records_per_batch)
    images = np.array(pixels.reshape(-1, 3, 32, 32), copy=True)
    return images, _check_labels(labels, name)


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
    decoded = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]
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


def _read_archive(path: Path, wanted: set[str]) -> dict[str, bytes]:
    """The ``wanted`` members of a tar archive (any compression), in one sequential pass.

    Nothing is extracted to disk. A corrupt or truncated archive raises :class:`DatasetError`.
    """
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:  # sequential: a gzip stream cannot seek backwards cheaply
                name = member.name.removeprefix("./")
                if name not in wanted:
                    continue
                if not member.isfile():
                    raise DatasetError(f"{path}: archive member {name} is not a regular file")
                if member.size > _MAX_MEMBER_BYTES:
                    raise DatasetError(f"{path}: archive member {name} is {member.size} bytes, "
                                       f"far larger than a CIFAR-10 batch")
                found[name] = tar.extractfile(member).read()
    except DatasetError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: corrupt or truncated archive ({type(exc).__name__}: "
                           f"{exc})") from exc
    return found


def _find_folder_base(path: Path) -> Path:
    """The folder that holds ``cifar-10-batches-bin/`` or ``-py/`` (``path`` may be either)."""
    if path.name in (BIN_FOLDER, PY_FOLDER):
        return path.parent
    return path


def _read_folder(base: Path, wanted: set[str]) -> dict[str, bytes]:
    return {rel: (base / rel).read_bytes() for rel in wanted if (base / rel).is_file()}


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
                 records_per_batch: int | None = RECORDS_PER_BATCH) -> CifarArrays:
    """Read CIFAR-10 from an archive or a folder, in the binary or the python format.

    ``path`` is a ``.tar.gz`` archive (read in memory, nothing extracted), an extracted
    ``cifar-10-batches-bin/`` or ``cifar-10-batches-py/`` folder, or a folder containing one.
    The binary format is used when both are present. Every batch is validated (record size,
    ``records_per_batch`` records each, labels 0..9); errors name the file.

    Returns :class:`CifarArrays`: x_train uint8 (50000, 3, 32, 32), y_train int64 (50000,),
    x_test uint8 (10000, 3, 32, 32), y_test int64 (10000,) for the genuine dataset.
    """
    path = Path(path)
    wanted = set()
    for fmt in _LAYOUTS:
        batches, meta = _layout_paths(fmt)
        wanted.update(batches, [meta])
    if path.is_file():
        files = _read_archive(path, wanted)
    elif path.is_dir():
        base = _find_folder_base(path)
        # Read only one layout from a folder: the binary one if it is complete.
        bin_batches, bin_meta = _layout_paths("binary")
        if all((base / b).is_file() for b in bin_batches):
            wanted = set(bin_batches) | {bin_meta}
        files = _read_folder(base, wanted)
    else:
        raise DatasetError(f"{path}: no such file or folder")
    return _decode(files, str(path), records_per_batch)
