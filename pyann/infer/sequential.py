"""Inference plans for convolutional models: a Sequential of Conv2d, ReLU, MaxPool2d, AvgPool2d,
Flatten and Linear (cnn3 and the like), dense or pruned.

A dense convolution is run as a product of its filters with the image's columns (im2col,
(C*KH*KW, N*Ho*Wo), the output positions as samples) on OpenBLAS (on one thread in a plan that
also runs pyann's OpenMP kernels: pyann.infer.threads says why); a sparse or 4x1-blocked one
never builds the columns: kernels.sparse_conv_tiled gathers each tile of 64 output positions
from the padded images into a thread's buffer and runs the sparse kernel on it. A Linear runs on
pyann's dense kernel (OpenBLAS in the "numpy" plan) or sparse from its rows
(kernels.sparse_tiled_gather). Each Conv2d or Linear is dense, sparse or 4x1-blocked, chosen per
layer by measurement (pyann.infer.choice). A ReLU right after a Conv2d or Linear is fused into
it, and so is a 2x2 max-pool (stride 2) right after a sparse convolution: the pooled map is
written, never the full one. Images go through the whole network in chunks, so the buffers of one
chunk stay small.

The measurement that picks a kernel times each candidate as the plan runs it (the same _conv or
_linear call: im2col, tile gathering, the output's layout and a max-pool after it included) on
the input the plan would give it: the images / activations of CALIBRATION_IMAGES images (the
calibration images given, else random ones of the model's input size) passed through the layers
before it - one chunk's worth of rows, not a few hundred, so that per-call costs weigh in the
choice as they do in a batched run.
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional

import numpy as np

from .. import kernels, ops
from ..data.transforms import check_float_input
from ..nn import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from ..ops.conv import _pad, conv_output_size, im2col
from ..nn.module import fingerprint as model_fingerprint
from .choice import PackedWeight, choose_sparse
from .threads import one_blas_thread

KERNELS = ("numpy", "dense", "sparse")
CHUNK = 128   # images per pass through the network: bounds the column buffers (cnn3: ~15 MB)
# Images whose im2col rows the kernel choice times each layer on: min(chunk, CALIBRATION_IMAGES),
# i.e. exactly one of the plan's chunks (the size of every product call the batched plan makes)
# up to 128 images. cnn3 at 128 images: conv1 100,352 rows (128 x 28 x 28 output positions), conv2
# 25,088 (392 tiles of 64), the Linear 128. The former 512 random rows were 2/3 of ONE 28x28 image
# of conv1: per-call costs (tile buffers, the thread team) then outweighed the multiply-adds and
# the choice was dense on every cnn3 layer at the paper's densities. Beyond a chunk the per-row
# cost no longer changes, and the measurement stays cheap (cnn3: ~30 MB of columns, well under
# a second per layer).
CALIBRATION_IMAGES = 128


@dataclasses.dataclass
class Step(PackedWeight):
    """One step of the plan. conv/linear: w (in, out) - a Linear's weight, or a convolution's
    filters as columns (C*KH*KW, F) - with b, relu fused, and the sparse packing when chosen."""
    kind: str                              # "conv", "linear", "relu", "maxpool", "avgpool", "flatten"
    w: Optional[np.ndarray] = None
    b: Optional[np.ndarray] = None
    relu: bool = False
    geometry: tuple = ()                   # conv: (kernel, stride, padding, dilation); pool: (kernel, stride, padding)
    sparse: Optional[object] = None
    timing: Optional[dict] = None
    timing_samples: int = 0                # rows each candidate was timed on (conv: im2col rows)
    packed: Optional[kernels.PackedDense] = None   # a Linear on pyann's dense kernel: w packed, once, at compile

    def label(self) -> str:
        if self.kind not in ("conv", "linear"):
            return self.kind
        if self.sparse is not None:
            return "blocked" if isinstance(self.sparse, kernels.BlockSparseWeights) else "sparse"
        return "dense"


def _steps(model) -> List[Step]:
    if not isinstance(model, Sequential):
        raise ValueError(f"compile expects a pyann.nn.Sequential, got {type(model).__name__}")
    steps: List[Step] = []
    for i, m in enumerate(model.layers):
        if isinstance(m, Conv2d):
            if m.groups != 1:
                raise ValueError(f"layer {i}: grouped convolutions are not supported by the plans yet")
            w = np.ascontiguousarray(m.weight.data.reshape(m.out_channels, -1).T, np.float32)
            b = None if m.bias is None else np.ascontiguousarray(m.bias.data, np.float32)
            steps.append(Step("conv", w, b, geometry=(m.kernel_size, m.stride, m.padding, m.dilation)))
        elif isinstance(m, Linear):
            b = None if m.bias is None else np.ascontiguousarray(m.bias.data, np.float32)
            steps.append(Step("linear", np.ascontiguousarray(m.weight.data, np.float32), b))
        elif isinstance(m, ReLU):
            if steps and steps[-1].kind in ("conv", "linear") and not steps[-1].relu:
                steps[-1].relu = True
            else:
                steps.append(Step("relu"))
        elif isinstance(m, (MaxPool2d, AvgPool2d)):
            kind = "avgpool" if isinstance(m, AvgPool2d) else "maxpool"
            steps.append(Step(kind, geometry=(m.kernel_size, m.stride, m.padding)))
        elif isinstance(m, Flatten):
            steps.append(Step("flatten"))
        else:
            raise ValueError(f"layer {i} ({type(m).__name__}) is not supported by infer.compile's "
                             f"convolutional plans: Conv2d, ReLU, MaxPool2d, AvgPool2d, Flatten, Linear")
    for s in steps:
        for name, a in (("weight", s.w), ("bias", s.b)):
            if a is not None and not np.isfinite(a).all():
                raise ValueError(f"the model's {s.kind} {name} holds NaN or Inf: a plan needs finite weights")
    return steps


class SequentialPlan:
    """A compiled convolutional model: run(x) for x (n, C, H, W) float32 -> (n, classes)."""

    def __init__(self, steps: List[Step], kernel: str, fingerprint: str, chunk: int = CHUNK,
                 mode: str = "batched"):
        self.steps, self.kernel, self.fingerprint, self.chunk = steps, kernel, fingerprint, chunk
        self.mode = mode
        self.last_macs = 0

    def describe(self) -> str:
        how = "one image at a time" if self.mode == "one_at_a_time" else f"batched in chunks of {self.chunk} images"
        lines = [f"SequentialPlan({self.kernel}, {how})"]
        for i, s in enumerate(self.steps, 1):
            line = f"  step {i}: {s.kind}"
            if s.kind == "maxpool" and i >= 2 and _pools_as_it_writes(self.steps, i - 2):
                line += f" (done by step {i - 1} as it writes its output)"
            if s.w is not None:
                density = np.count_nonzero(s.w) / max(s.w.size, 1)
                line += (f" {s.w.shape[0]}x{s.w.shape[1]}{' +ReLU' if s.relu else ''}, kernel {s.label()}, "
                         f"weight density {100 * density:.1f} %")
                if s.timing:
                    rows = "im2col rows" if s.kind == "conv" else "samples"
                    line += " (measured: " + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in s.timing.items()) + \
                            f" per {s.timing_samples:,} {rows})"
            lines.append(line)
        return "\n".join(lines)

    __repr__ = describe

    def run(self, x) -> np.ndarray:
        x = np.asarray(x)
        check_float_input(x, "plan.run")
        x = np.ascontiguousarray(x, np.float32)
        self.last_macs = 0
        outs = [self._run_chunk(x[i:i + self.chunk]) for i in range(0, len(x), self.chunk)]
        if not outs:   # 0 images: the output width from one zero image
            return self._run_chunk(np.zeros((1,) + x.shape[1:], np.float32))[:0]
        return np.concatenate(outs)

    def predict(self, x) -> np.ndarray:
        return np.argmax(self.run(x), axis=1)

    def _run_chunk(self, h: np.ndarray, record: Optional[list] = None) -> np.ndarray:
        """One chunk through every step; record (a list): gets each Conv2d's input images and each
        Linear's input (n, in), in order."""
        pooled = False   # the step before was a sparse convolution that did this max-pool too
        for i, s in enumerate(self.steps):
            if pooled:
                pooled = False
                continue
            if s.kind == "conv":
                if record is not None:
                    record.append(h)
                pooled = record is None and _pools_as_it_writes(self.steps, i)
                h = self._conv(s, h, pool=2 if pooled else 1)
            elif s.kind == "linear":
                if record is not None:
                    record.append(np.ascontiguousarray(h, np.float32))
                h = self._linear(s, h)
            elif s.kind == "relu":
                h = np.maximum(h, 0)
            elif s.kind == "maxpool":
                h = ops.maxpool2d_forward(h, *s.geometry)[0]
            elif s.kind == "avgpool":
                h = ops.avgpool2d_forward(h, *s.geometry)[0]
            else:
                h = h.reshape(h.shape[0], -1)
        return h

    def _product(self, s: Step, cols_t: np.ndarray) -> np.ndarray:
        """cols_t (in, n) -> (out, n): the layer's dense product, bias and ReLU, inputs by samples."""
        n = cols_t.shape[1]
        if self.kernel == "numpy":
            y = s.w.T @ cols_t
        else:   # beside pyann's OpenMP kernels: see pyann.infer.threads
            with one_blas_thread():
                y = s.w.T @ cols_t
        if s.b is not None:
            y += s.b[:, None]
        self.last_macs += n * s.w.size
        return np.maximum(y, 0, out=y) if s.relu else y

    def _columns(self, s: Step, h: np.ndarray):
        """A convolution's im2col columns (C*KH*KW, N*Ho*Wo) and (N, Ho, Wo)."""
        k, stride, pad, dil = s.geometry
        n, _, hh, ww = h.shape
        ho, wo = conv_output_size(hh, k, stride, pad, dil), conv_output_size(ww, k, stride, pad, dil)
        return im2col(_pad(h, pad), k, k, ho, wo, stride, dil).reshape(s.w.shape[0], n * ho * wo), (n, ho, wo)

    def _conv_out(self, s: Step, cols: np.ndarray, shape: tuple) -> np.ndarray:
        n, ho, wo = shape
        y = self._product(s, cols)                               # (F, N*Ho*Wo)
        return np.ascontiguousarray(y.reshape(-1, n, ho, wo).transpose(1, 0, 2, 3))

    def _conv(self, s: Step, h: np.ndarray, pool: int = 1) -> np.ndarray:
        if s.sparse is None:
            return self._conv_out(s, *self._columns(s, h))
        # sparse: no im2col columns; each tile of 64 output positions gathered from the image;
        # pool 2: the 2x2 max-pool after it done as the outputs are written (kernels.sparse_conv)
        k, stride, pad, dil = s.geometry
        xp = np.ascontiguousarray(_pad(h, pad), np.float32)
        n, (ho, wo) = h.shape[0], kernels.conv_positions(xp.shape[2], xp.shape[3], k, stride, dil)
        positions = n * (ho // pool * pool) * (wo // pool * pool)   # a pool drops an odd last row / column
        self.last_macs += -(-positions // kernels.SPARSE_TILE) * kernels.SPARSE_TILE * s.sparse.nnz
        return kernels.sparse_conv(xp, s.sparse, k, stride, dil, s.b, s.relu, pool=pool)   # NCHW, in place

    def _linear(self, s: Step, h: np.ndarray) -> np.ndarray:
        if s.sparse is None and self.kernel != "numpy":
            self.last_macs += h.shape[0] * s.w.size
            return kernels.dense(np.ascontiguousarray(h), s.dense_w, s.b, relu=s.relu)
        if s.sparse is not None:   # rows in, gathered tile by tile, rows out
            n = h.shape[0]
            self.last_macs += -(-n // kernels.SPARSE_TILE) * kernels.SPARSE_TILE * s.sparse.nnz
            return kernels.from_tiles(kernels.sparse_tiled_gather(np.ascontiguousarray(h), s.sparse, s.b, s.relu), n)
        return np.ascontiguousarray(self._product(s, np.ascontiguousarray(h.T)).T)


def _fusable_pool(steps: List[Step], i: int) -> bool:
    """Whether step i is a max-pool the sparse convolution before it can do as it writes: 2x2,
    stride 2, no padding (what kernels.sparse_conv(pool=2) computes)."""
    if i >= len(steps) or steps[i].kind != "maxpool":
        return False
    k, stride, pad = steps[i].geometry
    return k == 2 and stride in (None, 2) and pad == 0


def _pools_as_it_writes(steps: List[Step], i: int) -> bool:
    """Whether step i is a sparse (or blocked) convolution that does the max-pool after it."""
    return steps[i].kind == "conv" and steps[i].sparse is not None and _fusable_pool(steps, i + 1)


def _input_channels(steps: List[Step]) -> int:
    """The model's input channels: the first convolution's im2col rows over its kernel area."""
    first = next(s for s in steps if s.kind == "conv")
    return first.w.shape[0] // (first.geometry[0] ** 2)


def _input_shape(steps: List[Step]) -> tuple:
    """(C, H, W) of the model's input: C from the first convolution, H = W the smallest square size
    whose Flatten output fits the Linear after it (28 for cnn3); 32 x 32 when nothing fixes it."""
    channels = _input_channels(steps)
    for size in range(1, 513):
        c, h = channels, size
        for i, s in enumerate(steps):
            if s.kind == "conv":
                k, stride, pad, dil = s.geometry
                c, h = s.w.shape[1], conv_output_size(h, k, stride, pad, dil)
            elif s.kind in ("maxpool", "avgpool"):
                k, stride, pad = s.geometry
                h = conv_output_size(h, k, k if stride is None else stride, pad)
            elif s.kind == "flatten":
                nxt = next((t for t in steps[i + 1:] if t.kind == "linear"), None)
                if nxt is not None and h >= 1 and c * h * h == nxt.w.shape[0]:
                    return (channels, size, size)
                break
            if h < 1:
                break
    return (channels, 32, 32)


def _calibration_inputs(steps: List[Step], chunk: int, calibration, input_shape) -> list:
    """Each Conv2d's and each Linear's input, in order, for min(chunk, CALIBRATION_IMAGES)
    images (calibration's first ones, repeated when fewer; else standard normal images of
    input_shape or of _input_shape) run through the dense NumPy steps."""
    n = min(chunk, CALIBRATION_IMAGES)
    if calibration is not None:
        x = np.asarray(calibration)
        check_float_input(x, "calibration")
        channels = _input_channels(steps)
        if x.ndim != 4 or x.shape[1] != channels or not len(x):
            raise ValueError(f"calibration must be images (n >= 1, {channels}, H, W), got shape {x.shape}")
        x = np.ascontiguousarray(x[np.arange(n) % len(x)], np.float32)
    else:
        shape = tuple(input_shape) if input_shape is not None else _input_shape(steps)
        x = np.random.default_rng(0).standard_normal((n,) + shape, dtype=np.float32)
    record: list = []
    SequentialPlan(steps, "numpy", "", n)._run_chunk(x, record)
    return record


def _plan_candidates(plan: SequentialPlan, inputs: list):
    """choose_sparse's measure hook: layer i's kernels run by the plan's own code on inputs[i]."""
    def candidates(i, s, packed):
        x = inputs[i]
        dense = dataclasses.replace(s, sparse=None)
        if s.kind == "conv":   # x: the images; every candidate from images to images (pooled, as run)
            step = next(j for j, t in enumerate(plan.steps) if t is s)
            if _fusable_pool(plan.steps, step + 1):
                geometry = plan.steps[step + 1].geometry
                fns = {"dense": lambda: ops.maxpool2d_forward(plan._conv(dense, x), *geometry)[0]}
                fns.update({k: (lambda t=dataclasses.replace(s, sparse=pk): plan._conv(t, x, pool=2))
                            for k, pk in packed.items()})
            else:
                fns = {"dense": lambda: plan._conv(dense, x)}
                fns.update({k: (lambda t=dataclasses.replace(s, sparse=pk): plan._conv(t, x)) for k, pk in packed.items()})
            k, stride, pad, dil = s.geometry
            ho, wo = (conv_output_size(v, k, stride, pad, dil) for v in x.shape[2:])
            return len(x) * ho * wo, fns
        dense.packed = kernels.pack_dense(s.w)   # a Linear left dense runs packed (compile_sequential)
        fns = {"dense": lambda: plan._linear(dense, x)}
        fns.update({k: (lambda t=dataclasses.replace(s, sparse=pk): plan._linear(t, x)) for k, pk in packed.items()})
        return len(x), fns
    return candidates


def compile_sequential(model, plan: str = "sparse", layer_kernels=None, chunk: int = CHUNK,
                       calibration=None, input_shape=None, mode: str = "batched") -> SequentialPlan:
    """Compile a convolutional Sequential (see the module docstring). plan: "numpy" (every layer
    in NumPy/OpenBLAS), "dense" (Linear layers on pyann's dense kernel) or "sparse" (each Conv2d
    and Linear dense, sparse or 4x1-blocked, whichever measured fastest; layer_kernels, one entry
    per Conv2d/Linear in order, forces "dense", "sparse" or "blocked").
    mode "one_at_a_time": each image through every step before the next (chunks of one image;
    the loop over images is Python's, each step one C call, the threads sharing each image's
    positions), for latency; "batched": chunks of `chunk` images.
    The measurement (plan "sparse") runs on min(chunk, CALIBRATION_IMAGES) images (one, one
    image at a time): `calibration` (n, C, H, W), e.g. training images, or random images of
    `input_shape` (C, H, W), by default the size the model's Flatten -> Linear implies."""
    if plan not in KERNELS:
        raise ValueError(f"a convolutional model compiles to one of {KERNELS}, got {plan!r}")
    if mode not in ("batched", "one_at_a_time"):
        raise ValueError(f"mode must be 'batched' or 'one_at_a_time', got {mode!r}")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive number of images, got {chunk!r}")
    if mode == "one_at_a_time":
        chunk = 1
    steps = _steps(model)
    weighted = [s for s in steps if s.w is not None]
    if layer_kernels is not None and plan != "sparse":
        raise ValueError("layer_kernels applies to plan 'sparse' only")
    compiled = SequentialPlan(steps, plan, model_fingerprint(model), chunk, mode)
    if plan == "sparse":
        measure = layer_kernels is None or any(k is None for k in layer_kernels)
        inputs = _calibration_inputs(steps, chunk, calibration, input_shape) if measure else None
        choose_sparse(weighted, layer_kernels, "batched", "images",
                      measure=_plan_candidates(compiled, inputs) if measure else None)
        compiled.last_macs = 0
    if plan != "numpy":   # the Linear steps that run on pyann's dense kernel (see _linear)
        for s in weighted:
            if s.kind == "linear" and s.sparse is None:
                s.packed = kernels.pack_dense(s.w)
    return compiled
