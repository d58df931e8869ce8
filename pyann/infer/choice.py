"""Choosing a layer's kernel by measurement: dense against the sparse kernels, on this machine,
for that layer, timed round-robin (shared by the MLP and the convolutional plans)."""
from __future__ import annotations

import time

import numpy as np

from .. import kernels

SPARSE_CALIBRATION = 512   # samples timed per layer when choosing sparse or dense


def choose_sparse(layers, forced, mode: str, split: str, dense: str = "pyann") -> None:
    """Give each layer its sparse packing where a sparse kernel is faster, in place.

    The choice is measured, not guessed: on SPARSE_CALIBRATION random samples, each candidate
    for that layer in the plan's mode (batched: pyann's dense kernel, the tiled sparse kernel and,
    when the outputs divide into blocks of 4, the 4x1 blocked one, the tile conversion included;
    one image at a time: the one-layer per-sample loop dense or sparse), timed round-robin, the
    median of 5 each, so that a busy machine slows them alike. Forced entries skip the measurement.
    dense: the dense candidate, "pyann" (kernels.dense) or "numpy" (x @ w, OpenBLAS) - what the
    plan would run instead. Each layer needs .w (in, out), .b, .relu; gets .sparse and .timing."""
    if forced is not None and len(forced) != len(layers):
        raise ValueError(f"layer_kernels needs one entry per weighted layer (Conv2d or Linear, {len(layers)}), got {len(forced)}")
    rng = np.random.default_rng(0)
    for i, l in enumerate(layers):
        force = None if forced is None else forced[i]
        allowed = ("sparse", "dense") + (("blocked",) if mode == "batched" else ())
        if force not in (None,) + allowed:
            raise ValueError(f"layer_kernels[{i}] must be None or one of {allowed} in mode {mode}, got {force!r}")
        blockable = mode == "batched" and l.w.shape[1] % kernels.SPARSE_BLOCK == 0
        if force == "blocked" and not blockable:
            raise ValueError(f"layer_kernels[{i}]: 'blocked' needs outputs divisible by {kernels.SPARSE_BLOCK}, "
                             f"layer {i} has {l.w.shape[1]}")
        packed = {"sparse": kernels.pack_sparse(l.w)}
        if blockable and force in (None, "blocked"):
            packed["blocked"] = kernels.pack_blocked(l.w)
        if force is None:
            x = rng.standard_normal((SPARSE_CALIBRATION, l.w.shape[0]), dtype=np.float32)
            if mode == "batched":
                tiled = lambda run, pw: lambda: kernels.from_tiles(run(kernels.to_tiles(x), pw, l.b, l.relu), len(x))
                dense_run = (lambda: kernels.dense(x, l.w, l.b, relu=l.relu)) if dense == "pyann" \
                    else (lambda: np.maximum(x @ l.w, 0) if l.relu else x @ l.w)
                candidates = {"dense": dense_run,
                              "sparse": tiled(kernels.sparse_linear_tiled, packed["sparse"])}
                if "blocked" in packed:
                    candidates["blocked"] = tiled(kernels.sparse_blocked_tiled, packed["blocked"])
            else:
                one = lambda w: lambda: kernels.sparse_mlp_per_sample(x, [(w, l.b, l.relu)], split_images=split == "images")
                candidates = {"dense": one(l.w), "sparse": one(packed["sparse"])}
            l.timing = round_robin(candidates)
            force = min(l.timing, key=l.timing.get)
        l.sparse = packed.get(force)


def round_robin(fns: dict, rounds: int = 5) -> dict:
    """Median seconds of each function, the functions timed in turn each round after a warm-up."""
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}
