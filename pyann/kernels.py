"""The one module that touches cffi: validate arrays, call pyann._kernels, map errors.

Every public function checks dtype, C-contiguity and shapes and raises ValueError naming the
bad argument before anything reaches C; the C side re-checks sizes and pointers and returns an
error code rather than crash. Each kernel has a plain NumPy reference beside it (`*_reference`),
which the tests compare against on random shapes and edge cases.

Shapes: a dense layer is y = x @ w + b with w of shape (in_features, out_features).

NaN and Inf: every kernel gives what its reference gives, lane for lane. Zero skipping leaves out
0 x w, which is NaN when w is infinite, so the zero-skipping forms refuse non-finite weights
(checked in C, one pass over w; `assume_finite=True` skips the pass for weights the caller has
checked, as infer.compile does).

Threads: kernels run pyann_num_threads() OpenMP threads (OMP_NUM_THREADS, at most the usable
cores, at most set_max_threads()); in a child forked after a kernel ran they run on one thread,
since libgomp's thread pool does not survive fork.

PYANN_KERNELS_DIR=DIR loads the extension built into DIR/pyann/ (`make sanitize` uses it for the
AddressSanitizer/UBSan build) instead of the installed one.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np


def _import_extension():
    """pyann._kernels: the installed one, or the build in $PYANN_KERNELS_DIR/pyann/."""
    folder = os.environ.get("PYANN_KERNELS_DIR")
    if not folder:
        from pyann import _kernels
        return _kernels
    import importlib.machinery
    import importlib.util
    import sys
    found = importlib.machinery.PathFinder.find_spec("_kernels", [os.path.join(folder, "pyann")])
    if found is None:
        raise ImportError(f"PYANN_KERNELS_DIR={folder}: no pyann/_kernels extension there "
                          f"(build one with `python csrc/build_kernels.py {folder}`)")
    spec = importlib.util.spec_from_file_location("pyann._kernels", found.origin)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["pyann._kernels"] = module
    return module


try:
    _ext = _import_extension()
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    _ext = None
    _IMPORT_ERROR = exc
else:
    _IMPORT_ERROR = None
    # a forked child must not enter a multi-threaded OpenMP region (see runtime.c)
    os.register_at_fork(after_in_child=_ext.lib.pyann_after_fork_in_child)

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
    """OpenMP threads a parallel kernel uses: OMP_NUM_THREADS (read at import), at most the cores
    this process may use and the cap of set_max_threads; 1 in a forked child."""
    return int(_lib().pyann_num_threads())


def set_max_threads(n: int) -> None:
    """Cap the threads of every parallel kernel at n >= 1 (0 removes the cap)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= 2**31 - 1:
        raise ValueError(f"set_max_threads needs an int >= 0, got {n!r}")
    _call(_lib().pyann_set_max_threads, int(n))


def extension_file() -> str:
    """Path of the loaded pyann._kernels (the sanitizer build under `make sanitize`)."""
    _lib()
    return _ext.__file__


def _ext_string(ptr) -> str:
    return _ext.ffi.string(ptr).decode()


# ---- validation -------------------------------------------------------------------------------

def check_array(name: str, a, dtype, ndim: int | None = None, shape: tuple | None = None) -> np.ndarray:
    """Return `a` if it is a C-contiguous ndarray of `dtype` with the given rank/shape, else
    raise ValueError naming `name`. `shape` may hold None for a free dimension. An array that
    is not aligned to its element size (np.frombuffer at an odd offset) comes back as an
    aligned copy: C reads floats through float pointers."""
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
    return a if a.flags.aligned else a.copy()


def check_output(name: str, out, shape: tuple) -> np.ndarray:
    """An output buffer: float32, C-contiguous, writeable, of exactly `shape`."""
    check_array(name, out, np.float32, shape=shape)
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    return out


def output_buffer(out, shape: tuple, inputs: dict) -> np.ndarray:
    """A new float32 array of `shape`, or the caller's `out` after checking that it fits and
    shares no memory with any array in `inputs` (name -> array or None): the kernels read their
    inputs while they write, so an aliased output is garbage. An unaligned `out` gets an aligned
    buffer that _finish copies back."""
    if out is None:
        return aligned_empty(shape)
    check_output("out", out, shape)
    for name, a in inputs.items():
        if a is not None and np.shares_memory(out, a):
            raise ValueError(f"out must not share memory with {name}")
    return out if out.flags.aligned else aligned_empty(shape)


def _finish(result: np.ndarray, out) -> np.ndarray:
    """The caller's `out` holding `result` (a copy when out was unaligned), else result."""
    if out is None or result is out:
        return result
    out[...] = result
    return out


_CTYPES = {np.dtype(np.float32): "float[]", np.dtype(np.int32): "int32_t[]", np.dtype(np.uint8): "uint8_t[]",
           np.dtype(np.int64): "int64_t[]", np.dtype(np.uint16): "uint16_t[]"}


def _ptr(a: np.ndarray | None):
    """A C pointer to a validated array's data (NULL for None or an empty array)."""
    if a is None or a.size == 0:
        return _ext.ffi.NULL
    return _ext.ffi.from_buffer(_CTYPES[a.dtype], a)


_ENOMEM = -2
INT32_MAX = 2**31 - 1   # the kernels index inputs with int32


def _call(fn, *args) -> None:
    status = fn(*args)
    if status == _ENOMEM:
        raise MemoryError(f"{fn.__name__}: out of memory for its work buffers")
    if status != 0:
        raise KernelError(f"{fn.__name__} returned error code {status} for arguments the wrapper accepted")


def _dense_args(x, w, b, x_ndim: int):
    """The checked (x, w, b) of a dense layer."""
    w = check_array("w", w, np.float32, ndim=2)
    x_shape = (None, w.shape[0]) if x_ndim == 2 else (w.shape[0],)
    x = check_array("x", x, np.float32, shape=x_shape)
    if b is not None:
        b = check_array("b", b, np.float32, shape=(w.shape[1],))
    return x, w, b


def all_finite(a: np.ndarray) -> bool:
    """True when a float32 array holds no NaN and no Inf (one vectorised pass in C)."""
    a = check_array("a", a, np.float32)
    status = _lib().pyann_all_finite(_ptr(a), a.size)
    if status < 0:
        raise KernelError(f"pyann_all_finite returned error code {status}")
    return bool(status)


def _check_finite_for_zero_skip(name: str, a: np.ndarray) -> None:
    if not all_finite(a):
        raise ValueError(f"{name} holds NaN or Inf: zero skipping leaves out 0 x {name}, which is NaN "
                         f"for an infinite weight, so it needs finite weights (the dense kernels "
                         f"propagate NaN and Inf as NumPy does)")


# ---- dense layer ------------------------------------------------------------------------------

def dense_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, relu: bool = False) -> np.ndarray:
    """NumPy reference: y = x @ w + b, then max(y, 0) if relu. x (..., in), w (in, out).
    NaN and Inf follow IEEE arithmetic with every product computed (0 x Inf is NaN)."""
    with np.errstate(invalid="ignore", over="ignore"):
        if np.isfinite(x).all() and np.isfinite(w).all():
            y = x @ w
        else:   # some BLAS matrix-vector kernels skip x == 0 and with it 0 x Inf = NaN
            y = np.einsum("...k,kc->...c", x, w)
        if b is not None:
            y = y + b
        return np.maximum(y, 0) if relu else y


@dataclasses.dataclass(frozen=True, eq=False)
class PackedDense:
    """A dense layer's w (in_features, out_features) packed once for the batched kernel: panels
    of `panel` columns (the last zero-padded), panel j's row k at data[(j * in + k) * panel ..]
    (csrc/dense.c, version 5). `panel` is the width this build's kernel reads (its register block's:
    32 columns with AVX-512, 16 with AVX2, 4 scalar); a packing for another width is refused. Build with
    pack_dense(w); the constructor checks what C will trust. NaN and Inf are kept: the dense
    kernel computes every product, so they propagate as in dense_reference."""
    data: np.ndarray
    in_features: int
    out_features: int
    panel: int

    def __post_init__(self):
        for name in ("in_features", "out_features", "panel"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"PackedDense: {name} must be an int >= 0, got {v!r}")
        n_in, n_out, panel = int(self.in_features), int(self.out_features), int(self.panel)
        if panel != panel_width():
            raise ValueError(f"PackedDense: packed for panels of {panel} columns, this build's kernel reads "
                             f"{panel_width()} (pack the weights again with pack_dense(w))")
        data = check_array("data", self.data, np.float32, shape=(_packed_size(n_in, n_out, panel),))
        for name, v in (("data", data), ("in_features", n_in), ("out_features", n_out), ("panel", panel)):
            object.__setattr__(self, name, v)

    @property
    def shape(self) -> tuple:
        return (self.in_features, self.out_features)

    def to_dense(self) -> np.ndarray:
        """The (in, out) float32 matrix that was packed."""
        n_in, n_out, p = self.in_features, self.out_features, self.panel
        panels = self.data.reshape(-(-n_out // p), n_in, p)    # (panels, in, panel)
        return np.ascontiguousarray(panels.transpose(1, 0, 2).reshape(n_in, panels.shape[0] * p)[:, :n_out])


def _packed_size(n_in: int, n_out: int, panel: int) -> int:
    """Floats of a PackedDense: whole panels of `panel` columns, each n_in rows."""
    return -(-n_out // panel) * n_in * panel


def panel_width() -> int:
    """Columns per panel of a PackedDense for the kernels loaded (ISA-dependent)."""
    return int(_lib().pyann_dense_panel_width())


def aligned_empty(shape) -> np.ndarray:
    """An uninitialised float32 array of `shape` starting on a 64-byte boundary (a cache line).
    NumPy's large arrays start 16 bytes past one, so every 64-byte vector load or store of a
    tile row (64 floats) or a packed panel row would straddle two lines: the tiled sparse kernel
    ran 2x slower on such an input (512x512 at 10 %, 10,000 samples: 8.45 ms, aligned 4.42 ms).
    Every kernel output here is allocated so."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    size = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(size + 16, np.float32)
    start = (-raw.ctypes.data % 64) // 4
    return raw[start:start + size].reshape(shape)


def pack_dense(w: np.ndarray) -> PackedDense:
    """Pack w (in, out) float32 for the batched dense kernel, once (when a plan is built): the
    copy is laid out so the kernel reads it contiguously. Use with dense(x, packed, b)."""
    if isinstance(w, PackedDense):
        raise ValueError("w is already a PackedDense")
    w = check_array("w", w, np.float32, ndim=2)
    n_in, n_out = w.shape
    size = int(_lib().pyann_dense_packed_size(n_in, n_out))
    data = aligned_empty(size)
    _call(_lib().pyann_dense_pack, _ptr(w), _ptr(data), n_in, n_out)
    return PackedDense(data, n_in, n_out, panel_width())


def dense(x: np.ndarray, w, b: np.ndarray | None = None, relu: bool = False,
          out: np.ndarray | None = None) -> np.ndarray:
    """Batched dense layer in C. x (n, in) float32, w (in, out) float32 or a PackedDense
    (pack_dense(w): the faster packed kernel), b (out,) or None.
    Returns y (n, out) float32 (written into `out` when given)."""
    if isinstance(w, PackedDense):
        return dense_packed(x, w, b, relu, out)
    x, w, b = _dense_args(x, w, b, 2)
    (n, n_in), n_out = x.shape, w.shape[1]
    y = output_buffer(out, (n, n_out), dict(x=x, w=w, b=b))
    _call(_lib().pyann_dense_batched, _ptr(x), _ptr(w), _ptr(b), _ptr(y), n, n_in, n_out, int(bool(relu)))
    return _finish(y, out)


def dense_packed(x: np.ndarray, pw: PackedDense, b: np.ndarray | None = None, relu: bool = False,
                 out: np.ndarray | None = None) -> np.ndarray:
    """The batched dense layer from packed weights (pack_dense(w)): the same y (n, out) as
    dense(x, w, b, relu), up to float rounding."""
    if not isinstance(pw, PackedDense):
        raise ValueError(f"pw must be a PackedDense (pack_dense(w)), got {type(pw).__name__}")
    if pw.panel != panel_width():   # a PackedDense unpickled from a build for another ISA
        raise ValueError(f"pw was packed for panels of {pw.panel} columns, this build reads {panel_width()}: "
                         f"pack the weights again")
    data = check_array("pw.data", pw.data, np.float32, shape=(_packed_size(pw.in_features, pw.out_features, pw.panel),))
    x = check_array("x", x, np.float32, shape=(None, pw.in_features))
    if b is not None:
        b = check_array("b", b, np.float32, shape=(pw.out_features,))
    n = x.shape[0]
    y = output_buffer(out, (n, pw.out_features), dict(x=x, w=data, b=b))
    _call(_lib().pyann_dense_packed, _ptr(x), _ptr(data), _ptr(b), _ptr(y), n, pw.in_features,
          pw.out_features, int(bool(relu)))
    return _finish(y, out)


def dense_gemv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, relu: bool = False,
               out: np.ndarray | None = None) -> np.ndarray:
    """One-sample dense layer (GEMV) in C. x (in,), w (in, out), b (out,) or None -> y (out,)."""
    x, w, b = _dense_args(x, w, b, 1)
    n_in, n_out = w.shape
    y = output_buffer(out, (n_out,), dict(x=x, w=w, b=b))
    _call(_lib().pyann_dense_gemv, _ptr(x), _ptr(w), _ptr(b), _ptr(y), n_in, n_out, int(bool(relu)))
    return _finish(y, out)


def dense_per_sample(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, relu: bool = False,
                     out: np.ndarray | None = None) -> np.ndarray:
    """The GEMV applied to each row of x (n, in) in turn, the loop inside C -> y (n, out).
    Same result as `dense`; it measures the one-sample-at-a-time setting."""
    x, w, b = _dense_args(x, w, b, 2)
    (n, n_in), n_out = x.shape, w.shape[1]
    y = output_buffer(out, (n, n_out), dict(x=x, w=w, b=b))
    _call(_lib().pyann_dense_per_sample, _ptr(x), _ptr(w), _ptr(b), _ptr(y), n, n_in, n_out, int(bool(relu)))
    return _finish(y, out)


# ---- acti-masked and zero-skipping layers (csrc/relu_predict.c, paper 1) ----------------------
#
# One C entry point computes part of a dense layer: `mask` (uint8 or bool, nonzero = compute) is
# either one per-neuron mask (out,) shared by the batch or one mask per sample (n, out); masked
# outputs are 0. `zero_skip` skips inputs equal to 0 (exact). `one_at_a_time` runs the samples
# one after the other inside C (the paper's setting) instead of batched. The kernels compute
# whole vectors of VECTOR_WIDTH outputs, so the executed multiply-adds (`return_macs`) count a
# vector with any unmasked neuron in full; macs_reference gives the same count.

VECTOR_WIDTH = 16   # outputs per vector (AVX-512); see vector_width() for the compiled value


def vector_width() -> int:
    """Outputs per vector in the compiled kernels: 16 (AVX-512), 8 (AVX2) or 1 (scalar)."""
    return {"avx512": 16, "avx2": 8}.get(isa(), 1)


def check_mask(name: str, mask, n: int, n_out: int) -> tuple:
    """Validate an acti mask for n samples of n_out neurons. Returns (uint8 array, mode):
    mode 1 for a shared mask (n_out,), 2 for a per-sample mask (n, n_out)."""
    if not isinstance(mask, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray of uint8 or bool, got {type(mask).__name__}")
    if mask.dtype == np.bool_:
        mask = mask.view(np.uint8)
    if mask.dtype != np.uint8:
        raise ValueError(f"{name} must have dtype uint8 or bool, got {mask.dtype} "
                         f"(use (m > 0).astype(np.uint8))")
    if mask.ndim == 1:
        if mask.shape[0] != n_out:
            raise ValueError(f"{name} has length {mask.shape[0]}, but the layer has {n_out} output "
                             f"neurons: a shared mask must have shape ({n_out},)")
        mode = 1
    elif mask.ndim == 2:
        if mask.shape != (n, n_out):
            raise ValueError(f"{name} must have shape ({n}, {n_out}) for a per-sample mask "
                             f"(or ({n_out},) shared), got {mask.shape}")
        mode = 2
    else:
        raise ValueError(f"{name} must be 1-D (shared, ({n_out},)) or 2-D (per sample, ({n}, {n_out})), "
                         f"got shape {mask.shape}")
    if not mask.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use np.ascontiguousarray({name}))")
    return mask, mode


def relu_layer_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                         mask: np.ndarray | None = None, relu: bool = True) -> np.ndarray:
    """NumPy reference of every masked / zero-skipping layer: the dense layer, then 0 where the
    mask (shared (out,) or per sample (n, out)) is 0. Zero skipping does not change the result."""
    y = dense_reference(x, w, b, relu=relu)
    if mask is not None:
        y = np.where(np.asarray(mask, bool), y, np.float32(0)).astype(np.float32)
    return y


ZEROSKIP_SCHEMES = {"auto": 0, "list": 1, "union": 2}
UNION_TILE = 4   # samples per tile of the "union" scheme (csrc/relu_predict.c UNION_T)


def zeroskip_scheme(x: np.ndarray) -> str:
    """The scheme ("list" or "union") that batched zero skipping without a mask picks for x."""
    x = check_array("x", x, np.float32, ndim=2)
    return "union" if _lib().pyann_zeroskip_scheme(_ptr(x), x.shape[0], x.shape[1]) == 2 else "list"


def macs_reference(x: np.ndarray, n_out: int, mask: np.ndarray | None = None, zero_skip: bool = False,
                   width: int | None = None, scheme: str = "list") -> int:
    """Multiply-adds the C layer executes: per sample, (inputs used: its nonzeros with zero_skip,
    else all) x (outputs computed: every vector of `width` outputs with an unmasked neuron, in
    full; the columns after the last whole vector count one by one when any is unmasked).
    scheme "union" (zero skipping, no mask): the inputs used by each sample are the union of
    its tile's nonzeros (tiles of UNION_TILE samples), and a last partial tile counts in full
    for the whole vectors, as its missing lanes are multiplied too."""
    width = vector_width() if width is None else width
    n = x.shape[0]
    if zero_skip and mask is None and scheme == "union":
        if x.size == 0:
            return 0
        full = (n_out // width) * width
        pad = -n % UNION_TILE
        nz = np.concatenate([x != 0, np.zeros((pad, x.shape[1]), bool)]).reshape(-1, UNION_TILE, x.shape[1])
        union = nz.any(axis=1).sum(axis=1)                        # per tile
        return int(union.sum() * UNION_TILE * full + np.repeat(union, UNION_TILE)[:n].sum() * (n_out - full))
    used = np.count_nonzero(x, axis=1) if zero_skip else np.full(n, x.shape[1])
    if mask is None:
        return int(used.sum() * n_out)
    m = np.broadcast_to(np.asarray(mask, bool), (n, n_out))
    full = n_out // width
    computed = m[:, :full * width].reshape(n, full, width).any(axis=2).sum(axis=1) * width
    tail = n_out - full * width
    if tail:
        computed = computed + m[:, full * width:].any(axis=1) * tail
    return int((used * computed).sum())


def relu_layer(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, mask: np.ndarray | None = None,
               zero_skip: bool = False, relu: bool = True, one_at_a_time: bool = False,
               out: np.ndarray | None = None, return_macs: bool = False, scheme: str = "auto",
               assume_finite: bool = False):
    """A dense layer that computes only part of its work, in C. x (n, in), w (in, out), b (out,)
    or None, mask None / (out,) / (n, out) uint8 or bool. Returns y (n, out), or (y, macs) with
    return_macs. See masked_dense, zeroskip_dense and combined_dense for the three named forms.
    scheme ("auto", "list", "union"): how batched zero skipping without a mask shares work
    between samples (see zeroskip_scheme and csrc/relu_predict.c, version 6); same result.
    zero_skip needs finite w (ValueError otherwise); assume_finite=True skips that check."""
    x, w, b = _dense_args(x, w, b, 2)
    (n, n_in), n_out = x.shape, w.shape[1]
    if n_in > INT32_MAX:
        raise ValueError(f"w has {n_in} input features; the kernels index at most {INT32_MAX}")
    if scheme not in ZEROSKIP_SCHEMES:
        raise ValueError(f"scheme must be one of {tuple(ZEROSKIP_SCHEMES)}, got {scheme!r}")
    mode = 0
    if mask is not None:
        mask, mode = check_mask("mask", mask, n, n_out)
    if zero_skip and not assume_finite:
        _check_finite_for_zero_skip("w", w)
    y = output_buffer(out, (n, n_out), dict(x=x, w=w, b=b, mask=mask))
    counter = _ext.ffi.new("int64_t *", 0) if return_macs else _ext.ffi.NULL
    _call(_lib().pyann_relu_layer, _ptr(x), _ptr(w), _ptr(b), _ptr(y), n, n_in, n_out,
          _ptr(mask), mode, int(bool(zero_skip)), int(bool(relu)), int(bool(one_at_a_time)),
          ZEROSKIP_SCHEMES[scheme], counter)
    y = _finish(y, out)
    return (y, int(counter[0])) if return_macs else y


def masked_dense(x, w, b=None, mask=None, relu=True, one_at_a_time=False, out=None, return_macs=False):
    """acti-masked layer: only the output neurons whose mask is nonzero are computed, 0 elsewhere.
    mask (out,) shared by the batch or (n, out) per sample."""
    if mask is None:
        raise ValueError("mask is required for masked_dense (shape (out,) or (n, out), uint8 or bool)")
    return relu_layer(x, w, b, mask, False, relu, one_at_a_time, out, return_macs)


def zeroskip_dense(x, w, b=None, relu=True, one_at_a_time=False, out=None, return_macs=False):
    """Zero-skipping layer: the weight rows of inputs equal to 0 are skipped. Exact."""
    return relu_layer(x, w, b, None, True, relu, one_at_a_time, out, return_macs)


def combined_dense(x, w, b=None, mask=None, relu=True, one_at_a_time=False, out=None, return_macs=False):
    """acti mask and zero skipping together, bias and ReLU fused. mask may be None (= zeroskip_dense)."""
    return relu_layer(x, w, b, mask, True, relu, one_at_a_time, out, return_macs)


def default_relus(layers: int) -> list:
    """The usual MLP layout: ReLU after every layer but the last."""
    return [l < layers - 1 for l in range(layers)]


def mlp_per_sample_reference(x: np.ndarray, weights, biases, masks=None, predictors=None,
                             relus=None) -> np.ndarray:
    """NumPy reference of mlp_per_sample: ReLU after layer l where relus[l] (default: every layer
    but the last); a layer's output is 0 where its shared mask is 0 or where its low-rank
    predictor (u, v, margin) says inactive."""
    h = x
    relus = default_relus(len(weights)) if relus is None else relus
    for l, (w, b) in enumerate(zip(weights, biases)):
        keep = None
        if masks is not None and masks[l] is not None:
            keep = np.broadcast_to(np.asarray(masks[l], bool), (h.shape[0], w.shape[1]))
        if predictors is not None and predictors[l] is not None:
            u, v, margin = predictors[l]
            with np.errstate(invalid="ignore", over="ignore"):
                s = (h @ u) @ v + (0 if b is None else b)
            pred = s > -margin
            keep = pred if keep is None else keep & pred
        h = relu_layer_reference(h, w, b, keep, relu=bool(relus[l]))
    return h


def mlp_per_sample(x: np.ndarray, weights, biases, masks=None, predictors=None, zero_skip: bool = False,
                   split_images: bool = False, out: np.ndarray | None = None, return_macs: bool = False,
                   relus=None, assume_finite: bool = False):
    """A whole MLP run one sample at a time in C (loop over samples and layers inside C).

    weights[l] (d_l, d_{l+1}) float32, biases[l] (d_{l+1},) or None; relus[l]: ReLU after layer l
    (default: every layer but the last). masks: None or per layer None / shared uint8-or-bool
    mask (d_{l+1},). predictors: None or per layer None / (u (d_l, r), v (r, d_{l+1}), margin):
    the low-rank sign predictor. split_images: False - both threads work on each sample (split
    its outputs, a barrier per layer: the latency setting); True - each thread takes whole
    samples (throughput). zero_skip needs finite weights and u (ValueError otherwise);
    assume_finite=True skips that check. Returns y (n, d_L), or (y, macs, predictor_macs) with
    return_macs."""
    weights, biases = list(weights), list(biases)
    L = len(weights)
    if L == 0 or len(biases) != L:
        raise ValueError(f"weights and biases must be non-empty lists of the same length, got {L} and {len(biases)}")
    relus = default_relus(L) if relus is None else [bool(r) for r in relus]
    if len(relus) != L:
        raise ValueError(f"relus must have one flag per layer ({L}), got {len(relus)}")
    sizes, inputs = [], {}   # inputs: every array C reads, by name (for the aliasing check)
    for l in range(L):
        w = weights[l] = inputs[f"weights[{l}]"] = check_array(f"weights[{l}]", weights[l], np.float32, ndim=2)
        if l and w.shape[0] != sizes[-1]:
            raise ValueError(f"weights[{l}] has {w.shape[0]} inputs but layer {l - 1} has {sizes[-1]} outputs")
        if not l:
            sizes.append(w.shape[0])
        sizes.append(w.shape[1])
        if biases[l] is not None:
            biases[l] = inputs[f"biases[{l}]"] = check_array(f"biases[{l}]", biases[l], np.float32, shape=(w.shape[1],))
    for l, d in enumerate(sizes):
        if not 1 <= d <= INT32_MAX:
            where = "inputs" if l == 0 else f"outputs of layer {l - 1}"
            raise ValueError(f"every layer width must be in 1..{INT32_MAX}; the {where} number {d}")
    x = inputs["x"] = check_array("x", x, np.float32, shape=(None, sizes[0]))
    n = x.shape[0]
    c_masks = _ext.ffi.NULL
    if masks is not None:
        if len(masks) != L:
            raise ValueError(f"masks must have one entry per layer ({L}), got {len(masks)}")
        c_masks = _ext.ffi.new("uint8_t *[]", L)
        for l, m in enumerate(masks):
            if m is not None:
                m, mode = check_mask(f"masks[{l}]", m, n, sizes[l + 1])
                if mode != 1:
                    raise ValueError(f"masks[{l}] must be a shared per-neuron mask ({sizes[l + 1]},)")
                inputs[f"masks[{l}]"] = m
                c_masks[l] = _ptr(m)
    c_pu = c_pv = c_ranks = c_margins = _ext.ffi.NULL
    if predictors is not None:
        if len(predictors) != L:
            raise ValueError(f"predictors must have one entry per layer ({L}), got {len(predictors)}")
        c_pu, c_pv = _ext.ffi.new("float *[]", L), _ext.ffi.new("float *[]", L)
        c_ranks, c_margins = _ext.ffi.new("int64_t[]", L), _ext.ffi.new("float[]", L)
        for l, p in enumerate(predictors):
            if p is None:
                continue
            u, v, margin = p
            u = check_array(f"predictors[{l}] u", u, np.float32, shape=(sizes[l], None))
            r = u.shape[1]
            v = check_array(f"predictors[{l}] v", v, np.float32, shape=(r, sizes[l + 1]))
            if r == 0:
                raise ValueError(f"predictors[{l}] has rank 0")
            inputs[f"predictors[{l}] u"], inputs[f"predictors[{l}] v"] = u, v
            c_pu[l], c_pv[l] = _ptr(u), _ptr(v)
            c_ranks[l], c_margins[l] = r, float(margin)
    if zero_skip and not assume_finite:
        for name, a in inputs.items():
            if name.startswith("weights") or name.endswith(" u"):
                _check_finite_for_zero_skip(name, a)
    y = output_buffer(out, (n, sizes[-1]), inputs)
    c_ws = _ext.ffi.new("float *[]", [_ptr(w) for w in weights])
    c_bs = _ext.ffi.new("float *[]", [_ptr(b) for b in biases])
    c_sizes = _ext.ffi.new("int64_t[]", sizes)
    c_relus = _ext.ffi.new("uint8_t[]", [int(r) for r in relus])
    macs, pmacs = _ext.ffi.new("int64_t *", 0), _ext.ffi.new("int64_t *", 0)
    # `inputs` keeps every checked (possibly copied) array alive until C returns
    _call(_lib().pyann_mlp_per_sample, _ptr(x), _ptr(y), n, L, c_sizes, c_ws, c_bs, c_masks,
          c_pu, c_pv, c_ranks, c_margins, c_relus, int(bool(zero_skip)), int(bool(split_images)), macs, pmacs)
    del inputs
    y = _finish(y, out)
    return (y, int(macs[0]), int(pmacs[0])) if return_macs else y


# ---- pruned (sparse) linear layers (csrc/sparse.c, paper 2) -----------------------------------
#
# A pruned w (in, out) is packed by output neuron: row j lists the inputs k with w[k, j] != 0
# (idx, ascending) and their weights (val); ptr[j] .. ptr[j + 1] delimit row j. A pruned
# connection is absent, not a zero weight: an Inf or NaN input at a pruned connection
# contributes nothing (sparse_linear_reference says the same); at a kept one it propagates.

@dataclasses.dataclass(frozen=True)
class SparseWeights:
    """w (in_features, out_features) by output neuron: ptr (out + 1,) int64, idx (nnz,) int32,
    val (nnz,) float32. Build with pack_sparse(w); the constructor checks what C will trust."""
    ptr: np.ndarray
    idx: np.ndarray
    val: np.ndarray
    in_features: int
    out_features: int

    def __post_init__(self):
        n_in, n_out = int(self.in_features), int(self.out_features)
        if not (0 <= n_in <= INT32_MAX and 0 <= n_out):
            raise ValueError(f"SparseWeights: sizes ({n_in}, {n_out}) out of range")
        ptr = check_array("ptr", self.ptr, np.int64, shape=(n_out + 1,))
        idx = check_array("idx", self.idx, np.int32, ndim=1)
        val = check_array("val", self.val, np.float32, shape=(idx.shape[0],))
        if ptr[0] != 0 or ptr[-1] != idx.shape[0] or (np.diff(ptr) < 0).any():
            raise ValueError("ptr must start at 0, never decrease and end at len(idx)")
        if idx.size and (idx.min() < 0 or idx.max() >= n_in):
            raise ValueError(f"idx must lie in [0, {n_in})")
        for name, a in (("ptr", ptr), ("idx", idx), ("val", val)):
            object.__setattr__(self, name, a)

    @property
    def nnz(self) -> int:
        return int(self.idx.shape[0])

    @property
    def density(self) -> float:
        return self.nnz / max(self.in_features * self.out_features, 1)

    def to_dense(self) -> np.ndarray:
        """The (in, out) float32 matrix, zeros where pruned."""
        w = np.zeros((self.in_features, self.out_features), np.float32)
        rows = np.repeat(np.arange(self.out_features), np.diff(self.ptr))
        w[self.idx, rows] = self.val
        return w


def pack_sparse(w: np.ndarray) -> SparseWeights:
    """Pack a pruned w (in, out) float32: its nonzero entries, by output neuron."""
    w = check_array("w", w, np.float32, ndim=2)
    wt = w.T
    nz = wt != 0
    ptr = np.zeros(w.shape[1] + 1, np.int64)
    np.cumsum(nz.sum(axis=1), out=ptr[1:])
    rows, cols = np.nonzero(nz)               # row-major: by output j, then ascending k
    return SparseWeights(ptr, cols.astype(np.int32), np.ascontiguousarray(wt[rows, cols]), w.shape[0], w.shape[1])


SPARSE_BLOCK = 4   # outputs per block of the blocked layout (csrc: PYANN_SPARSE_BLOCK)


@dataclasses.dataclass(frozen=True)
class BlockSparseWeights:
    """A block-pruned w (in, out) in blocks of SPARSE_BLOCK outputs x 1 input: block row r
    (outputs 4r .. 4r + 3) keeps inputs idx[ptr[r] .. ptr[r + 1]), their 4 weights at
    val[4p .. 4p + 4). A kept block is stored whole, zeros included (so 0 x Inf is NaN there,
    as in the dense layer). Build with pack_blocked(w)."""
    ptr: np.ndarray
    idx: np.ndarray
    val: np.ndarray
    in_features: int
    out_features: int

    def __post_init__(self):
        if self.out_features % SPARSE_BLOCK:
            raise ValueError(f"blocks of {SPARSE_BLOCK} outputs need out_features divisible by "
                             f"{SPARSE_BLOCK}, got {self.out_features}")
        rows = self.out_features // SPARSE_BLOCK
        flat = SparseWeights(self.ptr, self.idx, np.ascontiguousarray(self.val[::SPARSE_BLOCK]),
                             self.in_features, rows)   # checks ptr and idx as C will trust them
        val = check_array("val", self.val, np.float32, shape=(SPARSE_BLOCK * flat.nnz,))
        for name, a in (("ptr", flat.ptr), ("idx", flat.idx), ("val", val)):
            object.__setattr__(self, name, a)

    @property
    def nnz(self) -> int:
        """Weights stored (kept blocks x SPARSE_BLOCK): the multiply-adds per sample."""
        return int(self.val.shape[0])

    density = SparseWeights.density   # stored weights over in x out, as for SparseWeights

    def to_sparse(self) -> SparseWeights:
        """The same layer by output neuron, a kept block's zeros stored explicitly."""
        vals = self.val.reshape(-1, SPARSE_BLOCK)
        idx, val, counts = [], [], []
        for r in range(self.out_features // SPARSE_BLOCK):
            p0, p1 = self.ptr[r], self.ptr[r + 1]
            for i in range(SPARSE_BLOCK):   # output 4r + i: the block row's inputs, its weights
                idx.append(self.idx[p0:p1])
                val.append(vals[p0:p1, i])
                counts.append(p1 - p0)
        ptr = np.zeros(self.out_features + 1, np.int64)
        np.cumsum(counts, out=ptr[1:])
        join = lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
        return SparseWeights(ptr, join(idx, np.int32), join(val, np.float32), self.in_features, self.out_features)

    def to_dense(self) -> np.ndarray:
        return self.to_sparse().to_dense()


def pack_blocked(w: np.ndarray) -> BlockSparseWeights:
    """Pack w (in, out) by blocks of SPARSE_BLOCK outputs x 1 input: a block is kept when any of
    its weights is nonzero. Exact for any w; fast when w was block-pruned."""
    w = check_array("w", w, np.float32, ndim=2)
    d_in, d_out = w.shape
    if d_out % SPARSE_BLOCK:
        raise ValueError(f"blocks of {SPARSE_BLOCK} outputs need out_features divisible by {SPARSE_BLOCK}, got {d_out}")
    blocks = w.reshape(d_in, d_out // SPARSE_BLOCK, SPARSE_BLOCK).transpose(1, 0, 2)   # (rows, in, 4)
    kept = blocks.any(axis=2)
    ptr = np.zeros(d_out // SPARSE_BLOCK + 1, np.int64)
    np.cumsum(kept.sum(axis=1), out=ptr[1:])
    rows, cols = np.nonzero(kept)
    return BlockSparseWeights(ptr, cols.astype(np.int32), np.ascontiguousarray(blocks[rows, cols].reshape(-1)),
                              d_in, d_out)


def sparse_blocked_tiled(xt: np.ndarray, bw: BlockSparseWeights, b: np.ndarray | None = None,
                         relu: bool = False, out: np.ndarray | None = None) -> np.ndarray:
    """Block-pruned layer on tiled activations: xt (tiles, in, 64) -> yt (tiles, out, 64)."""
    if not isinstance(bw, BlockSparseWeights):
        raise ValueError(f"bw must be a BlockSparseWeights (pack_blocked(w)), got {type(bw).__name__}")
    if b is not None:
        b = check_array("b", b, np.float32, shape=(bw.out_features,))
    xt = check_array("xt", xt, np.float32, shape=(None, bw.in_features, SPARSE_TILE))
    tiles = xt.shape[0]
    y = output_buffer(out, (tiles, bw.out_features, SPARSE_TILE), dict(xt=xt, b=b, val=bw.val))
    _call(_lib().pyann_sparse_blocked_tiled, _ptr(xt), _ptr(bw.ptr), _ptr(bw.idx), _ptr(bw.val), _ptr(b),
          _ptr(y), tiles, bw.in_features, bw.out_features, int(bool(relu)))
    return _finish(y, out)


def sparse_linear_reference(x: np.ndarray, sw: SparseWeights, b: np.ndarray | None = None,
                            relu: bool = False) -> np.ndarray:
    """NumPy reference: y[:, j] = sum over row j's nonzeros of x[:, k] * w[k, j] (+ b, ReLU).
    Only kept connections multiply, so a non-finite input at a pruned one changes nothing."""
    if np.isfinite(x).all():
        y = x @ sw.to_dense()
    else:
        y = np.empty((x.shape[0], sw.out_features), np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            for j in range(sw.out_features):
                p0, p1 = sw.ptr[j], sw.ptr[j + 1]
                y[:, j] = np.einsum("nk,k->n", x[:, sw.idx[p0:p1]], sw.val[p0:p1])
    with np.errstate(invalid="ignore", over="ignore"):
        if b is not None:
            y = y + b
        return (np.maximum(y, 0) if relu else y).astype(np.float32)


def _sparse_args(sw, b):
    if not isinstance(sw, SparseWeights):
        raise ValueError(f"sw must be a SparseWeights (pack_sparse(w)), got {type(sw).__name__}")
    if b is not None:
        b = check_array("b", b, np.float32, shape=(sw.out_features,))
    return b


SPARSE_TILE = 64   # samples per tile of the batched sparse layout (csrc: PYANN_SPARSE_TILE)


def to_tiles_reference(x: np.ndarray) -> np.ndarray:
    """x (n, d) -> (ceil(n / 64), d, 64): sample 64 t + m, feature k at [t, k, m]; the last tile
    padded with zero samples."""
    n, d = x.shape
    tiles = -(-n // SPARSE_TILE)
    padded = np.zeros((tiles * SPARSE_TILE, d), np.float32)
    padded[:n] = x
    return np.ascontiguousarray(padded.reshape(tiles, SPARSE_TILE, d).transpose(0, 2, 1))


def from_tiles_reference(xt: np.ndarray, n: int) -> np.ndarray:
    """The inverse of to_tiles: (tiles, d, 64) -> (n, d)."""
    return np.ascontiguousarray(xt.transpose(0, 2, 1).reshape(-1, xt.shape[1])[:n])


def to_tiles(x: np.ndarray) -> np.ndarray:
    """x (n, d) float32 -> the batched sparse kernel's layout (see to_tiles_reference), in C."""
    x = check_array("x", x, np.float32, ndim=2)
    n, d = x.shape
    xt = aligned_empty((-(-n // SPARSE_TILE), d, SPARSE_TILE))
    _call(_lib().pyann_to_tiles, _ptr(x), _ptr(xt), n, d)
    return xt


def from_tiles(xt: np.ndarray, n: int) -> np.ndarray:
    """(tiles, d, 64) -> the first n samples as rows (n, d), in C."""
    xt = check_array("xt", xt, np.float32, shape=(None, None, SPARSE_TILE))
    if not 0 <= n <= xt.shape[0] * SPARSE_TILE or -(-n // SPARSE_TILE) != xt.shape[0]:
        raise ValueError(f"n = {n} samples do not fill {xt.shape[0]} tiles of {SPARSE_TILE}")
    y = aligned_empty((n, xt.shape[1]))
    _call(_lib().pyann_from_tiles, _ptr(xt), _ptr(y), n, xt.shape[1])
    return y


def sparse_linear_tiled(xt: np.ndarray, sw: SparseWeights, b: np.ndarray | None = None, relu: bool = False,
                        out: np.ndarray | None = None) -> np.ndarray:
    """Pruned layer on tiled activations: xt (tiles, in, 64) -> yt (tiles, out, 64) float32."""
    b = _sparse_args(sw, b)
    xt = check_array("xt", xt, np.float32, shape=(None, sw.in_features, SPARSE_TILE))
    tiles = xt.shape[0]
    y = output_buffer(out, (tiles, sw.out_features, SPARSE_TILE), dict(xt=xt, b=b, val=sw.val))
    _call(_lib().pyann_sparse_linear_tiled, _ptr(xt), _ptr(sw.ptr), _ptr(sw.idx), _ptr(sw.val), _ptr(b),
          _ptr(y), tiles, sw.in_features, sw.out_features, int(bool(relu)))
    return _finish(y, out)


def _is_blocked(w) -> bool:
    """True for a BlockSparseWeights, False for a SparseWeights (the tiled kernels' two weight
    layouts); ValueError for anything else."""
    if not isinstance(w, (SparseWeights, BlockSparseWeights)):
        raise ValueError(f"w must be a SparseWeights or BlockSparseWeights (pack_sparse / pack_blocked), "
                         f"got {type(w).__name__}")
    return isinstance(w, BlockSparseWeights)


def sparse_tiled(xt: np.ndarray, w, b: np.ndarray | None = None, relu: bool = False,
                 out: np.ndarray | None = None) -> np.ndarray:
    """sparse_linear_tiled or sparse_blocked_tiled, whichever w is packed for."""
    run = sparse_blocked_tiled if _is_blocked(w) else sparse_linear_tiled
    return run(xt, w, b, relu, out)


def sparse_tiled_gather(x: np.ndarray, w, b: np.ndarray | None = None, relu: bool = False,
                        columns: bool = False, out: np.ndarray | None = None) -> np.ndarray:
    """A pruned layer (w a SparseWeights, or a BlockSparseWeights for the 4x1 kernel) on activations
    not yet tiled: x (n, in) rows, or with columns=True x (in, n), samples along each row (im2col's
    columns) -> yt (ceil(n / 64), out, 64), the tiled layout. The same result, bit for bit, as
    sparse_linear_tiled(to_tiles(x), w, b, relu) (sparse_blocked_tiled for blocks), but each tile
    of 64 samples is gathered into a thread's own buffer and used at once: the tiled copy of x is
    never written to memory and read back (csrc/sparse.c, pyann_sparse_tiled_strided)."""
    blocked = _is_blocked(w)
    if b is not None:
        b = check_array("b", b, np.float32, shape=(w.out_features,))
    x = check_array("x", x, np.float32, shape=(w.in_features, None) if columns else (None, w.in_features))
    n = x.shape[1] if columns else x.shape[0]
    ss, fs = (1, n) if columns else (w.in_features, 1)
    y = output_buffer(out, (-(-n // SPARSE_TILE), w.out_features, SPARSE_TILE), dict(x=x, b=b, val=w.val))
    _call(_lib().pyann_sparse_tiled_strided, _ptr(x), ss, fs, _ptr(w.ptr), _ptr(w.idx), _ptr(w.val), _ptr(b),
          _ptr(y), n, w.in_features, w.out_features, int(bool(relu)), int(blocked))
    return _finish(y, out)


def conv_positions(h: int, w: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple:
    """(ho, wo) of a convolution over an already padded h x w image (0 where the kernel does not fit)."""
    span = dilation * (kernel - 1) + 1
    return tuple((v - span) // stride + 1 if v >= span else 0 for v in (h, w))


def sparse_conv(x: np.ndarray, w, kernel: int, stride: int = 1, dilation: int = 1,
                b: np.ndarray | None = None, relu: bool = False, out: np.ndarray | None = None,
                pool: int = 1) -> np.ndarray:
    """sparse_conv_tiled with its output as images: y (n, F, ho, wo) float32, each tile's outputs
    written straight into place (no transposing copies after the kernel). pool=2: the images
    max-pooled 2x2, stride 2, as they are written (ops.maxpool2d_forward(y, 2) without ever
    writing y): (n, F, ho // 2, wo // 2)."""
    if isinstance(pool, bool) or not isinstance(pool, (int, np.integer)) or pool not in (1, 2):
        raise ValueError(f"pool must be 1 (none) or 2 (a 2x2 max-pool, stride 2), got {pool!r}")
    return sparse_conv_tiled(x, w, kernel, stride, dilation, b, relu, out, _images=True, _pool=int(pool))


def sparse_conv_tiled(x: np.ndarray, w, kernel: int, stride: int = 1, dilation: int = 1,
                      b: np.ndarray | None = None, relu: bool = False, out: np.ndarray | None = None,
                      _images: bool = False, _pool: int = 1) -> np.ndarray:
    """A pruned convolution without its im2col columns: x (n, c, h, w) float32, already padded;
    w a SparseWeights (or BlockSparseWeights) of the filters as columns (c * kernel * kernel, F),
    input row ci k k + ky k + kx (a Conv2d weight (F, C, K, K) reshaped to (F, -1) and transposed).
    -> yt (ceil(n ho wo / 64), F, 64), output positions in (image, oy, ox) order: the same, bit
    for bit, as sparse_tiled_gather(columns of ops.conv.im2col, w, b, relu, columns=True)."""
    blocked = _is_blocked(w)
    for name, v in (("kernel", kernel), ("stride", stride), ("dilation", dilation)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    x = check_array("x", x, np.float32, ndim=4)
    n, c, h, wd = x.shape
    if c * kernel * kernel != w.in_features:
        raise ValueError(f"x has {c} channels: {c} x {kernel} x {kernel} = {c * kernel * kernel} filter inputs, "
                         f"w has {w.in_features}")
    ho, wo = conv_positions(h, wd, kernel, stride, dilation)
    if n and not (ho and wo):
        raise ValueError(f"a {kernel}x{kernel} kernel (dilation {dilation}) does not fit a {h}x{wd} image")
    if n and (ho < _pool or wo < _pool):
        raise ValueError(f"a {_pool}x{_pool} pool does not fit the {ho}x{wo} output")
    if b is not None:
        b = check_array("b", b, np.float32, shape=(w.out_features,))
    shape = (n, w.out_features, ho // _pool, wo // _pool) if _images else \
        (-(-(n * ho * wo) // SPARSE_TILE), w.out_features, SPARSE_TILE)
    y = output_buffer(out, shape, dict(x=x, b=b, val=w.val))
    _call(_lib().pyann_sparse_conv_tiled, _ptr(x), n, c, h, wd, int(kernel), int(stride), int(dilation), _ptr(w.ptr),
          _ptr(w.idx), _ptr(w.val), _ptr(b), _ptr(y), w.out_features, int(bool(relu)), int(blocked), int(_images),
          int(_pool))
    return _finish(y, out)


def sparse_linear(x: np.ndarray, sw: SparseWeights, b: np.ndarray | None = None, relu: bool = False) -> np.ndarray:
    """Pruned layer, batched: x (n, in) -> y (n, out), through the tiled layout."""
    x = check_array("x", x, np.float32, shape=(None, sw.in_features if isinstance(sw, SparseWeights) else None))
    return from_tiles(sparse_linear_tiled(to_tiles(x), sw, b, relu), x.shape[0])


def sparse_linear_per_sample(x: np.ndarray, sw: SparseWeights, b: np.ndarray | None = None,
                             relu: bool = False, out: np.ndarray | None = None) -> np.ndarray:
    """Pruned layer one sample at a time, the loop inside C: x (n, in) -> y (n, out)."""
    b = _sparse_args(sw, b)
    x = check_array("x", x, np.float32, shape=(None, sw.in_features))
    n = x.shape[0]
    y = output_buffer(out, (n, sw.out_features), dict(x=x, b=b, val=sw.val))
    _call(_lib().pyann_sparse_linear_per_sample, _ptr(x), _ptr(sw.ptr),
          _ptr(sw.idx), _ptr(sw.val), _ptr(b), _ptr(y), n, sw.in_features, sw.out_features, int(bool(relu)))
    return _finish(y, out)


# ---- sparse x sparse: pruned weights and a ReLU's zero inputs skipped (csrc/sparse.c 7-9) ------
#
# The layout is by INPUT (CSR of w, i.e. CSC of w^T): input k lists its kept outputs
# idx[ptr[k] .. ptr[k + 1]) (strictly ascending) and their weights val. Per sample, each nonzero
# input x[k] scatters x[k] * w[k, j] into its kept outputs j, so the work is nnz(x) x (kept per
# input row): both sparsities multiply. An input equal to 0 contributes nothing, whatever its
# weights (so 0 x Inf is 0 here, not NaN: the kernel equals sparse_zeroskip_reference, which skips
# the zero inputs too); a NaN or Inf input is nonzero and propagates through its kept weights, and
# a pruned connection is absent, as for SparseWeights.

INDEX16_MAX_OUT = 65536   # up to this many outputs, the kept-output indices are uint16


@dataclasses.dataclass(frozen=True)
class InputSparseWeights:
    """A pruned w (in_features, out_features) by input: ptr (in + 1,) int64, idx (nnz,) uint16
    when out_features <= 65536 (else int32), val (nnz,) float32. Input k keeps the outputs
    idx[ptr[k]:ptr[k + 1]], strictly ascending. Build with pack_sparse_by_input(w); the
    constructor checks what C will trust (sizes, ptr, index range and order, dtypes)."""
    ptr: np.ndarray
    idx: np.ndarray
    val: np.ndarray
    in_features: int
    out_features: int

    def __post_init__(self):
        n_in, n_out = int(self.in_features), int(self.out_features)
        if not (0 <= n_in <= INT32_MAX and 0 <= n_out <= INT32_MAX):
            raise ValueError(f"InputSparseWeights: sizes ({n_in}, {n_out}) out of range")
        ptr = check_array("ptr", self.ptr, np.int64, shape=(n_in + 1,))
        if not isinstance(self.idx, np.ndarray) or self.idx.dtype not in (np.uint16, np.int32):
            raise ValueError(f"idx must be a numpy.ndarray of uint16 (out_features <= {INDEX16_MAX_OUT}) "
                             f"or int32, got {getattr(self.idx, 'dtype', type(self.idx).__name__)}")
        idx = check_array("idx", self.idx, self.idx.dtype, ndim=1)
        if idx.dtype == np.uint16 and n_out > INDEX16_MAX_OUT:
            raise ValueError(f"idx is uint16 but out_features = {n_out} > {INDEX16_MAX_OUT}: use int32")
        val = check_array("val", self.val, np.float32, shape=(idx.shape[0],))
        if ptr[0] != 0 or ptr[-1] != idx.shape[0] or (np.diff(ptr) < 0).any():
            raise ValueError("ptr must start at 0, never decrease and end at len(idx)")
        if idx.size:
            wide = idx.astype(np.int64)
            if wide.min() < 0 or wide.max() >= n_out:
                raise ValueError(f"idx must lie in [0, {n_out})")
            step = np.diff(wide)
            starts = ptr[1:-1]                   # a row start may step down from the row before
            step_ok = step > 0
            step_ok[starts[(starts > 0) & (starts < idx.size)] - 1] = True
            if not step_ok.all():
                raise ValueError("idx must be strictly ascending within each input's row")
        for name, a in (("ptr", ptr), ("idx", idx), ("val", val)):
            object.__setattr__(self, name, a)

    nnz = SparseWeights.nnz           # stored weights, and their share of in x out, as for SparseWeights
    density = SparseWeights.density

    @property
    def row_lengths(self) -> np.ndarray:
        """Kept outputs per input (in,): a nonzero input's multiply-adds."""
        return np.diff(self.ptr)

    def to_dense(self) -> np.ndarray:
        """The (in, out) float32 matrix, zeros where pruned."""
        w = np.zeros((self.in_features, self.out_features), np.float32)
        w[np.repeat(np.arange(self.in_features), self.row_lengths), self.idx] = self.val
        return w


def pack_sparse_by_input(w: np.ndarray) -> InputSparseWeights:
    """Pack a pruned w (in, out) float32 by input for the sparse x sparse kernel: row k holds the
    outputs j with w[k, j] != 0 (ascending) and those weights; uint16 indices up to 65536 outputs."""
    w = check_array("w", w, np.float32, ndim=2)
    nz = w != 0
    ptr = np.zeros(w.shape[0] + 1, np.int64)
    np.cumsum(nz.sum(axis=1), out=ptr[1:])
    rows, cols = np.nonzero(nz)               # row-major: by input k, then ascending j
    dtype = np.uint16 if w.shape[1] <= INDEX16_MAX_OUT else np.int32
    return InputSparseWeights(ptr, cols.astype(dtype), np.ascontiguousarray(w[rows, cols]), w.shape[0], w.shape[1])


def sparse_zeroskip_reference(x: np.ndarray, iw: InputSparseWeights, b: np.ndarray | None = None,
                              relu: bool = False) -> np.ndarray:
    """NumPy reference: y[:, j] = b[j] + sum of x[:, k] * w[k, j] over the kept w[k, j] whose
    input x[:, k] is nonzero (ReLU after). A zero input is skipped (0 x Inf adds nothing), a
    pruned connection is absent, a NaN or Inf input propagates through its kept weights."""
    w = iw.to_dense()
    if np.isfinite(x).all() and np.isfinite(iw.val).all():
        y = x @ w                              # 0 x finite = 0: skipping changes nothing
    else:
        y = np.zeros((x.shape[0], iw.out_features), np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            for k in range(iw.in_features):
                p0, p1 = iw.ptr[k], iw.ptr[k + 1]
                if p1 == p0:
                    continue
                xk = x[:, k:k + 1]
                on = (xk != 0)[:, 0]
                y[np.ix_(on, iw.idx[p0:p1].astype(np.int64))] += xk[on] * iw.val[p0:p1]
    with np.errstate(invalid="ignore", over="ignore"):
        if b is not None:
            y = y + b
        return (np.maximum(y, 0) if relu else y).astype(np.float32)


def sparse_zeroskip_macs_reference(x: np.ndarray, iw: InputSparseWeights) -> int:
    """Multiply-adds the sparse x sparse kernel executes: per sample, the kept outputs of each
    of its nonzero inputs."""
    return int(((x != 0).astype(np.int64) @ iw.row_lengths).sum())


def _index_ptrs(iw: InputSparseWeights):
    """(idx16, idx32) C pointers: the one of iw's index width, NULL for the other."""
    if iw.idx.dtype == np.uint16:
        return _ptr(iw.idx), _ext.ffi.NULL
    return _ext.ffi.NULL, _ptr(iw.idx)


def sparse_zeroskip(x: np.ndarray, iw: InputSparseWeights, b: np.ndarray | None = None, relu: bool = False,
                    one_at_a_time: bool = False, out: np.ndarray | None = None, return_macs: bool = False):
    """Sparse x sparse layer in C: x (n, in) float32 (typically a ReLU's output, mostly zeros),
    iw from pack_sparse_by_input(w), b (out,) or None -> y (n, out) = sparse_zeroskip_reference.
    one_at_a_time: the samples one after the other inside C, both threads on each sample's
    outputs; else batched (threads split the samples). Returns y, or (y, macs) with return_macs."""
    if not isinstance(iw, InputSparseWeights):
        raise ValueError(f"iw must be an InputSparseWeights (pack_sparse_by_input(w)), got {type(iw).__name__}")
    if b is not None:
        b = check_array("b", b, np.float32, shape=(iw.out_features,))
    x = check_array("x", x, np.float32, shape=(None, iw.in_features))
    n = x.shape[0]
    y = output_buffer(out, (n, iw.out_features), dict(x=x, b=b, val=iw.val, idx=iw.idx, ptr=iw.ptr))
    counter = _ext.ffi.new("int64_t *", 0)
    i16, i32 = _index_ptrs(iw)
    _call(_lib().pyann_sparse_zeroskip, _ptr(x), _ptr(iw.ptr), i16, i32, _ptr(iw.val), _ptr(b), _ptr(y),
          n, iw.in_features, iw.out_features, int(bool(relu)), int(bool(one_at_a_time)), counter)
    y = _finish(y, out)
    return (y, int(counter[0])) if return_macs else y


def sparse_mlp_per_sample(x: np.ndarray, layers, split_images: bool = True, return_macs: bool = False):
    """A whole MLP one sample at a time in C, each layer dense or pruned.

    layers: [(w, b, relu)] or [(w, b, relu, zero_skip)] with w a dense (in, out) float32 array, a
    SparseWeights or an InputSparseWeights (the sparse x sparse kernel: that layer skips its zero
    inputs), b (out,) or None; zero_skip (dense w only, default False): skip the layer's zero
    inputs, exactly, as mlp_per_sample(zero_skip=True). split_images: each thread takes whole
    samples (True) or both share each layer's outputs with a barrier per layer (False). Returns y
    (n, d_L), or (y, macs)."""
    layers = list(layers)
    if not layers:
        raise ValueError("layers must be a non-empty list of (w, b, relu)")
    sizes, keep, c = [], [], _ext.ffi
    ws, ptrs = c.new("float *[]", len(layers)), c.new("int64_t *[]", len(layers))
    idxs, vals = c.new("int32_t *[]", len(layers)), c.new("float *[]", len(layers))
    bs = c.new("float *[]", len(layers))
    zskips = c.new("uint8_t[]", len(layers))
    iptrs, i16s = c.new("int64_t *[]", len(layers)), c.new("uint16_t *[]", len(layers))
    i32s, ivals = c.new("int32_t *[]", len(layers)), c.new("float *[]", len(layers))
    for l, layer in enumerate(layers):
        if not isinstance(layer, (tuple, list)) or len(layer) not in (3, 4):
            raise ValueError(f"layers[{l}] must be (w, b, relu) or (w, b, relu, zero_skip)")
        w, b = layer[0], layer[1]
        if len(layer) == 4 and layer[3]:
            if isinstance(w, (SparseWeights, InputSparseWeights)):
                raise ValueError(f"layers[{l}]: zero_skip is for a dense w (an InputSparseWeights "
                                 f"already skips its zero inputs)")
            zskips[l] = 1
        if isinstance(w, InputSparseWeights):
            d_in, d_out = w.in_features, w.out_features
            iptrs[l], ivals[l] = _ptr(w.ptr), _ptr(w.val)
            i16s[l], i32s[l] = _index_ptrs(w)
            keep.append(w)
        elif isinstance(w, SparseWeights):
            d_in, d_out = w.in_features, w.out_features
            ptrs[l], idxs[l], vals[l] = _ptr(w.ptr), _ptr(w.idx), _ptr(w.val)
            keep.append(w)
        else:
            w = check_array(f"layers[{l}] w", w, np.float32, ndim=2)
            d_in, d_out = w.shape
            ws[l] = _ptr(w)
            keep.append(w)
        if sizes and d_in != sizes[-1]:
            raise ValueError(f"layers[{l}] has {d_in} inputs but layer {l - 1} has {sizes[-1]} outputs")
        sizes += [d_in, d_out] if not sizes else [d_out]
        if b is not None:
            b = check_array(f"layers[{l}] b", b, np.float32, shape=(d_out,))
            bs[l] = _ptr(b)
            keep.append(b)
    for l, d in enumerate(sizes):
        if not 1 <= d <= INT32_MAX:
            raise ValueError(f"every layer width must be in 1..{INT32_MAX}; width {l} is {d}")
    x = check_array("x", x, np.float32, shape=(None, sizes[0]))
    y = np.empty((x.shape[0], sizes[-1]), np.float32)
    macs = c.new("int64_t *", 0)
    _call(_lib().pyann_sparse_mlp_per_sample, _ptr(x), _ptr(y), x.shape[0], len(layers), c.new("int64_t[]", sizes),
          ws, ptrs, idxs, vals, iptrs, i16s, i32s, ivals, bs,
          c.new("uint8_t[]", [int(bool(layer[2])) for layer in layers]), zskips,
          int(bool(split_images)), macs)
    del keep
    return (y, int(macs[0])) if return_macs else y
