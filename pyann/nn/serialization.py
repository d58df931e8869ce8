"""Save and load models as .npz (named arrays) plus a JSON architecture; never pickle."""
from __future__ import annotations

from pathlib import Path

from ..io import load_arrays, save_arrays
from .module import Module

FORMAT = "pyann-model/1"


def save(model: Module, path, metadata: dict | None = None) -> Path:
    """Write model weights, buffers and architecture to `path` (.npz) atomically."""
    meta = {"format": FORMAT, "architecture": model.spec(), "metadata": metadata or {}}
    return save_arrays(path, model.state_dict(), meta)


def _read(path):
    arrays, meta = load_arrays(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a pyann model file (format {meta.get('format')!r}, expected {FORMAT!r})")
    return arrays, meta


def load(path) -> Module:
    """Rebuild the model saved at `path` from its architecture and load its weights."""
    arrays, meta = _read(path)
    model = Module.from_spec(meta["architecture"])
    model.load_state_dict(arrays, strict=True)
    return model


def load_into(model: Module, path, strict: bool = True) -> dict:
    """Load the weights at `path` into an existing model; returns the saved metadata.

    A file saved for another architecture raises ValueError naming the missing and unexpected
    keys (and the first differing shape), and leaves the model untouched.
    """
    arrays, meta = _read(path)
    try:
        model.load_state_dict(arrays, strict=strict)
    except (KeyError, ValueError) as exc:
        msg = exc.args[0] if exc.args else str(exc)
        raise ValueError(f"{path} was saved for another architecture: {msg}") from None
    return meta.get("metadata", {})


def read_metadata(path) -> dict:
    return _read(path)[1].get("metadata", {})
