"""The one module that touches cffi: validate arrays, call pyann._kernels, map errors.

Every public function checks dtype, C-contiguity and shapes and raises ValueError naming the
bad argument before anything reaches C; the C side re-checks sizes and pointers and returns an
error code rather than crash. Each kernel has a plain NumPy reference beside it (`*_reference`),
which the tests compare against on random shapes and edge cases.

Shapes: a dense layer is y = x @ w + b with w of shape (in_features, out_features).
"""
from __future__ import annotations

import numpy as np

try:
    from pyann import _kernels as _ext
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    _ext = None
    _IMPORT_ERROR = exc
else:
    _IMPORT_ERROR = None

_BUILD_HINT = (
    "pyann's C extension pyann._kernels is not built. Build it from the repository root with "
    "`make build` (or `pip install -e .`), which compiles csrc/ with cffi; "
    "PYANN_PORTABLE=1 gives a build without -march=native."
)


class KernelError(RuntimeError):
    """A C kernel returned an error code for input the wrapper accepted (a bug: report it)."""


def _lib():
    if _ext is None:
        raise ImportError(f"{_BUILD_HINT} (import failed: {_IMPORT_ERROR})")
    return _ext.lib


def isa() -> str:
    """Vector ISA the kernels were compiled for: 'avx512', 'avx2' or 'scalar'."""
    return _ext_string(_lib().pyann_isa())


def num_threads() -> int:
    """OpenMP threads a parallel kernel uses (set OMP_NUM_THREADS before import to change)."""
    return int(_lib().pyann_num_threads())


def _ext_string(ptr) -> str:
    return _ext.ffi.string(ptr).decode()


# ---- validation -------------------------------------------------------------------------------

def check_array(name: str, a, dtype, ndim: int | None = None, shape: tuple | None = None) -> np.ndarray:
    """Return `a` if it is a C-contiguous ndarray of `dtype` with the given rank/shape, else
    raise ValueError naming `name`. `shape` may hold None for a free dimension."""
    dtype = np.dtype(dtype)
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray of {dtype}, got {type(a).__name__}")
    if a.dtype != dtype:
        raise ValueError(f"{name} must have dtype {dtype}, got {a.dtype} (convert with .astype(np.{dtype}))")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if shape is not None:
        if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
            want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want}, got {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray({name}))")
    return a


def check_output(name: str, out, shape: tuple) -> np.ndarray:
    """An output buffer: float32, C-contiguous, writeable, of exactly `shape`, and not aliasing."""
    check_array(name, out, np.float32, shape=shape)
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    return out


def _no_overlap(out: np.ndarray, **inputs: np.ndarray) -> None:
    # The kernels read inputs while writing outputs; an aliased output would corrupt the result.
    for name, a in inputs.items():
        if a is not None and np.shares_memory(out, a):
            raise ValueError(f"out must not share memory with {name}")


_CTYPES = {np.dtype(np.float32): "float[]", np.dtype(np.int32): "int32_t[]", np.dtype(np.uint8): "uint8_t[]"}


def _ptr(a: np.ndarray | None):
    """A C pointer to a validated array's data (NULL for None or an empty array)."""
    if a is None or a.size == 0:
        return _ext.ffi.NULL
    return _ext.ffi.from_buffer(_CTYPES[a.dtype], a)


def _call(fn, *args) -> None:
    status = fn(*args)
    if status != 0:
        raise KernelError(f"{fn.__name__} returned error code {status} for arguments the wrapper accepted")


def _dense_args(x, w, b, x_ndim: int):
    check_array("w", w, np.float32, ndim=2)
    n_in, n_out = w.shape
    x_shape = (None, n_in) if x_ndim == 2 else (n_in,)
    check_array("x", x, np.float32, shape=x_shape)
    if b is not None:
        check_array("b", b, np.float32, shape=(n_out,))
    return n_in, n_out


# ---- dense layer ------------------------------------------------------------------------------

def dense_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, relu: bool = False) -> np.ndarray:
    """NumPy reference: y = x @ w + b, then max(y, 0) if relu. x (..., in), w (in, out)."""
    y = x @ w
    if b is not None:
        y = y + b
    return np.maximum(y, 0) if relu else y


def dense(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, relu: bool = False,
          out: np.ndarray | None = None) -> np.ndarray:
    """Batched dense layer in C. x (n, in) float32, w (in, out) float32, b (out,) or None.
    Returns y (n, out) float32 (written into `out` when given)."""
    n_in, n_out = _dense_args(x, w, b, 2)
    n = x.shape[0]
    if out is None:
        out = np.empty((n, n_out), np.float32)
    else:
        check_output("out", out, (n, n_out))
        _no_overlap(out, x=x, w=w, b=b)
    _call(_lib().pyann_dense_batched, _ptr(x), _ptr(w), _ptr(b), _ptr(out), n, n_in, n_out, int(bool(relu)))
    return out


def dense_gemv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, relu: bool = False,
               out: np.ndarray | None = None) -> np.ndarray:
    """One-sample dense layer (GEMV) in C. x (in,), w (in, out), b (out,) or None -> y (out,)."""
    n_in, n_out = _dense_args(x, w, b, 1)
    if out is None:
        out = np.empty(n_out, np.float32)
    else:
        check_output("out", out, (n_out,))
        _no_overlap(out, x=x, w=w, b=b)
    _call(_lib().pyann_dense_gemv, _ptr(x), _ptr(w), _ptr(b), _ptr(out), n_in, n_out, int(bool(relu)))
    return out


def dense_per_sample(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, relu: bool = False,
                     out: np.ndarray | None = None) -> np.ndarray:
    """The GEMV applied to each row of x (n, in) in turn, the loop inside C -> y (n, out).
    Same result as `dense`; it measures the one-sample-at-a-time setting."""
    n_in, n_out = _dense_args(x, w, b, 2)
    n = x.shape[0]
    if out is None:
        out = np.empty((n, n_out), np.float32)
    else:
        check_output("out", out, (n, n_out))
        _no_overlap(out, x=x, w=w, b=b)
    _call(_lib().pyann_dense_per_sample, _ptr(x), _ptr(w), _ptr(b), _ptr(out), n, n_in, n_out, int(bool(relu)))
    return out
