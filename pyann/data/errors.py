"""Exceptions raised by :mod:`pyann.data`.

Hierarchy::

    ValueError
      └── DatasetError                 a dataset file is malformed, or cannot be used
            ├── ChecksumError          a file's md5 is not the official one
            ├── DatasetTooLargeError   a file (or its gunzipped content) exceeds the read bound
            └── DatasetNotFoundError   no location holds the dataset (also a FileNotFoundError)

``DatasetError`` subclasses ``ValueError`` because almost every failure is bad *content*
(a wrong magic number, a truncated payload, a label out of range). ``DatasetNotFoundError``
is in addition a ``FileNotFoundError`` (hence an ``OSError``), so code that already handles
missing files with ``except OSError`` keeps working. Every message names the file or the
folder concerned.
"""

from __future__ import annotations

__all__ = ["DatasetError", "ChecksumError", "DatasetTooLargeError", "DatasetNotFoundError",
           "UnofficialDataWarning"]


class DatasetError(ValueError):
    """A dataset file is malformed or cannot be used; the message names the file."""


class ChecksumError(DatasetError):
    """A file's md5 differs from the official one (or no official md5 is known for it).

    Attributes ``path``, ``expected`` and ``actual`` hold the file and the two digests
    (``expected`` is ``None`` when no official checksum exists for that file).
    """

    def __init__(self, message: str, *, path=None, expected=None, actual=None):
        super().__init__(message)
        self.path = path
        self.expected = expected
        self.actual = actual


class DatasetTooLargeError(DatasetError):
    """A dataset file, an archive member or a decompressed stream is larger than its bound.

    Attributes ``path`` (the file, or ``archive:member``) and ``limit`` (the bound in bytes).
    """

    def __init__(self, message: str, *, path=None, limit=None):
        super().__init__(message)
        self.path = path
        self.limit = limit


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """No location holds the dataset; the message lists every location tried and the fixes."""

    def __init__(self, message: str, *, tried=()):
        # Bypass OSError's (errno, strerror) argument handling: one plain message.
        DatasetError.__init__(self, message)
        self.tried = tuple(tried)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnofficialDataWarning(UserWarning):
    """Issued when a dataset is loaded from files whose checksums are not the official ones."""
