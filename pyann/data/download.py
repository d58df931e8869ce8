"""Downloading dataset files: atomic, md5-verified, mirror after mirror.

The network is reached only through an *opener*: a callable ``opener(url, timeout=...)`` that
returns a context manager with ``read(n)`` (``urllib.request.urlopen`` by default). Tests
pass a fake opener serving local bytes, so no test ever touches the network.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import DatasetError

__all__ = ["DownloadError", "Opener", "default_opener", "download_file"]

Opener = Callable[..., Any]

_CHUNK = 1 << 16
_USER_AGENT = "pyann-data (+https://github.com/; dataset fetcher)"


class DownloadError(DatasetError):
    """Every mirror failed for a file; the message lists each URL and why it failed."""


def default_opener(url: str, timeout: float = 60.0):
    """``urllib.request.urlopen`` with a User-Agent (some mirrors reject the default one)."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    return urllib.request.urlopen(request, timeout=timeout)


def _progress_bar(total: int | None, desc: str, progress: bool | None):
    """A tqdm bar when asked for (or, by default, when stderr is a TTY); otherwise None."""
    if progress is False or (progress is None and not sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional
        return None
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                leave=False, file=sys.stderr)


def _content_length(response) -> int | None:
    headers = getattr(response, "headers", None)
    try:
        return int(headers.get("Content-Length")) if headers is not None else None
    except (TypeError, ValueError):
        return None


def _fetch_to_temp(url: str, folder: Path, name: str, opener: Opener, timeout: float,
                   progress: bool | None) -> tuple[Path, str]:
    """Stream ``url`` into a temporary file in ``folder``; return (temp path, md5)."""
    digest = hashlib.md5()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    tmp_path = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as out, opener(url, timeout=timeout) as response:
            bar = _progress_bar(_content_length(response), name, progress)
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return tmp_path, digest.hexdigest()


def download_file(urls: Iterable[str], dest: str | os.PathLike, md5: str | None, *,
                  opener: Opener | None = None, timeout: float = 60.0,
                  progress: bool | None = None) -> Path:
    """Download ``dest`` from the first mirror in ``urls`` that serves the right bytes.

    The file is written to a temporary file next to ``dest``, its md5 is checked against
    ``md5`` (skipped when ``None``), and only then is it renamed into place, so ``dest``
    either does not exist or is complete and verified. Each failing mirror (network error or
    wrong md5) leaves nothing behind and the next one is tried.

    Raises :class:`DownloadError` listing every URL tried and its error.
    """
    opener = opener or default_opener
    dest = Path(dest)
    folder = dest.parent
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        try:
            tmp, actual = _fetch_to_temp(url, folder, dest.name, opener, timeout, progress)
        except Exception as exc:  # network errors come in many types (URLError, OSError, ...)
            failures.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        if md5 is not None and actual != md5:
            tmp.unlink(missing_ok=True)
            failures.append(f"{url}: md5 mismatch: expected {md5}, got {actual}")
            continue
        os.replace(tmp, dest)  # atomic on POSIX: readers never see a partial file
        return dest
    if created:
        _remove_empty_dirs(folder)
    tried = "\n".join(f"    {f}" for f in failures) or "    (no URL to try)"
    raise DownloadError(f"could not download {dest.name} into {folder}:\n{tried}")


def _remove_empty_dirs(folder: Path) -> None:
    """Remove ``folder`` if a failed download left it empty (we created it)."""
    try:
        folder.rmdir()
    except OSError:
        pass
