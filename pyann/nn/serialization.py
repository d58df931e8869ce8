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

import numpy as np

from ..io import atomic_write, load_arrays, npz_writer, read_meta
from . import compact as compact_form
from .init import TooManyArrays
from .module import MASK_SUFFIX, Module, _named_modules, check_fit

FORMAT = "pyann-model/1"


def writer(model: Module, metadata: dict | None = None, compact: bool = False) -> Callable:
    """A writer of the model file, for pyann.io.write_together (e.g. model.npz with results.json)."""
    meta = {"format": FORMAT, "architecture": model.spec(), "metadata": metadata or {}}
    state = model.state_dict()
    if compact:
        state, meta["compact"] = compact_form.encode(state)
    return npz_writer(state, meta)


def save(model: Module, path, metadata: dict | None = None, compact: bool = False) -> Path:
    """Write model weights, buffers and architecture to `path` (.npz) atomically.

    compact=True stores every pruned parameter (one with a mask) as CSR, its kept values plus
    16-bit column indices (pyann.nn.compact), instead of the dense weight and its mask: a model
    pruned to 10 % takes ~1/6 of the bytes. load() reads both forms into the same model.
    """
    return atomic_write(path, writer(model, metadata, compact))


def _compact_names(path, meta: dict) -> list:
    names = meta.get("compact", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{path}: malformed model file: 'compact' must be a list of parameter names")
    return names


def _dense_headers(path, meta: dict, declared: dict, headers: dict,
                   what: str = "the arrays do not fit the declared architecture") -> dict:
    """The headers a dense file of the same model would have (compact arrays checked first)."""
    try:
        return compact_form.check_headers(_compact_names(path, meta), declared, headers)
    except ValueError as exc:
        raise _fit_error(path, exc, what) from None


def _decoded(path, arrays: dict, meta: dict, declared: dict) -> dict:
    try:
        return compact_form.decode(arrays, _compact_names(path, meta), declared)
    except ValueError as exc:
        raise _fit_error(path, exc, "corrupt compact weights") from None


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
    spec, declared = None, None

    def check(meta, headers):
        nonlocal spec, declared
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
        dense = _dense_headers(path, meta, declared, headers)
        try:
            check_fit(declared, dense)
        except (KeyError, ValueError) as exc:
            raise _fit_error(path, exc, "the arrays do not fit the declared architecture") from None

    arrays, meta = load_arrays(path, check=check)
    arrays = _decoded(path, arrays, meta, declared)
    try:
        model = Module.from_spec(spec)
    except (ValueError, RecursionError) as exc:   # a check a real build runs (a WRN dry run)
        raise _architecture_error(path, exc) from None
    try:
        model.load_state_dict(arrays, strict=True)
    except (KeyError, ValueError, TypeError) as exc:
        raise _fit_error(path, exc, "the arrays do not fit the declared architecture") from None
    return model


def _addable_masks(model: Module, names) -> dict:
    """{mask state name: the Parameter it would mask} for the masks among `names` that the
    model does not hold but could: a pruned model's file loads into the unpruned model."""
    modules = dict(_named_modules(model))
    found = {}
    for name in names:
        if not name.endswith(MASK_SUFFIX):
            continue
        owner, _, pname = name[:-len(MASK_SUFFIX)].rpartition(".")
        module = modules.get(owner)
        if module is not None and pname in module.prunable and pname in module._params \
                and module._params[pname].mask is None:
            found[name] = module._params[pname]
    return found


def _mask_hint(model: Module, exc: Exception) -> str:
    """Why a pruned model refused a file without masks, when that is the mismatch."""
    own = {name for name, _ in model.named_masks()}
    text = exc.args[0] if exc.args else ""
    if own and isinstance(exc, KeyError) and "unexpected keys []" in text \
            and all(repr(n) in text for n in own):
        return (f"; the model is pruned (masks {sorted(own)}) but the file has no masks: load it "
                f"with strict=False to keep the model's masks (the loaded weights are zeroed where "
                f"they are pruned), or drop them first with pyann.pruning.make_permanent")
    return ""


def load_into(model: Module, path, strict: bool = True) -> dict:
    """Load the weights at `path` into an existing model; returns the saved metadata.

    A file saved for another architecture raises ValueError naming the missing and unexpected
    keys (or the first differing shape or dtype), and leaves the model untouched.

    Masks: a file of a pruned model loads into the same model unpruned: the model takes the
    file's masks (its masked layers are then those of the file). A file without masks loads
    into a pruned model only with strict=False, which keeps the model's masks and zeroes the
    loaded weights where they are pruned; strict=True says so in its error.
    """
    addable = {}

    targets = {}

    def check(meta, headers):
        _check_meta(path, meta)
        names = _compact_names(path, meta)
        # a compact parameter's mask is in the file in its CSR arrays
        addable.update(_addable_masks(model, list(headers) + [n + MASK_SUFFIX for n in names]))
        targets.update(model.state_shapes())
        targets.update({name: (p.data.shape, np.dtype(np.bool_)) for name, p in addable.items()})
        dense = _dense_headers(path, meta, targets, headers, "saved for another architecture")
        try:
            check_fit(targets, dense, strict)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{path}: saved for another architecture: "
                             f"{exc.args[0] if exc.args else exc}{_mask_hint(model, exc)}") from None

    arrays, meta = load_arrays(path, check=check)
    arrays = _decoded(path, arrays, meta, targets)
    for p in addable.values():     # all kept until the file's masks are copied in
        p.mask = np.ones(p.data.shape, np.bool_)
    try:
        model.load_state_dict(arrays, strict=strict)
    except (KeyError, ValueError, TypeError) as exc:
        for p in addable.values():  # load_state_dict changed nothing: undo the masks too
            p.mask = None
        raise _fit_error(path, exc, "saved for another architecture") from None
    return meta.get("metadata", {})


def read_metadata(path) -> dict:
    """The metadata dict saved with the model at `path`, reading no array data."""
    meta = read_meta(path)
    _check_meta(path, meta)
    return meta.get("metadata", {})
