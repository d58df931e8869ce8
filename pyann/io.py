"""Atomic file writes and a pickle-free array container: the only way pyann writes results,
models and checkpoints, so an interrupted run never leaves a half-written file behind."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Dict

import numpy as np


def atomic_write(path, write: Callable) -> Path:
    """Call write(file_object) on a temporary file beside `path`, then rename it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path, obj) -> Path:
    data = (json.dumps(obj, indent=2, default=_json_default) + "\n").encode()
    return atomic_write(path, lambda f: f.write(data))


def write_text(path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


META_KEY = "__meta__"


def save_arrays(path, arrays: Dict[str, np.ndarray], meta: dict) -> Path:
    """Write named arrays plus a JSON `meta` dict to an .npz, atomically. No object arrays."""
    if META_KEY in arrays:
        raise ValueError(f"array name {META_KEY!r} is reserved")
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in payload.items():
        if v.dtype == object:
            raise ValueError(f"array {k!r} has dtype object, which cannot be saved without pickle")
    payload[META_KEY] = np.array(json.dumps(meta, default=_json_default))
    return atomic_write(path, lambda f: np.savez(f, **payload))


def load_arrays(path):
    """Read an .npz written by save_arrays -> (arrays dict, meta dict). Never unpickles."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as exc:  # raised by allow_pickle=False on object arrays
        raise ValueError(f"{path}: refusing to load: {exc}") from None
    except Exception as exc:  # zipfile.BadZipFile, EOFError, OSError on truncated/corrupt files
        raise ValueError(f"{path} is not a readable pyann .npz file ({type(exc).__name__}: {exc})") from None
    if META_KEY not in arrays:
        raise ValueError(f"{path} has no {META_KEY} entry: not a file written by pyann")
    meta = json.loads(str(arrays.pop(META_KEY)))
    return arrays, meta
