"""Output folders and the files a command writes there.

`writable_folder` is called by every command before it loads data or trains, so an unwritable
`--out` costs a second, not a training run. `write_model_and_results` writes a model file and
the results.json that describes it so that no crash between the two leaves an old results.json
beside a new model.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np


class OutputFolderError(OSError):
    """The output folder cannot be created or written to."""


def writable_folder(path) -> Path:
    """Create `path` (with parents) and prove it writable by creating and removing a probe
    file in it; raises OutputFolderError naming the folder and the reason."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".pyann-write-probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputFolderError(f"cannot write to output folder {path}: {reason}") from None
    return path


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _plain(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def check_strict_json(obj, what: str = "results") -> None:
    """Raise ValueError if `obj` cannot be written as strict JSON (NaN, Inf, odd types), before
    anything is written: write_json refuses such values, and finding out after the model file
    was replaced would leave the pair inconsistent."""
    try:
        json.dumps(obj, allow_nan=False, default=_plain)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what} cannot be written as strict JSON: {exc}") from None


def write_model_and_results(model_path, save_model: Callable[[Path], object], results_path, results: dict,
                            dataset=None) -> None:
    """Write a model file (save_model(path) writes it) and the results.json describing it, as a
    pair: no interruption leaves an old results.json beside a new model.

    The results are serialised first (an error there changes nothing), and the old
    results.json is removed before the model is replaced: a kill in between leaves a model
    without results, visibly incomplete, never a stale pair. The files are then written with
    pyann.io.write_together when it exists (both temporaries written before either rename;
    results.json records the model's size and sha256 under "companion_files", which
    io.check_together verifies); otherwise the model, then results.json recording the model's
    sha256 as "model_sha256". A results dict without a "provenance" record gets one
    (pyann.provenance.stamp; `dataset`: the Dataset, else results["dataset"] names it).
    """
    from . import io
    if "provenance" not in results:   # every results.json says how it was made (pyann.provenance)
        from .provenance import stamp
        results = stamp(dict(results), dataset=dataset if dataset is not None else results.get("dataset"))
    model_path, results_path = Path(model_path), Path(results_path)
    together = getattr(io, "write_together", None)
    if together is not None:
        io.dumps_json(results, where=str(results_path))
    else:
        check_strict_json(results)
    try:
        results_path.unlink()
    except FileNotFoundError:
        pass
    if together is not None:
        # write_together takes the model's bytes; save_model writes to a path, so stage it
        with tempfile.TemporaryDirectory(prefix="pyann-model-") as tmp:
            staged = Path(tmp) / model_path.name
            save_model(staged)
            data = staged.read_bytes()
        together({model_path: data, results_path: dict(results)})
        return
    save_model(model_path)
    io.write_json(results_path, dict(results, model_file=model_path.name, model_sha256=file_sha256(model_path)))


def run_folder(out, default: str, key: str, value: str, every: bool) -> str:
    """The folder of one run of a command that may run several (`--model all`): `out` (or
    `default`) with {key} filled in by value; when every run is requested and the pattern has
    no {key}, each run gets a subfolder named after it."""
    pattern = out or default
    if "{" + key + "}" not in pattern and every:
        pattern = pattern.rstrip("/") + "/{" + key + "}"
    return pattern.format(**{key: value})
