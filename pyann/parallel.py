"""Data-parallel training over CPU cores: each batch is split into shards, one per worker, and
every worker runs forward and backward on its shard in its own thread, on its own replica of
the model; the replicas share the parameter arrays.

Why threads pay off in NumPy: the big operations (copies, ufuncs, BLAS) release the GIL, but
only BLAS is multi-threaded. With one BLAS thread per worker, the im2col copies, BatchNorm and
elementwise work, which run on one core otherwise, run on all of them; on 2 cores a WRN-16-2
step runs ~1.4x faster than one process with two BLAS threads (`python -m bench train`).

Semantics, for a batch of B samples split into shards S_1..S_k:
- parameter gradients are the sums of the shards' gradients; the loss is the mean over the
  whole batch, so dL/dW is the full-batch gradient for any model whose forward treats samples
  independently (Linear, Conv2d, pooling, ReLU, ...);
- BatchNorm in train mode normalises each shard with its own statistics (as PyTorch's
  DataParallel / DDP without SyncBatchNorm, "ghost batch norm"), and the running statistics
  become the average of the shards' updates after every forward, identical in every replica;
- Dropout masks are drawn per replica, from generators that reseed_modules derives from
  (seed, epoch, position, replica).
So workers > 1 is deterministic for a given (seed, workers) but differs from workers == 1
whenever a model has BatchNorm or Dropout.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import List

import numpy as np
from threadpoolctl import threadpool_limits

from .nn.module import Module


def check_workers(workers) -> int:
    """The one check of a `workers` argument (fit, evaluate, predict, DataParallel): a positive
    integer, so that 0 or -1 is an error everywhere rather than quietly run as 1 somewhere."""
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    return int(workers)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


class DataParallel:
    """Run `model` on `workers` shards of every batch at once. Use it as a context manager: on
    entry it limits BLAS to one thread per worker (restored on exit) and starts the threads.

        with DataParallel(model, workers=2) as dp:
            out = dp.forward(x)          # x (B, ...) -> out (B, ...), shards concatenated
            dp.backward(dout)            # fills model's Parameter.grad with the batch gradient

    It offers the running interface of a Module (forward, backward, train, eval, training,
    set_input_grad), so fit() and evaluate() drive it like the model itself. `model` is
    replica 0; the others are rebuilt from model.spec() (so the model must round-trip through
    its spec, as every pyann module does) and point at model's parameter arrays, which an
    optimiser updates in place.
    """

    def __init__(self, model: Module, workers: int):
        workers = check_workers(workers)
        self.model = model
        self.replicas: List[Module] = [model] + [_replica(model) for _ in range(workers - 1)]
        self._params = [r.parameters() for r in self.replicas]
        self._buffers = [[b for _, b in r.named_buffers()] for r in self.replicas]
        self._pool = None
        self._blas = None
        self._offsets = np.array([0])

    @property
    def workers(self) -> int:
        return len(self.replicas)

    def __enter__(self) -> "DataParallel":
        if self.workers > 1:
            self._blas = threadpool_limits(limits=1, user_api="blas")
            self._pool = ThreadPoolExecutor(self.workers - 1, thread_name_prefix="pyann-worker")
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._blas is not None:
            self._blas.restore_original_limits()
            self._blas = None

    # ---- the Module running interface ------------------------------------------------------
    @property
    def training(self) -> bool:
        return self.model.training

    def train(self, mode: bool = True) -> "DataParallel":
        for r in self.replicas:
            r.train(mode)
        return self

    def eval(self) -> "DataParallel":
        return self.train(False)

    def set_input_grad(self, enabled: bool) -> "DataParallel":
        for r in self.replicas:
            r.set_input_grad(enabled)
        return self

    @property
    def input_grad(self) -> bool:
        return self.model.input_grad

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (B, ...) -> the replicas' outputs on consecutive shards of x, concatenated (B, ...)."""
        shards = np.array_split(x, min(self.workers, len(x)))
        self._offsets = np.cumsum([0] + [len(s) for s in shards])   # where backward splits dout
        outs = self._run([(r.forward, s) for r, s in zip(self.replicas, shards)])
        if self.training:
            self._average_buffers()
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    def backward(self, dout: np.ndarray):
        """dout (B, ...) from the batch loss -> dx (B, ...) or None (input_grad off); model's
        Parameter.grad becomes the sum over shards, the gradient of the batch loss."""
        offsets = self._offsets
        if len(dout) != offsets[-1]:
            raise ValueError(f"backward got {len(dout)} samples but the last forward had {offsets[-1]}")
        jobs = [(r.backward, dout[a:b]) for r, a, b in zip(self.replicas, offsets[:-1], offsets[1:])]
        dxs = self._run(jobs)
        for k in range(1, len(jobs)):
            for p, q in zip(self._params[0], self._params[k]):
                p.grad = p.grad + q.grad
        if dxs[0] is None:
            return None
        return dxs[0] if len(dxs) == 1 else np.concatenate(dxs)

    __call__ = forward

    # ---- internals ---------------------------------------------------------------------------
    def _run(self, jobs):
        """Call fn(arg) for each job, the first in this thread, the rest on the pool."""
        if len(jobs) > 1 and self._pool is None:
            raise RuntimeError("DataParallel with workers > 1 runs inside its context: "
                               "`with DataParallel(model, workers) as dp: dp.forward(x)`")
        futures = [self._pool.submit(fn, arg) for fn, arg in jobs[1:]] if len(jobs) > 1 else []
        first = jobs[0][0](jobs[0][1])
        return [first] + [f.result() for f in futures]

    def _average_buffers(self) -> None:
        """Every replica's running statistics <- their mean over the replicas that ran."""
        used = self._buffers[:len(self._offsets) - 1]
        if len(used) == 1:
            return
        for i, main in enumerate(self._buffers[0]):
            main[...] = np.mean([bufs[i] for bufs in used], axis=0)
        for bufs in self._buffers[1:]:
            for main, other in zip(self._buffers[0], bufs):
                other[...] = main


def _replica(model: Module) -> Module:
    """A copy of model's architecture whose parameters are model's own arrays (shared, so an
    in-place optimiser step updates every replica) with separate gradients and buffers."""
    replica = Module.from_spec(model.spec())
    ours, theirs = list(model.named_parameters()), list(replica.named_parameters())
    if [(n, p.data.shape) for n, p in ours] != [(n, q.data.shape) for n, q in theirs]:
        raise ValueError(f"{type(model).__name__} does not rebuild from its spec() with the same "
                         "parameters, so it cannot be replicated for data-parallel training")
    replica.load_state_dict(dict(model.named_buffers()), strict=False)
    for (_, p), (_, q) in zip(ours, theirs):
        q.data = p.data
        q.grad = np.zeros_like(p.data)
    replica.train(model.training)
    replica.set_input_grad(model.input_grad)
    return replica
