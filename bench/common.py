"""Shared benchmark machinery: timing, machine description, tables, JSON.

Timings are taken in one process, after warm-up, as the median of several repeats; ratios are
always between rows measured in the same run, never against numbers from another run.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, List, Sequence

import numpy as np

from pyann.io import write_json
from pyann.parallel import available_cores


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> dict:
    """Run fn `warmup` times untimed, then `repeats` times; seconds as median/min/max/all."""
    return time_round_robin([fn], repeats, warmup)[0]


def time_round_robin(fns: Sequence[Callable[[], object]], repeats: int = 5, warmup: int = 1) -> List[dict]:
    """Time several functions side by side: each round runs every function once, so a slow
    spell of a shared machine lands on all of them instead of on whichever row was being timed;
    the ratios of the medians are then far steadier. One dict per function, as time_call."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [{"median": statistics.median(ts), "min": min(ts), "max": max(ts), "all": ts} for ts in times]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> str:
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy without mode="dicts"
        return "unknown"


def machine_info() -> dict:
    from pyann import kernels
    try:
        isa, threads = kernels.isa(), kernels.num_threads()
    except ImportError:
        isa, threads = "not built", 0
    return {"cpu": cpu_model(), "cores": available_cores(), "blas": blas_info(), "numpy": np.__version__,
            "python": platform.python_version(), "pyann_isa": isa, "pyann_threads": threads,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset")}


def machine_line(info: dict) -> str:
    return (f"machine: {info['cpu']}, {info['cores']} cores | BLAS: {info['blas']} | numpy {info['numpy']} "
            f"| pyann kernels: {info['pyann_isa']}, {info['pyann_threads']} OpenMP threads")


def format_table(rows: Sequence[dict], columns: Sequence[tuple]) -> str:
    """columns: (key, header, format spec or callable). Missing values print as '-'."""
    def cell(row, key, fmt):
        v = row.get(key)
        if v is None:
            return "-"
        if callable(fmt):
            return fmt(v)
        return format(v, fmt) if not isinstance(v, str) else v
    cells = [[cell(r, k, f) for k, _, f in columns] for r in rows]
    heads = [h for _, h, _ in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(heads, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for c in cells:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(c, widths))))
    return "\n".join(lines)


def save_results(path, name: str, info: dict, rows: List[dict], extra: dict | None = None) -> Path:
    payload = {"benchmark": name, "machine": info, "rows": rows, **(extra or {})}
    return write_json(path, payload)
