"""Save and load models as .npz (named arrays) plus a JSON architecture; never pickle.

Loading trusts nothing in the file: the JSON must be a pyann model description, the
architecture must build, and the arrays it declares (found without allocating them,
Module.declared_state) must be exactly the arrays in the file, compared through their .npy
headers, before any array is read or any layer allocated. A tiny file that declares huge
layers therefore fails at once, and every malformed file raises ValueError naming the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..io import atomic_write, load_arrays, npz_writer, read_meta
from .init import TooManyArrays
from .module import Module, check_fit

FORMAT = "pyann-model/1"


def writer(model: Module, metadata: dict | None = None) -> Callable:
    """A writer of the model file, for pyann.io.write_together (e.g. model.npz with results.json)."""
    meta = {"format": FORMAT, "architecture": model.spec(), "metadata": metadata or {}}
    return npz_writer(model.state_dict(), meta)


def save(model: Module, path, metadata: dict | None = None) -> Path:
    """Write model weights, buffers and architecture to `path` (.npz) atomically."""
    return atomic_write(path, writer(model, metadata))


def _check_meta(path, meta: dict) -> dict:
    """The architecture spec of a model file's meta, or ValueError naming the file."""
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a pyann model file (format {meta.get('format')!r}, expected {FORMAT!r})")
    if not isinstance(meta.get("metadata", {}), dict):
        raise ValueError(f"{path}: malformed model file: metadata must be a JSON object")
    spec = meta.get("architecture")
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: malformed model file: architecture must be a JSON object, "
                         f"found {type(spec).__name__}")
    return spec


def _architecture_error(path, exc: BaseException) -> ValueError:
    return ValueError(f"{path}: malformed model architecture: {exc if isinstance(exc, ValueError) else repr(exc)}")


def _fit_error(path, exc: Exception, what: str) -> ValueError:
    msg = exc.args[0] if exc.args else str(exc)
    return ValueError(f"{path}: {what}: {msg}")


def load(path) -> Module:
    """Rebuild the model saved at `path` from its architecture and load its weights.

    Raises FileNotFoundError for a missing file and ValueError naming the file for any other
    problem: not a pyann model file, a malformed architecture, arrays that do not fit it.
    """
    spec = None

    def check(meta, headers):
        nonlocal spec
        spec = _check_meta(path, meta)
        try:
            # a spec declaring far more arrays than the file holds is a mismatch whatever the
            # names: stop building it there (a WRN of depth 10**12 would never finish)
            declared = Module.declared_state(spec, max_arrays=2 * len(headers) + 64)
        except TooManyArrays as exc:
            raise ValueError(f"{path}: the arrays do not fit the declared architecture: {exc}, "
                             f"the file holds {len(headers)}") from None
        except (ValueError, RecursionError) as exc:
            raise _architecture_error(path, exc) from None
        try:
            check_fit(declared, headers)
        except (KeyError, ValueError) as exc:
            raise _fit_error(path, exc, "the arrays do not fit the declared architecture") from None

    arrays, _ = load_arrays(path, check=check)
    try:
        model = Module.from_spec(spec)
    except (ValueError, RecursionError) as exc:   # a check a real build runs (a WRN dry run)
        raise _architecture_error(path, exc) from None
    try:
        model.load_state_dict(arrays, strict=True)
    except (KeyError, ValueError, TypeError) as exc:
        raise _fit_error(path, exc, "the arrays do not fit the declared architecture") from None
    return model


def load_into(model: Module, path, strict: bool = True) -> dict:
    """Load the weights at `path` into an existing model; returns the saved metadata.

    A file saved for another architecture raises ValueError naming the missing and unexpected
    keys (or the first differing shape or dtype), and leaves the model untouched.
    """
    def check(meta, headers):
        _check_meta(path, meta)
        try:
            check_fit(model.state_shapes(), headers, strict)
        except (KeyError, ValueError) as exc:
            raise _fit_error(path, exc, "saved for another architecture") from None

    arrays, meta = load_arrays(path, check=check)
    try:
        model.load_state_dict(arrays, strict=strict)
    except (KeyError, ValueError, TypeError) as exc:
        raise _fit_error(path, exc, "saved for another architecture") from None
    return meta.get("metadata", {})


def read_metadata(path) -> dict:
    """The metadata dict saved with the model at `path`, reading no array data."""
    meta = read_meta(path)
    _check_meta(path, meta)
    return meta.get("metadata", {})
