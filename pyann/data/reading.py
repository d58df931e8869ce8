"""Bounded reads: every byte :mod:`pyann.data` takes from a dataset file comes through here.

A dataset file is untrusted input. A few kilobytes of gzip can expand to gigabytes, and a
folder can hold a file of any size, so each read has a bound (in bytes) chosen by the format
reader from what that format can legitimately hold, and fails with
:class:`DatasetTooLargeError` as soon as the bound is passed: the excess is never held in
memory, and a compressed stream is decompressed in chunks of at most :data:`CHUNK_BYTES`.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import zlib
from pathlib import Path

from .errors import DatasetError, DatasetTooLargeError

__all__ = ["CHUNK_BYTES", "BoundedReader", "read_stream", "read_file", "open_decompressed",
           "DECOMPRESSION_ERRORS"]

CHUNK_BYTES = 1 << 20

_GZIP_MAGIC = b"\x1f\x8b"
_BZ2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"

# What a corrupt or truncated compressed stream raises (BadGzipFile is an OSError; lzma's
# error is not).
DECOMPRESSION_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)


def _too_large(name: str, limit: int, what: str) -> DatasetTooLargeError:
    return DatasetTooLargeError(f"{name}: {what} more than {limit:,} bytes, the bound for this "
                                f"file (no genuine file of this format is that large; a "
                                f"compression bomb or the wrong file?)", path=name, limit=limit)


class BoundedReader:
    """A file-like ``read`` that raises :class:`DatasetTooLargeError` past ``limit`` bytes.

    It never asks the underlying stream for more than one byte beyond the bound, so a
    decompressing stream does at most that much work before the error.
    """

    def __init__(self, stream, limit: int, name: str, what: str = "holds"):
        self.stream, self.limit, self.name, self.what = stream, int(limit), name, what
        self.count = 0

    def read(self, n: int | None = -1) -> bytes:
        room = self.limit + 1 - self.count
        n = room if n is None or n < 0 else min(n, room)
        data = self.stream.read(n)
        self.count += len(data)
        if self.count > self.limit:
            raise _too_large(self.name, self.limit, self.what)
        return data


def read_stream(stream, limit: int, name: str, what: str = "holds") -> bytes:
    """All of ``stream``, read in chunks; :class:`DatasetTooLargeError` past ``limit`` bytes."""
    reader = BoundedReader(stream, limit, name, what)
    chunks = []
    while chunk := reader.read(CHUNK_BYTES):
        chunks.append(chunk)
    return b"".join(chunks)


def open_decompressed(f, *, formats=("gzip", "bz2", "xz")):
    """``f`` (a binary file at offset 0) wrapped in the decompressor its magic bytes name.

    Only the ``formats`` listed are recognised; any other content is returned as ``f`` itself.
    The content decides, not the file name, so a gunzipped file that kept its ``.gz`` name
    still reads.
    """
    head = f.read(6)
    f.seek(0)
    if "gzip" in formats and head.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=f, mode="rb")
    if "bz2" in formats and head.startswith(_BZ2_MAGIC):
        return bz2.BZ2File(f, mode="rb")
    if "xz" in formats and head.startswith(_XZ_MAGIC):
        return lzma.LZMAFile(f, mode="rb")
    return f


def read_file(path: str | os.PathLike, limit: int, *, gunzip: bool = False,
              name: str | None = None) -> bytes:
    """The bytes of ``path`` (gunzipped when ``gunzip`` and it is a gzip stream), at most ``limit``.

    A plain file larger than ``limit`` is refused from its size alone, before reading. A gzip
    stream is decompressed in chunks and refused as soon as its content passes ``limit``.
    Raises :class:`DatasetTooLargeError`, or :class:`DatasetError` for a corrupt or truncated
    gzip stream; both name the file (``name`` overrides the path in messages).
    """
    path = Path(path)
    label = name or str(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        stream = open_decompressed(f, formats=("gzip",) if gunzip else ())
        if stream is f:
            if size > limit:
                raise _too_large(label, limit, f"is {size:,} bytes,")
            return read_stream(f, limit, label)
        try:
            with stream:
                return read_stream(stream, limit, label, "gunzips to")
        except DECOMPRESSION_ERRORS as exc:
            raise DatasetError(f"{label}: corrupt or truncated gzip stream ({exc})") from exc
