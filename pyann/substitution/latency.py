"""Latency of candidate operations at their positions, and of whole networks, measured with
pyann's own forward on this CPU (eval mode, random input of the right shape).

measure_latency times every candidate module at its position and the teacher end to end,
round-robin: each round runs every item once, in an order rotated round by round, so a burst of
machine load (another process, a frequency change) hits all items alike instead of whichever
happened to be timed then; the median over the rounds is reported. BLAS runs with an explicit
thread count (threadpoolctl), recorded with the result next to pyann's OpenMP kernel threads.

`repeats` is an int (every batch size) or {batch: int}: batch 1 is cheap and noisier, so it gets
more rounds; the default keeps WRN-16-2's table (3 positions x ~6 candidates, batch 1 and 128)
near a minute on 2 cores. The result is results.json's "latency" section:

    {"batch_sizes": [1, 128], "repeats": {"1": 25, "128": 7}, "warmup": 1, "threads": 2,
     "kernel_threads": 2, "blas": ["openblas 0.3.27 (2 threads)"],
     "blocks": [{"position": 1, "candidate": "original", "ms": {"1": 0.8, "128": 60.1}}, ...],
     "network": {"1": 9.5, "128": 1800.0}}

("repeats" is a {batch: int} mapping here, where the contract sketch had one int: selection and
report read both.)
"""
from __future__ import annotations

import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

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

    def __init__(self, key, module, x: np.ndarray):
        self.key, self.module, self.x, self.times = key, module, x, []

    def run(self, record: bool) -> None:
        t0 = time.perf_counter()
        self.module.forward(self.x)
        if record:
            self.times.append(time.perf_counter() - t0)

    def median_ms(self) -> float:
        return float(np.median(self.times) * 1000.0)


def _round_robin(items: List[_Timed], repeats: int, warmup: int) -> None:
    """warmup untimed rounds, then `repeats` timed ones; round r starts at item r mod len, so
    no item is always first (cold caches) or always after the heaviest one."""
    for r in range(warmup + repeats):
        k = r % len(items)
        for item in items[k:] + items[:k]:
            item.run(record=r >= warmup)


class _EvalMode:
    """Put modules in eval mode for the timing and give each its own training flag back."""

    def __init__(self, modules):
        self.modules = list(modules)

    def __enter__(self):
        self.was = [m.training for m in self.modules]
        for m in self.modules:
            m.eval()

    def __exit__(self, *exc):
        for m, was in zip(self.modules, self.was):
            m.train(was)


def _threads(threads: Optional[int]) -> int:
    from ..parallel import available_cores
    threads = available_cores() if threads is None else threads
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
                    progress: Optional[Callable[[str], None]] = None) -> dict:
    """Forward latency (median ms) of each candidate at its position and of the teacher end to
    end, at every batch size; see the module docstring for the result's shape.

    candidates_by_position: {pos: {name: module}}; a module's input is a random normal array of
    the teacher's block input shape at pos. Modules run in eval mode (their flags are restored)."""
    from threadpoolctl import threadpool_limits
    threads = _threads(threads)
    table = _with_original(teacher, positions, candidates_by_position)
    rng = np.random.default_rng(seed)
    ms: Dict[tuple, Dict[str, float]] = {}
    modules = [teacher] + [m for row in table.values() for m in row.values()]
    with threadpool_limits(limits=threads, user_api="blas"), _EvalMode(modules):
        record = _thread_record(threads)
        for batch in batch_sizes:
            n = _repeats_for(repeats, batch)
            if progress:
                progress(f"latency: batch {batch}, {n} rounds of {1 + sum(map(len, table.values()))} items")
            items = [_Timed("network", teacher, rng.standard_normal((batch,) + _input_shape(teacher), np.float32))]
            for pos, row in table.items():
                x = rng.standard_normal((batch,) + tuple(teacher.block_shapes[pos - 1][0]), np.float32)
                items += [_Timed((pos, name), module, x) for name, module in row.items()]
            _round_robin(items, n, warmup)
            for item in items:
                ms.setdefault(item.key, {})[str(batch)] = item.median_ms()
    return {"batch_sizes": [int(b) for b in batch_sizes],
            "repeats": {str(b): _repeats_for(repeats, b) for b in batch_sizes}, "warmup": int(warmup), **record,
            "blocks": [{"position": pos, "candidate": name, "ms": ms[(pos, name)]}
                       for pos, row in table.items() for name in row],
            "network": ms["network"]}


def network_latency(model, batch: int, repeats: Union[int, Mapping[int, int], None] = None, warmup: int = 1, threads: Optional[int] = None,
                    seed: int = 0) -> float:
    """Median forward latency (ms) of a whole network (eval mode) on a random batch; used to
    check a selected network's predicted latency against its measured one. Time it with the
    same threads as the table it is compared with."""
    from threadpoolctl import threadpool_limits
    threads = _threads(threads)
    x = np.random.default_rng(seed).standard_normal((batch,) + _input_shape(model), np.float32)
    item = _Timed("network", model, x)
    with threadpool_limits(limits=threads, user_api="blas"), _EvalMode([model]):
        _round_robin([item], _repeats_for(repeats, batch), warmup)
    return item.median_ms()
