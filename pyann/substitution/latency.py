"""Latency of candidate operations at their positions, and of whole networks, measured with
pyann's own forward on this CPU (eval mode, random input of the right shape).

measure_latency times every candidate module at its position and the teacher end to end,
round-robin: each round runs every item once, in an order rotated round by round, so a burst of
machine load (another process, a frequency change) hits all items alike instead of whichever
happened to be timed then; the median over the rounds is reported. An item faster than
min_sample_ms runs several times per sample (the count set in the warm-up round, as timeit's
autorange), so a 2 us identity is not timed at the clock's resolution.

Threads: BLAS (threadpoolctl) and pyann's OpenMP kernels run with an explicit thread count,
recorded with the result. The default is ONE thread: on a 2-core machine with anything else
running, two threads made a 0.3 ms block take 15-70 ms now and then (a BLAS or OpenMP thread
waiting for a core), enough to make the blocks' sum exceed the whole network's time; one thread
gave stable tables (measured on WRN-16-2 at load ~8: max block 0.8 ms vs 39 ms with 2).

`repeats` is an int (every batch size) or {batch: int}: batch 1 is cheap and noisier, so it gets
more rounds; the default keeps WRN-16-2's table (3 positions x ~6 candidates, batch 1 and 128)
near a minute on 2 cores. The result is results.json's "latency" section:

    {"batch_sizes": [1, 128], "repeats": {"1": 25, "128": 7}, "warmup": 1, "min_sample_ms": 1.0,
     "threads": 1, "kernel_threads": 1, "blas": ["openblas 0.3.31 (1 threads)"],
     "blocks": [{"position": 1, "candidate": "original", "ms": {"1": 0.8, "128": 60.1}}, ...],
     "network": {"1": 9.5, "128": 1800.0}}

("repeats" is a {batch: int} mapping here, where the contract sketch had one int: selection and
report read both.)
"""
from __future__ import annotations

import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..nn.module import eval_mode

DEFAULT_REPEATS = {1: 25, 128: 7}


def _repeats_for(repeats: Union[int, Mapping[int, int], None], batch: int) -> int:
    if repeats is None:
        repeats = DEFAULT_REPEATS
    if not isinstance(repeats, Mapping):
        repeats = {batch: repeats}
    n = repeats.get(batch, repeats.get(str(batch)))
    if n is None:
        # a batch size the mapping does not name: as many rounds as the nearest one it does
        n = repeats[min(repeats, key=lambda b: abs(int(b) - batch))]
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"latency repeats must be a positive integer, got {n!r} for batch {batch}")
    return int(n)


def _input_shape(model) -> Tuple[int, int, int]:
    """(C, H, W) of a network's input: a WideResNet knows it; other models say input_shape."""
    if hasattr(model, "input_shape"):
        return tuple(model.input_shape)
    return (model.in_channels, model.input_size, model.input_size)


class _Timed:
    """One item of a round: a module, its input, the times measured so far (seconds)."""

    def __init__(self, key, module, x: np.ndarray, min_sample_s: float = 0.0):
        self.key, self.module, self.x, self.times = key, module, x, []
        self.number, self.min_sample_s = 1, min_sample_s

    def run(self, record: bool) -> None:
        n = self.number
        t0 = time.perf_counter()
        for _ in range(n):
            self.module.forward(self.x)
        elapsed = time.perf_counter() - t0
        if record:
            self.times.append(elapsed / n)
        else:   # a warm-up run sets how many calls make one sample of at least min_sample_s
            self.number = int(min(1000, max(1, np.ceil(self.min_sample_s / max(elapsed / n, 1e-9)))))

    def median_ms(self) -> float:
        return float(np.median(self.times) * 1000.0)


def _round_robin(items: List[_Timed], repeats: int, warmup: int) -> None:
    """warmup untimed rounds, then `repeats` timed ones; round r starts at item r mod len, so
    no item is always first (cold caches) or always after the heaviest one."""
    for r in range(warmup + repeats):
        k = r % len(items)
        for item in items[k:] + items[:k]:
            item.run(record=r >= warmup)


def _threads(threads: Optional[int]) -> int:
    threads = 1 if threads is None else threads
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"latency threads must be a positive integer, got {threads!r}")
    return int(threads)


def _blas_description() -> List[str]:
    from threadpoolctl import threadpool_info
    return [f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
            for i in threadpool_info() if i.get("user_api") == "blas"]


def _thread_record(threads: int) -> dict:
    from .. import kernels
    return {"threads": threads, "kernel_threads": kernels.num_threads(), "blas": _blas_description()}


class _Threads:
    """BLAS and pyann's OpenMP kernels limited to `threads` for the timing, then given back."""

    def __init__(self, threads: int):
        self.threads = threads

    def __enter__(self):
        from threadpoolctl import threadpool_limits
        from .. import kernels
        self.blas = threadpool_limits(limits=self.threads, user_api="blas")
        # no getter for the kernels' cap: the thread count they used is restored as the cap,
        # which gives them the same count afterwards
        self.kernel_threads = kernels.num_threads()
        kernels.set_max_threads(self.threads)
        return self

    def __exit__(self, *exc):
        from .. import kernels
        kernels.set_max_threads(self.kernel_threads)
        self.blas.restore_original_limits()


def _with_original(teacher, positions, candidates_by_position) -> Dict[int, Dict[str, object]]:
    """{pos: {name: module}}, with the teacher's own block as "original" where the caller left it
    out: the selection's latency model needs every position's original block."""
    table = {}
    for pos in positions:
        given = dict(candidates_by_position.get(pos, candidates_by_position.get(str(pos), {})))
        table[int(pos)] = {"original": teacher.block(int(pos)), **given} if "original" not in given else given
    return table


def measure_latency(teacher, positions: Sequence[int], candidates_by_position: Mapping,
                    batch_sizes: Sequence[int] = (1, 128), repeats: Union[int, Mapping[int, int], None] = None,
                    warmup: int = 1, threads: Optional[int] = None, seed: int = 0,
                    progress: Optional[Callable[[str], None]] = None, min_sample_ms: float = 1.0) -> dict:
    """Forward latency (median ms) of each candidate at its position and of the teacher end to
    end, at every batch size; see the module docstring for the result's shape.

    candidates_by_position: {pos: {name: module}}; a module's input is a random normal array of
    the teacher's block input shape at pos. Modules run in eval mode (their flags are restored).
    threads: BLAS and kernel threads during the timing (default 1, see the module docstring)."""
    threads = _threads(threads)
    table = _with_original(teacher, positions, candidates_by_position)
    rng = np.random.default_rng(seed)
    ms: Dict[tuple, Dict[str, float]] = {}
    modules = [teacher] + [m for row in table.values() for m in row.values()]
    with _Threads(threads), eval_mode(*modules):
        record = _thread_record(threads)
        for batch in batch_sizes:
            n = _repeats_for(repeats, batch)
            if progress:
                progress(f"latency: batch {batch}, {n} rounds of {1 + sum(map(len, table.values()))} items")
            least = min_sample_ms / 1000.0
            items = [_Timed("network", teacher, rng.standard_normal((batch,) + _input_shape(teacher), np.float32), least)]
            for pos, row in table.items():
                x = rng.standard_normal((batch,) + tuple(teacher.block_shapes[pos - 1][0]), np.float32)
                items += [_Timed((pos, name), module, x, least) for name, module in row.items()]
            _round_robin(items, n, warmup)
            for item in items:
                ms.setdefault(item.key, {})[str(batch)] = item.median_ms()
    return {"batch_sizes": [int(b) for b in batch_sizes],
            "repeats": {str(b): _repeats_for(repeats, b) for b in batch_sizes}, "warmup": int(warmup),
            "min_sample_ms": float(min_sample_ms), **record,
            "blocks": [{"position": pos, "candidate": name, "ms": ms[(pos, name)]}
                       for pos, row in table.items() for name in row],
            "network": ms["network"]}


def network_latency(model, batch: int, repeats: Union[int, Mapping[int, int], None] = None, warmup: int = 1,
                    threads: Optional[int] = None, seed: int = 0) -> float:
    """Median forward latency (ms) of a whole network (eval mode) on a random batch; used to
    check a selected network's predicted latency against its measured one. Time it with the
    same threads as the table it is compared with (both default to 1)."""
    return networks_latency({"model": model}, batch, repeats, warmup, threads, seed)["model"]


def networks_latency(models: Mapping[str, object], batch: int, repeats: Union[int, Mapping[int, int], None] = None,
                     warmup: int = 1, threads: Optional[int] = None, seed: int = 0) -> Dict[str, float]:
    """{name: median ms} of several whole networks timed round-robin on the same input: e.g. the
    teacher and a selected network together, so their ratio is free of the machine's load at
    the moment (a lone measurement taken while the machine is busy is not)."""
    threads = _threads(threads)
    shapes = {_input_shape(m) for m in models.values()}
    if len(shapes) != 1:
        raise ValueError(f"networks_latency: the models take different inputs {sorted(shapes)}")
    x = np.random.default_rng(seed).standard_normal((batch,) + shapes.pop(), np.float32)
    items = [_Timed(name, m, x) for name, m in models.items()]
    with _Threads(threads), eval_mode(*models.values()):
        _round_robin(items, _repeats_for(repeats, batch), warmup)
    return {item.key: item.median_ms() for item in items}
