"""Atomic file writes, strict JSON and a pickle-free array container: the only way pyann writes
results, models and checkpoints, so an interrupted run never leaves a half-written file behind.

- atomic_write(path, writer): a temporary beside `path`, fsynced, then renamed onto it. The
  temporary's name holds the host and pid of its writer, so a later write to the same path
  removes temporaries whose writer was killed (remove_stale_temporaries).
- write_together({path: content}): several files as one unit (a model and the results.json
  that describes it): every temporary is written before any is renamed, and each JSON file
  records the size and sha256 of the others; check_together(json_path) verifies the record.
- write_json / read_json: strict JSON (no NaN or Infinity tokens, which most JSON readers
  reject); non-finite numbers are written as null and recorded (see dumps_json).
- save_arrays / load_arrays: named arrays plus a JSON `meta` dict in an .npz, never unpickled;
  load_arrays can check the arrays' headers before reading any array data.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Tuple

import numpy as np

# a temporary of a writer on another host (whose pid we cannot check) or of the format before
# pids were recorded counts as stale once this old: no single write of pyann takes a day
STALE_AFTER_SECONDS = 24 * 3600


# ---- atomic writes ------------------------------------------------------------------------------

def atomic_write(path, write: Callable) -> Path:
    """Call write(file_object) on a temporary file beside `path`, then rename it onto `path`.

    First removes the temporaries of `path` left by writers that were killed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = _write_temporary(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:16] or "host"


def _write_temporary(path: Path, write: Callable) -> Path:
    """write(f) into `.{name}.{host}-{pid}.XXXXXXXX.tmp` beside path, fsynced; removed on error."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_host_tag()}-{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _unlink(tmp)
        raise
    return Path(tmp)


def remove_stale_temporaries(path) -> list:
    """Remove the temporaries of `path` whose writer is gone; returns the removed paths.

    A temporary written on this host is stale when no process has its writer's pid (a pid
    reused since keeps it: safe, if rare); one from another host, or from before pids were
    recorded, when it is older than STALE_AFTER_SECONDS. A live writer's temporary is kept.
    """
    path = Path(path)
    ours = re.compile(rf"^\.{re.escape(path.name)}\.([A-Za-z0-9]+)-(\d+)\.[A-Za-z0-9_]+\.tmp$")
    legacy = re.compile(rf"^\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp$")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return removed
    host, now = _host_tag(), time.time()
    for entry in entries:
        m = ours.match(entry.name)
        if m is None and not legacy.match(entry.name):
            continue
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_SECONDS
        except FileNotFoundError:
            continue
        local = m is not None and m.group(1) == host and os.name == "posix"
        if (not _pid_alive(int(m.group(2)))) if local else old:
            if _unlink(entry.path):
                removed.append(Path(entry.path))
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OverflowError:
        return False
    except OSError:   # PermissionError: alive, owned by another user
        return True
    return True


def _unlink(path) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a filesystem that cannot is left as it is."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- several files as one unit ------------------------------------------------------------------

COMPANIONS_KEY = "companion_files"


def write_together(files: Mapping, nonfinite: str = "record") -> Dict[Path, dict]:
    """Write several files as one unit, e.g. {out / "model.npz": writer, out / "results.json": results}.

    Each value is bytes, a writer(file_object) as for atomic_write, or a dict, written as JSON
    (dumps_json, with `nonfinite`) plus a "companion_files" entry: {name relative to the JSON
    file: {"bytes": size, "sha256": hex}} for every non-JSON file of the unit.

    Every file's temporary is written and fsynced before any file is renamed, and the JSON files
    are renamed last. So an exception, or a kill, while writing leaves every old file as it was
    (the temporaries of a killed writer are removed by the next write to those paths); only a
    kill in the moment between two renames can leave new data beside an old JSON file, and
    check_together(json_path) reports that. Returns {path: {"bytes", "sha256"}} per file.
    """
    paths = {Path(p): content for p, content in files.items()}
    if len(paths) != len(files):
        raise ValueError("write_together: the same path is given twice")
    for p, content in paths.items():
        if not isinstance(content, (bytes, bytearray, dict)) and not callable(content):
            raise TypeError(f"write_together: content for {p} must be bytes, a writer or a dict, "
                            f"got {type(content).__name__}")
        if isinstance(content, dict):
            if COMPANIONS_KEY in content:
                raise ValueError(f"write_together: {p} already has a {COMPANIONS_KEY!r} entry")
            dumps_json(content, nonfinite, where=str(p))   # refused now, before any file is written
        p.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(p)
    data_files = [p for p, c in paths.items() if not isinstance(c, dict)]
    json_files = [p for p, c in paths.items() if isinstance(c, dict)]
    written: Dict[Path, Path] = {}
    digests: Dict[Path, dict] = {}
    try:
        for p in data_files:
            content = paths[p]
            writer = content if callable(content) else (lambda f, b=bytes(content): f.write(b))
            written[p] = _write_temporary(p, writer)
            digests[p] = _digest(written[p])
        for p in json_files:
            record = {Path(os.path.relpath(q, p.parent)).as_posix(): digests[q] for q in data_files}
            data = dumps_json({**paths[p], COMPANIONS_KEY: record}, nonfinite, where=str(p))
            written[p] = _write_temporary(p, lambda f, b=data: f.write(b))
            digests[p] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for p in data_files + json_files:
            os.replace(written[p], p)
            del written[p]
    finally:
        for tmp in written.values():   # not renamed: an error before or during the renames
            _unlink(tmp)
    for folder in {p.parent for p in paths}:
        _fsync_dir(folder)
    return digests


def check_together(json_path) -> dict:
    """Check that the files a write_together JSON file records are the ones beside it.

    Returns the JSON object (read_json) when every recorded file has the recorded size and
    sha256; raises ValueError naming the first file that is missing or differs (e.g. a
    model.npz written after this results.json), or when the file records no companions.
    """
    json_path = Path(json_path)
    obj = read_json(json_path)
    record = obj.get(COMPANIONS_KEY) if isinstance(obj, dict) else None
    if not isinstance(record, dict) or not record:
        raise ValueError(f"{json_path} records no {COMPANIONS_KEY!r}: it was not written by write_together")
    for name, expected in record.items():
        companion = json_path.parent / name
        if not companion.is_file():
            raise ValueError(f"{json_path} was written with {companion}, which is missing")
        actual = _digest(companion)
        if not isinstance(expected, dict) or actual != {k: expected.get(k) for k in actual}:
            raise ValueError(f"{companion} is not the file {json_path} was written with "
                             f"(recorded {expected}, found {actual}): one was rewritten without "
                             f"the other, or a write was killed between the two")
    return obj


def _digest(path) -> dict:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return {"bytes": size, "sha256": h.hexdigest()}


# ---- strict JSON --------------------------------------------------------------------------------

NONFINITE_KEY = "_nonfinite"


def dumps_json(obj, nonfinite: str = "record", where: str = "JSON") -> bytes:
    """obj as strict JSON (indented, UTF-8, final newline); numpy scalars and arrays and Paths
    become plain values.

    JSON has no NaN or Infinity, and a file with those tokens is refused by strict readers
    (browsers, jq, most languages). nonfinite="record" (the default) writes each non-finite
    number as null and, when obj is a dict, records it under "_nonfinite" as
    {JSON pointer: "nan" | "inf" | "-inf"}, e.g. {"/history/3/loss": "nan"}; read_json puts the
    numbers back, other readers see null plus the record. A diverged run's results thus
    stay readable and say what diverged. nonfinite="refuse" raises ValueError naming the
    first non-finite value's JSON pointer instead (as does "record" when obj is not a dict).
    """
    if nonfinite not in ("record", "refuse"):
        raise ValueError(f"nonfinite must be 'record' or 'refuse', got {nonfinite!r}")
    found: Dict[str, str] = {}
    plain = _plain(obj, "", found, set())
    if found:
        pointer, text = next(iter(found.items()))
        if nonfinite == "refuse" or not isinstance(plain, dict):
            raise ValueError(f"{where}: {pointer or 'the value'} is {text}, which strict JSON cannot "
                             f"hold (nonfinite='record' writes null and records it; dicts only)")
        if NONFINITE_KEY in plain:
            raise ValueError(f"{where}: the key {NONFINITE_KEY!r} is reserved for the record of non-finite numbers")
        plain[NONFINITE_KEY] = found
    return (json.dumps(plain, indent=2, allow_nan=False) + "\n").encode()


def loads_json(text, where: str = "JSON"):
    """Parse JSON text written by dumps_json, putting recorded non-finite numbers back.
    Files of older versions holding NaN/Infinity tokens are still read."""
    obj = json.loads(text)
    if isinstance(obj, dict) and isinstance(obj.get(NONFINITE_KEY), dict):
        for pointer, value in obj.pop(NONFINITE_KEY).items():
            _set_pointer(obj, pointer, float(value), where)
    return obj


def write_json(path, obj, nonfinite: str = "record") -> Path:
    """Write obj as strict JSON, atomically; see dumps_json for NaN and Infinity."""
    data = dumps_json(obj, nonfinite, where=str(path))
    return atomic_write(path, lambda f: f.write(data))


def read_json(path):
    """Read a JSON file written by write_json or write_together (non-finite numbers restored)."""
    path = Path(path)
    try:
        return loads_json(path.read_text(encoding="utf-8"), where=str(path))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path} is not valid JSON ({type(exc).__name__}: {exc})") from None


def write_text(path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def _plain(o, pointer: str, found: Dict[str, str], active: set):
    """o with numpy values, tuples and Paths made plain, non-finite floats as None (in found)."""
    if isinstance(o, (np.generic, np.ndarray)) and not isinstance(o, np.void):
        o = o.item() if isinstance(o, np.generic) or o.ndim == 0 else o.tolist()
    if isinstance(o, float):
        if math.isfinite(o):
            return o
        found[pointer] = "nan" if math.isnan(o) else ("inf" if o > 0 else "-inf")
        return None
    if o is None or isinstance(o, (str, int, bool)):
        return o
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (dict, list, tuple)):
        if id(o) in active:
            raise ValueError(f"circular reference at {pointer or '/'}")
        active.add(id(o))
        try:
            if isinstance(o, dict):
                out = {}
                for k, v in o.items():
                    out[k] = _plain(v, f"{pointer}/{_escape(_key_text(k, pointer))}", found, active)
                return out
            return [_plain(v, f"{pointer}/{i}", found, active) for i, v in enumerate(o)]
        finally:
            active.discard(id(o))
    raise TypeError(f"{type(o).__name__} is not JSON serialisable (at {pointer or '/'})")


def _key_text(k, pointer: str) -> str:
    """The text json.dumps makes of a dict key."""
    if isinstance(k, str):
        return k
    if not isinstance(k, (int, float, bool)) and k is not None:
        raise TypeError(f"JSON keys must be str, int, float, bool or None, not {type(k).__name__} "
                        f"(at {pointer or '/'})")
    if isinstance(k, float) and not math.isfinite(k):
        raise ValueError(f"a JSON key cannot be {k} (at {pointer or '/'})")
    return json.dumps(k)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _set_pointer(obj, pointer: str, value, where: str) -> None:
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
    try:
        for t in tokens[:-1]:
            obj = obj[int(t)] if isinstance(obj, list) else obj[t]
        if isinstance(obj, list):
            obj[int(tokens[-1])] = value
        else:
            obj[tokens[-1]] = value
    except (KeyError, IndexError, ValueError, TypeError):
        raise ValueError(f"{where}: {NONFINITE_KEY} names {pointer!r}, which is not in the file") from None


# ---- named arrays -------------------------------------------------------------------------------

META_KEY = "__meta__"
MAX_META_BYTES = 64 << 20   # a model's JSON is kilobytes; a bigger one is not a pyann file


def npz_writer(arrays: Dict[str, np.ndarray], meta: dict) -> Callable:
    """A writer (for atomic_write or write_together) of named arrays plus a JSON `meta` dict as an
    .npz. Checks the arrays now: no object arrays (they would need pickle)."""
    if META_KEY in arrays:
        raise ValueError(f"array name {META_KEY!r} is reserved")
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in payload.items():
        if v.dtype.hasobject:
            raise ValueError(f"array {k!r} has dtype object, which cannot be saved without pickle")
    payload[META_KEY] = np.array(dumps_json(meta, where=META_KEY).decode())
    return lambda f: np.savez(f, **payload)


def save_arrays(path, arrays: Dict[str, np.ndarray], meta: dict) -> Path:
    """Write named arrays plus a JSON `meta` dict to an .npz, atomically. No object arrays."""
    return atomic_write(path, npz_writer(arrays, meta))


Header = Tuple[tuple, np.dtype]


def load_arrays(path, check: Optional[Callable[[dict, Dict[str, Header]], None]] = None):
    """Read an .npz written by save_arrays -> (arrays dict, meta dict). Never unpickles.

    check(meta, {name: (shape, dtype)}) is called with the arrays' .npy headers before any
    array is read, so a caller can refuse a file (by raising) without allocating its arrays.
    Anything that is not such a file raises ValueError naming `path`.
    """
    with _open_npz(path) as f:
        headers, meta = _read_index(path, f)
        if check is not None:
            check(meta, headers)
        try:
            arrays = {k: f[k] for k in headers}
        except Exception as exc:  # a member shorter than its header says, a bad CRC
            raise ValueError(f"{path} is not a readable pyann .npz file ({type(exc).__name__}: {exc})") from None
    return arrays, meta


def read_meta(path) -> dict:
    """The meta dict of an .npz written by save_arrays, reading no array data."""
    with _open_npz(path) as f:
        return _read_index(path, f)[1]


def _open_npz(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        f = np.load(path, allow_pickle=False)
    except ValueError as exc:  # raised by allow_pickle=False on a file that is a pickle
        raise ValueError(f"{path}: refusing to load: {exc}") from None
    except Exception as exc:  # zipfile.BadZipFile, EOFError, OSError on truncated/corrupt files
        raise ValueError(f"{path} is not a readable pyann .npz file ({type(exc).__name__}: {exc})") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is a single .npy array, not a pyann .npz file")
    return f


def _read_index(path, f) -> Tuple[Dict[str, Header], dict]:
    headers = _read_headers(path, f)
    if META_KEY not in headers:
        raise ValueError(f"{path} has no {META_KEY} entry: not a file written by pyann")
    return headers, _read_meta(path, f, headers.pop(META_KEY))


def _read_headers(path: Path, f) -> Dict[str, Header]:
    """(shape, dtype) of every member from its .npy header, reading no array data."""
    headers = {}
    try:
        for info in f.zip.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            with f.zip.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
                offset = member.tell()
            if dtype.hasobject:
                raise _Refused(f"array {key!r} has dtype object, which would need pickle")
            need = math.prod(shape) * dtype.itemsize
            if info.file_size - offset < need:
                raise ValueError(f"array {key!r} declares shape {shape} of {dtype} ({need} bytes) "
                                 f"but its member holds {info.file_size - offset} bytes")
            headers[key] = (tuple(shape), dtype)
    except _Refused as exc:
        raise ValueError(f"{path}: refusing to load: {exc}") from None
    except Exception as exc:  # bad magic, a malformed header, a corrupt zip directory
        raise ValueError(f"{path} is not a readable pyann .npz file ({type(exc).__name__}: {exc})") from None
    return headers


class _Refused(Exception):
    pass


def _read_meta(path: Path, f, header: Header) -> dict:
    shape, dtype = header
    if shape != () or dtype.kind not in "US" or dtype.itemsize > MAX_META_BYTES:
        raise ValueError(f"{path}: {META_KEY} must be one JSON string (at most {MAX_META_BYTES} "
                         f"bytes), found shape {shape} of {dtype}")
    try:
        text = f[META_KEY].item()
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        meta = loads_json(text, where=f"{path} {META_KEY}")
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: {META_KEY} is not valid JSON ({type(exc).__name__}: {exc})") from None
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"{path} is not a readable pyann .npz file ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: {META_KEY} must be a JSON object, found {type(meta).__name__}")
    return meta
