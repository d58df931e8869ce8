"""md5 checksums of dataset files.

md5 is what the publishers of MNIST, Fashion-MNIST and CIFAR-10 give, so md5 is what we check;
it guards against corruption and mix-ups, not against an attacker.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import ChecksumError

__all__ = ["md5_file", "file_md5", "verify_md5", "clear_md5_cache"]

_CHUNK = 1 << 20

# Digests already computed in this process, keyed by (resolved path, size, mtime in ns): a
# file that is rewritten gets a new key, so a stale digest is never reused. Memory only.
_MD5_CACHE: dict[tuple[str, int, int], str] = {}


def md5_file(path: str | os.PathLike, chunk_size: int = _CHUNK) -> str:
    """Hex md5 of a file, read in chunks (a 170 MB archive takes about 0.3 s)."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def file_md5(path: str | os.PathLike) -> str:
    """Like :func:`md5_file`, memoised in memory on (path, size, mtime)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _MD5_CACHE:
        _MD5_CACHE[key] = md5_file(p)
    return _MD5_CACHE[key]


def clear_md5_cache() -> None:
    """Forget every memoised digest."""
    _MD5_CACHE.clear()


def verify_md5(path: str | os.PathLike, expected: str) -> str:
    """Return the file's md5 if it equals ``expected``; raise :class:`ChecksumError` otherwise.

    The message names the file, the expected and the actual digest.
    """
    actual = file_md5(path)
    if actual != expected.lower():
        raise ChecksumError(
            f"{path}: md5 mismatch: expected {expected}, got {actual}",
            path=Path(path), expected=expected, actual=actual,
        )
    return actual
