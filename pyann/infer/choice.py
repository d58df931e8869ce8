"""Choosing a layer's kernel by measurement: dense against the sparse kernels, on this machine,
for that layer, timed round-robin (shared by the MLP and the convolutional plans)."""
from __future__ import annotations

import time

import numpy as np

from .. import kernels
from .threads import one_blas_thread

SPARSE_CALIBRATION = 512   # samples timed per layer when choosing (MLPs; the conv plans time one chunk)


class PackedWeight:
    """For a plan layer with .w and .packed (kernels.pack_dense of w, made once at compile):
    assigning a new w drops the packing, which would be stale (the layer runs unpacked until it
    is packed again); dense_w is what kernels.dense runs the layer with."""

    def __setattr__(self, name, value):
        if name == "w":
            object.__setattr__(self, "packed", None)
        object.__setattr__(self, name, value)

    @property
    def dense_w(self):
        return self.packed if self.packed is not None else self.w


def choose_sparse(layers, forced, mode: str, split: str, zeroskip: bool = False, calibration=None,
                  measure=None) -> None:
    """Give each layer its sparse packing where a sparse kernel is faster, in place.

    The choice is measured, not guessed: on SPARSE_CALIBRATION samples, each candidate for that
    layer in the plan's mode (batched: pyann's dense kernel, the tiled sparse kernel and, when the
    outputs divide into blocks of 4, the 4x1 blocked one, each in the layouts the plan would give
    and take (_batched_candidates); one image at a time: the one-layer per-sample loop dense or
    sparse), timed round-robin, the fastest of 7 each (round_robin), so that a busy machine slows
    them alike. Forced entries skip the measurement. The dense candidate is pyann's dense kernel
    (kernels.dense, w packed as the plan packs it). Each layer needs .w (in, out), .b, .relu; gets
    .sparse (the packing of the chosen sparse kernel, None for dense and zeroskip), .timing, and
    with zeroskip .zero_skip.

    zeroskip (MLPs): every layer also gets the zero-skipping candidates (exact whatever made the
    zeros, a ReLU or an image's blank pixels): "zeroskip"
    (the weights stored dense, each sample's zero inputs skipped: kernels.relu_layer batched, the
    per-sample loop one image at a time) and the sparse x sparse "sparse_zeroskip"
    (kernels.sparse_zeroskip, weights by input: pruned weights and zero inputs both skipped).
    Their speed depends on the input's zeros, so with zeroskip every layer is timed on the
    input it would really see: `calibration` (n, in of layer 0; e.g. training images) or standard
    normal noise, passed through the layers before it (dense NumPy, ReLU where the layer has one;
    all before any timing, on one BLAS thread: pyann.infer.threads). Such a layer records
    .expected_macs: the multiply-adds per calibration sample of its zero-skipping kernel (the
    chosen one, else the sparse x sparse candidate).

    measure (batched; the convolutional plans): a function (i, layer, packed) -> (rows,
    {kernel: function}) that gives layer i's candidates as its plan runs them, on the input that
    plan would give them, `packed` holding the sparse packings by kernel name ("sparse" and, where
    the outputs divide into blocks, "blocked"); it replaces the built-in candidates and the
    SPARSE_CALIBRATION random rows, and each measured layer records .timing_samples = rows."""
    if forced is not None and len(forced) != len(layers):
        raise ValueError(f"layer_kernels needs one entry per weighted layer (Conv2d or Linear, {len(layers)}), got {len(forced)}")
    rng = np.random.default_rng(0)
    inputs = None
    if zeroskip:
        h = rng.standard_normal((SPARSE_CALIBRATION, layers[0].w.shape[0]), dtype=np.float32) \
            if calibration is None else np.ascontiguousarray(calibration, np.float32)
        if h.ndim != 2 or h.shape[1] != layers[0].w.shape[0] or not len(h):
            raise ValueError(f"calibration must be (n >= 1, {layers[0].w.shape[0]}) inputs, got shape {h.shape}")
        inputs = _layer_inputs(layers, h)
    for i, l in enumerate(layers):
        force = None if forced is None else forced[i]
        allowed = ("sparse", "dense") + (("blocked",) if mode == "batched" else ()) + \
            (("zeroskip", "sparse_zeroskip") if zeroskip else ())
        if force not in (None,) + allowed:
            raise ValueError(f"layer_kernels[{i}] must be None or one of {allowed} in mode {mode}, got {force!r}")
        blockable = mode == "batched" and l.w.shape[1] % kernels.SPARSE_BLOCK == 0
        if force == "blocked" and not blockable:
            raise ValueError(f"layer_kernels[{i}]: 'blocked' needs outputs divisible by {kernels.SPARSE_BLOCK}, "
                             f"layer {i} has {l.w.shape[1]}")
        packed = {"sparse": kernels.pack_sparse(l.w)}
        if blockable and force in (None, "blocked"):
            packed["blocked"] = kernels.pack_blocked(l.w)
        if zeroskip and force in (None, "sparse_zeroskip"):
            packed["sparse_zeroskip"] = kernels.pack_sparse_by_input(l.w)
        x = inputs[i] if inputs is not None else None if measure is not None else \
            rng.standard_normal((SPARSE_CALIBRATION, l.w.shape[0]), dtype=np.float32)
        if force is None and measure is not None:
            if mode != "batched":
                raise ValueError("choose_sparse: measure is for batched plans")
            l.timing_samples, fns = measure(i, l, packed)
            l.timing = round_robin(fns)
            force = min(l.timing, key=l.timing.get)
        elif force is None:
            if mode == "batched":
                candidates = _batched_candidates(layers, i, x, packed, zeroskip)
            else:
                one = lambda *layer: lambda: kernels.sparse_mlp_per_sample(x, [(layer[0], l.b, l.relu) + layer[1:]],
                                                                           split_images=split == "images")
                candidates = {"dense": one(l.w), "sparse": one(packed["sparse"])}
                if zeroskip:
                    candidates["zeroskip"] = one(l.w, True)
                    candidates["sparse_zeroskip"] = one(packed["sparse_zeroskip"])
            l.timing = round_robin(candidates)
            force = min(l.timing, key=l.timing.get)
        if zeroskip:
            l.timing_samples = len(x)
        if force == "zeroskip" and x is not None:
            l.expected_macs = np.count_nonzero(x) * l.w.shape[1] / len(x)
        elif "sparse_zeroskip" in packed:
            l.expected_macs = kernels.sparse_zeroskip_macs_reference(x, packed["sparse_zeroskip"]) / len(x)
        l.sparse = packed.get(force)
        if zeroskip:
            l.zero_skip = force == "zeroskip"


def _batched_candidates(layers, i: int, x: np.ndarray, packed: dict, zeroskip: bool) -> dict:
    """Layer i's batched candidates, each timed from the layout the layer before leaves (the plan
    keeps consecutive sparse layers in tiles of 64 samples: after a sparse or blocked layer the
    input is tiled, else rows) to the layout it leaves itself (tiles for sparse and blocked, rows
    for the others; the last layer's tiles back to rows, as the plan ends). A conversion from
    tiles to rows is charged to the row kernel that needs it. Timing every sparse candidate from
    rows to rows instead added the same conversions to each, which on 512 samples hid the kernels'
    own difference (a 4x1-blocked kernel executing 3x the multiply-adds of the sparse one on an
    unstructured layer looked as fast)."""
    l, n, last = layers[i], len(x), i == len(layers) - 1
    prev = layers[i - 1].sparse if i > 0 else None
    tiled_in = prev is not None and not isinstance(prev, kernels.InputSparseWeights)
    xt = kernels.to_tiles(x) if tiled_in else None          # made once, outside the timing
    rows = (lambda: kernels.from_tiles(xt, n)) if tiled_in else (lambda: x)
    finish = (lambda yt: kernels.from_tiles(yt, n)) if last else (lambda yt: yt)

    def tiled(pw):
        if not tiled_in:   # rows in: each tile gathered as it is used (kernels.sparse_tiled_gather)
            return lambda: finish(kernels.sparse_tiled_gather(x, pw, l.b, l.relu))
        return lambda: finish(kernels.sparse_tiled(xt, pw, l.b, l.relu))
    pw = kernels.pack_dense(l.w)   # as the plan will run it
    candidates = {"dense": lambda: kernels.dense(rows(), pw, l.b, relu=l.relu), "sparse": tiled(packed["sparse"])}
    if "blocked" in packed:
        candidates["blocked"] = tiled(packed["blocked"])
    if zeroskip:
        candidates["zeroskip"] = lambda: kernels.relu_layer(rows(), l.w, l.b, None, True, l.relu, assume_finite=True)
        candidates["sparse_zeroskip"] = lambda: kernels.sparse_zeroskip(rows(), packed["sparse_zeroskip"], l.b, l.relu)
    return candidates


def _layer_inputs(layers, x: np.ndarray) -> list:
    """Each layer's input for calibration inputs x: x through the layers before it (NumPy, on one
    BLAS thread so that no spinning BLAS worker is left to slow the timings that follow)."""
    out = [x]
    with one_blas_thread():
        for l in layers[:-1]:
            out.append(np.ascontiguousarray(kernels.dense_reference(out[-1], l.w, l.b, l.relu), np.float32))
    return out


def round_robin(fns: dict, rounds: int = 7) -> dict:
    """The fastest of `rounds` timings of each function (seconds), the functions timed in turn
    each round after a warm-up. The minimum, not the median: on a shared machine noise only ever
    adds time, and one slow round out of five (a median of 5 tolerates two, but not when they
    fall on the same candidate) was enough to flip a choice between two kernels 20 % apart."""
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.min(v)) for k, v in times.items()}
