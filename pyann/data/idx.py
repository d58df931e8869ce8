"""The IDX file format (MNIST, Fashion-MNIST), gzipped or raw.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the data in row-major (C) order, big-endian. MNIST images have magic
2051 (``0x00000803``: uint8, 3 dims) and labels magic 2049 (``0x00000801``: uint8, 1 dim).
"""

from __future__ import annotations

import math
import os

import numpy as np

from .errors import DatasetError
from .reading import read_file

__all__ = [
    "IDX_DTYPES", "MAGIC_IMAGES", "MAGIC_LABELS", "MAX_IDX_BYTES", "MAX_IDX_DIMS",
    "read_file_bytes", "parse_idx", "read_idx", "read_idx_images", "read_idx_labels",
]

# The IDX type byte -> numpy dtype (big-endian where it matters).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
MAGIC_IMAGES = 0x00000803  # 2051: uint8, 3 dims (N, rows, cols)
MAGIC_LABELS = 0x00000801  # 2049: uint8, 1 dim (N,)

# The largest IDX file pyann reads is MNIST's train images, 47,040,016 bytes gunzipped; the
# bound leaves room for other IDX data while stopping a gzip bomb long before memory runs out.
MAX_IDX_BYTES = 128 * 1024 * 1024
# numpy (1.x) arrays have at most 32 dimensions; the IDX header byte allows 255.
MAX_IDX_DIMS = 32


def read_file_bytes(path: str | os.PathLike, *, max_bytes: int | None = None) -> bytes:
    """The contents of ``path``, gunzipped when it is a gzip stream, at most ``max_bytes``.

    Gzip is recognised by its magic bytes, not the file name, so a gunzipped file that kept
    its ``.gz`` name still reads. ``max_bytes`` (default :data:`MAX_IDX_BYTES`) bounds the
    gunzipped content: past it, :class:`DatasetTooLargeError`. A corrupt or truncated gzip
    stream raises :class:`DatasetError` naming the file.
    """
    limit = MAX_IDX_BYTES if max_bytes is None else max_bytes
    return read_file(path, limit, gunzip=True)


def _describe_magic(magic: int) -> str:
    code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    dtype = IDX_DTYPES.get(code)
    kind = dtype.name if dtype is not None else f"unknown type 0x{code:02x}"
    return f"0x{magic:08x} ({magic}: {kind}, {ndim} dims)"


def parse_idx(data: bytes, name: str = "<bytes>", *, expect_magic: int | None = None) -> np.ndarray:
    """Decode an IDX byte string into a writable, native-endian array of its declared shape.

    ``expect_magic`` (e.g. :data:`MAGIC_IMAGES`) pins the type and number of dimensions.
    Raises :class:`DatasetError` naming ``name`` for a bad magic number, an unknown type byte,
    a number of dimensions outside 1..:data:`MAX_IDX_DIMS`, a short header, or a payload
    whose size is not exactly the product of the dimensions (truncated file or trailing
    bytes).
    """
    if len(data) < 4:
        raise DatasetError(f"{name}: too short for an IDX header: expected at least 4 bytes, "
                           f"got {len(data)}")
    magic = int.from_bytes(data[:4], "big")
    if expect_magic is not None and magic != expect_magic:
        raise DatasetError(f"{name}: bad IDX magic number {_describe_magic(magic)}, "
                           f"expected {_describe_magic(expect_magic)}")
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise DatasetError(f"{name}: not an IDX file: bad magic number {_describe_magic(magic)}")
    dtype, ndim = IDX_DTYPES[data[2]], data[3]
    if not 1 <= ndim <= MAX_IDX_DIMS:
        raise DatasetError(f"{name}: IDX header declares {ndim} dimensions; an IDX array needs "
                           f"1 to {MAX_IDX_DIMS}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{name}: truncated IDX header: expected {header} bytes for "
                           f"{ndim} dimensions, got {len(data)}")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(shape) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else f"{actual - expected} trailing bytes"
        raise DatasetError(f"{name}: {what}: shape {shape} of {dtype.name} needs {expected} "
                           f"bytes after the {header}-byte header, got {actual}")
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header)
    # astype copies: the result is writable, native-endian and does not pin `data`.
    return array.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def read_idx(path: str | os.PathLike, *, expect_magic: int | None = None,
             max_bytes: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or raw, at most ``max_bytes`` of IDX data); see :func:`parse_idx`."""
    return parse_idx(read_file_bytes(path, max_bytes=max_bytes), str(path),
                     expect_magic=expect_magic)


def _refuse_empty(array: np.ndarray, path, what: str) -> np.ndarray:
    # A split with no records (or images of no pixels) decodes cleanly, but nothing can be
    # trained or measured on it: it is a truncated or mistaken file, so say so here rather
    # than let a division by zero or an empty batch loop say it later.
    if array.shape[0] == 0:
        raise DatasetError(f"{path}: holds 0 {what} (shape {array.shape}): an empty split")
    if 0 in array.shape:
        raise DatasetError(f"{path}: {what} of shape {array.shape[1:]} hold no pixels")
    return array


def read_idx_images(path: str | os.PathLike, *, max_bytes: int | None = None) -> np.ndarray:
    """Read an IDX image file (magic 2051): uint8 array of shape (N, rows, cols), none of them 0."""
    images = read_idx(path, expect_magic=MAGIC_IMAGES, max_bytes=max_bytes)
    return _refuse_empty(images, path, "images")


def read_idx_labels(path: str | os.PathLike, *, max_bytes: int | None = None) -> np.ndarray:
    """Read an IDX label file (magic 2049): uint8 array of shape (N,), N > 0."""
    return _refuse_empty(read_idx(path, expect_magic=MAGIC_LABELS, max_bytes=max_bytes), path,
                         "labels")
