"""Provenance: what every results file records about how its numbers were made.

    results["provenance"] = provenance(dataset=ds)        # or stamp(results, dataset=ds)

gives one dict:

- ``pyann_version``: ``pyann.__version__``;
- ``git_commit``: the commit of the checkout pyann is imported from (with ``git_dirty``: True
  when tracked files differ from it), or ``"unknown"`` outside a checkout or without git;
- ``command_line``: the process's arguments (``sys.argv``, or the ``argv`` given);
- ``machine``: CPU model, usable cores, BLAS, NumPy and Python versions, the kernels' ISA and
  threads (:func:`machine_info`, the same description the benchmarks print);
- ``dataset``: the identity of each dataset used (:func:`dataset_identity`): name, whether the
  files are the official ones, where they were read from, the md5 of each file and a sha256 of
  the decoded arrays (what the numbers were computed on, for custom arrays too);
- ``created_utc``: when the record was made.

Every study, recipe, command and benchmark that writes a results.json or a bench JSON calls
:func:`provenance` (through :func:`stamp`), so they all carry the same record. Nothing here
raises: a piece that cannot be found is recorded as ``"unknown"`` with the reason where it helps.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

__all__ = ["provenance", "stamp", "machine_info", "machine_line", "git_commit", "dataset_identity",
           "cpu_model", "blas_info"]

UNKNOWN = "unknown"


# --- the machine ------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or UNKNOWN


def blas_info() -> str:
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy without mode="dicts"
        return UNKNOWN


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


def machine_info() -> dict:
    """CPU model, usable cores, BLAS, NumPy, Python, the C kernels' ISA and OpenMP threads."""
    try:
        from . import kernels
        isa, threads = kernels.isa(), kernels.num_threads()
    except Exception:   # the extension is not built (ImportError) or cannot load
        isa, threads = "not built", 0
    return {"cpu": cpu_model(), "cores": _cores(), "blas": blas_info(), "numpy": np.__version__,
            "python": platform.python_version(), "pyann_isa": isa, "pyann_threads": threads,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
            "platform": platform.platform()}


def machine_line(info: dict, width: int = 120) -> str:
    """The machine for a terminal header, wrapped at " | " to `width` columns."""
    parts = [f"machine: {info['cpu']}, {info['cores']} cores", f"BLAS: {info['blas']}", f"numpy {info['numpy']}",
             f"pyann kernels: {info['pyann_isa']}, {info['pyann_threads']} OpenMP threads"]
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " | " + part
        else:
            lines.append("  " + part)
    return "\n".join(lines)


# --- the code ---------------------------------------------------------------------------------

def _checkout_root(start: Path) -> Optional[Path]:
    """The folder holding `.git` above `start` (pyann's own folder), or None."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def git_commit(path=None) -> dict:
    """{"commit": hex or "unknown", "dirty": bool or None, "why": reason when unknown} for the
    checkout holding `path` (default: the folder pyann is imported from). Never raises."""
    start = Path(path) if path is not None else Path(__file__).resolve().parent
    root = _checkout_root(start)
    if root is None:
        return {"commit": UNKNOWN, "dirty": None, "why": "not in a git checkout (an installed copy)"}
    try:
        env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")   # never take the index lock of a shared tree
        run = lambda *a: subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True,
                                        timeout=10, env=env)
        head = run("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": UNKNOWN, "dirty": None, "why": (head.stderr.strip() or "git rev-parse failed")[:200]}
        status = run("status", "--porcelain", "--untracked-files=no")
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        return {"commit": head.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError) as exc:   # no git on PATH, a hung git, ...
        return {"commit": UNKNOWN, "dirty": None, "why": f"{type(exc).__name__}: {exc}"[:200]}


# --- the data ---------------------------------------------------------------------------------

def _arrays_sha256(ds) -> str:
    h = hashlib.sha256()
    for key in ("x_train", "y_train", "x_test", "y_test"):
        a = np.ascontiguousarray(getattr(ds, key))
        h.update(f"{key}:{a.dtype.str}:{a.shape};".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _source_files(ds) -> dict:
    """{file name: md5} of the files a Dataset was read from (memoised digests: loading computed
    them already), limited to the registry's file names for a folder source."""
    from .data.checksums import file_md5
    src = getattr(ds, "source_path", None)
    if src is None:
        return {}
    src = Path(src)
    if src.is_file():
        return {src.name: file_md5(src)}
    if not src.is_dir():
        return {}
    try:
        from .data.registry import get_spec
        names = {Path(f.path).name for v in get_spec(ds.name).variants for f in v.files}
    except Exception:   # a custom name: no registry entry, so no files to vouch for
        return {}
    return {p.name: file_md5(p) for p in sorted(src.iterdir()) if p.name in names and p.is_file()}


def _identity_by_name(name: str) -> dict:
    """Only a name: the files pyann.data finds for it now (no download; the md5s are memoised)."""
    ident = {"name": name, "official": None, "checksum": UNKNOWN,
             "why": "only the name was recorded; files located by name when the record was written"}
    try:
        from .data import locate
        found = locate(name, None, download=False, allow_unofficial=True)
        from .data.checksums import file_md5
        ident.update({"official": found.official, "notes": list(found.notes), "source": str(found.source_path),
                      "files_md5": {Path(p).name: file_md5(p) for p in found.paths.values()}})
    except Exception as exc:   # unknown name, files not found, ...
        ident["why"] = f"only the name was recorded; its files were not found ({type(exc).__name__})"
    return ident


def _identity_of_files(found) -> dict:
    ident = {"name": found.spec.name, "official": found.official, "notes": list(found.notes),
             "source": str(found.source_path), "checksum": UNKNOWN,
             "why": "the files were recorded, not the decoded arrays"}
    try:
        from .data.checksums import file_md5
        ident["files_md5"] = {Path(p).name: file_md5(p) for p in found.paths.values()}
    except Exception as exc:
        ident["files_md5"] = UNKNOWN
        ident["files_why"] = f"{type(exc).__name__}: {exc}"[:200]
    return ident


def dataset_identity(ds) -> dict:
    """What identifies a dataset: name, official or not (and why not), source, the md5 of its
    files and a sha256 of the decoded arrays. Accepts a pyann.data.Dataset, anything with its
    x_/y_ arrays, a pyann.data.Located (its files), or a plain name (its files located by name).
    Never raises."""
    if ds is None:
        return {"name": None, "official": None, "why": "no dataset (synthetic inputs)"}
    if isinstance(ds, str):
        return _identity_by_name(ds)
    if hasattr(ds, "spec") and hasattr(ds, "paths"):   # a pyann.data.Located: the files, not yet decoded
        return _identity_of_files(ds)
    ident = {"name": getattr(ds, "name", "custom"), "official": getattr(ds, "official", None),
             "notes": list(getattr(ds, "notes", ()) or ())}
    if getattr(ds, "source_path", None) is not None:
        ident["source"] = str(ds.source_path)
    try:
        ident["sizes"] = {"train": int(len(ds.x_train)), "test": int(len(ds.x_test))}
        ident["checksum"] = {"algorithm": "sha256", "of": "decoded arrays x_train, y_train, x_test, y_test "
                             "(dtype, shape and bytes)", "value": _arrays_sha256(ds)}
    except Exception as exc:
        ident["checksum"] = UNKNOWN
        ident["why"] = f"{type(exc).__name__}: {exc}"[:200]
    try:
        files = _source_files(ds)
        if files:
            ident["files_md5"] = files
    except Exception as exc:
        ident["files_md5"] = UNKNOWN
        ident["files_why"] = f"{type(exc).__name__}: {exc}"[:200]
    return ident


# --- the record -------------------------------------------------------------------------------

def provenance(dataset=None, argv: Optional[Sequence[str]] = None, machine: Optional[dict] = None) -> dict:
    """The provenance record (module docstring). dataset: a Dataset, a name, None, or a list of
    them (one identity each). argv: the command line (default sys.argv). machine: a
    machine_info() dict already measured (a benchmark prints the one it records)."""
    from . import __version__
    datasets = list(dataset) if isinstance(dataset, (list, tuple)) else [dataset]
    identities = [dataset_identity(d) for d in datasets if d is not None] or [dataset_identity(None)]
    try:
        mach = dict(machine) if machine is not None else machine_info()
    except Exception as exc:
        mach = {"cpu": UNKNOWN, "why": f"{type(exc).__name__}: {exc}"[:200]}
    git = git_commit()
    record = {
        "pyann_version": __version__,
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "command_line": [str(a) for a in (sys.argv if argv is None else argv)],
        "python_executable": sys.executable,
        "machine": mach,
        "dataset": identities[0] if len(identities) == 1 else identities,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if "why" in git:
        record["git_why"] = git["why"]
    return record


def stamp(results: dict, dataset=None, argv: Optional[Iterable[str]] = None,
          machine: Optional[dict] = None) -> dict:
    """results["provenance"] = provenance(...); returns `results` (the same dict)."""
    results["provenance"] = provenance(dataset, None if argv is None else list(argv), machine)
    return results
