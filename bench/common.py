"""Shared benchmark machinery: timing, machine description, tables, JSON.

Timings are taken in one process, after warm-up, as the median of several repeats; ratios are
always between rows measured in the same run, never against numbers from another run.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable, List, Sequence


from pyann.io import write_json
from pyann.provenance import blas_info, cpu_model, machine_info, machine_line, provenance  # noqa: F401 (re-exported)


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> dict:
    """Run fn `warmup` times untimed, then `repeats` times; seconds as median/min/max/all."""
    return time_round_robin([fn], repeats, warmup, settle=False)[0]


# Before each timed call: a pause, then one untimed call of the same function. After a
# multi-threaded OpenBLAS call its idle workers spin for about 0.1 s, and an OpenMP kernel started
# in that window ran up to 50x slower here (pyann.infer.threads); torch's and ONNX Runtime's
# pools do the same. Without the pause a row is timed in the wake of the row before it, and which
# row pays depends on the order. The untimed call then wakes the row's own threads (after a pause
# a VM's idle cores take a millisecond or more to wake), so each row is timed as it runs when
# called again and again, as a serving loop calls it.
SETTLE_S = 0.15
# a call this long is timed right after the pause: the wake-up is lost in it
SETTLE_CALL_S = 0.5


def time_round_robin(fns: Sequence[Callable[[], object]], repeats: int = 5, warmup: int = 1,
                     clock: Callable[[], float] = time.perf_counter, settle: bool = True) -> List[dict]:
    """Time several functions side by side: each round runs every function once, so a slow
    spell of a shared machine lands on all of them instead of on whichever row was being timed;
    the ratios of the medians are then far steadier. One dict per function, as time_call.
    clock: wall time by default; time.thread_time for single-threaded code on a busy machine
    (the CPU time this thread got, not the time others took from it). settle: before each timed
    call, SETTLE_S of pause and (for calls under SETTLE_CALL_S) one untimed call (see above)."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            if settle:
                time.sleep(SETTLE_S)
                if not ts or ts[-1] < SETTLE_CALL_S:
                    fn()
            t0 = clock()
            fn()
            ts.append(clock() - t0)
    return [{"median": statistics.median(ts), "min": min(ts), "max": max(ts), "all": ts} for ts in times]


TABLE_WIDTH = 120


def format_table(rows: Sequence[dict], columns: Sequence[tuple], max_width: int = TABLE_WIDTH) -> str:
    """A terminal table drawn by tabulate: text columns left-aligned, numbers right-aligned.

    columns: (key, header, format spec or callable). Missing values print as '-'. A cell is
    text when its value is a str (or its callable's output is not a number); a column is
    numeric when every present value is a number. When the table is wider than `max_width`,
    the text columns are wrapped (widest first, never below 12 characters) until it fits."""
    from tabulate import tabulate

    def cell(row, key, fmt):
        v = row.get(key)
        if v is None:
            return "-"
        if isinstance(v, str):
            return v
        return fmt(v) if callable(fmt) else format(v, fmt)

    # a column is numeric when no present value is text (an all-missing column too: its '-' line up right)
    numeric = [all(not isinstance(r.get(k), str) for r in rows if r.get(k) is not None) for k, _, _ in columns]
    cells = [[cell(r, k, f) for k, _, f in columns] for r in rows]
    heads = [h for _, h, _ in columns]
    align = ["right" if n else "left" for n in numeric]

    def draw(maxw):
        return tabulate(cells, heads, tablefmt="simple", colalign=align, disable_numparse=True,
                        maxcolwidths=maxw, maxheadercolwidths=maxw)

    def longest(texts):
        return max((len(part) for t in texts for part in t.split()), default=1)

    # a header wider than its cells wraps onto at most two lines (never inside a word), so a long
    # header does not widen a column of short numbers
    cell_w = [max((len(c[i]) for c in cells), default=1) for i in range(len(columns))]
    hlimit = [len(h) if len(h) <= cell_w[i] + 2 else max(cell_w[i], longest([h]), -(-len(h) // 2))
              for i, h in enumerate(heads)]
    limits = [None] * len(columns)

    def draw():
        import tabulate as tabulate_module
        padding = tabulate_module.MIN_PADDING
        tabulate_module.MIN_PADDING = 0   # columns as wide as their widest line; 2 spaces between them
        try:
            return tabulate(cells, heads, tablefmt="simple", colalign=align, disable_numparse=True,
                            maxcolwidths=limits, maxheadercolwidths=[l if l is not None else h
                                                                      for l, h in zip(limits, hlimit)])
        finally:
            tabulate_module.MIN_PADDING = padding

    width = lambda t: max((len(line) for line in t.splitlines()), default=0)
    text = draw()
    while width(text) > max_width:
        current = [limits[i] if limits[i] is not None else max(cell_w[i], hlimit[i]) for i in range(len(columns))]
        text_cols = [i for i in range(len(columns)) if not numeric[i] and current[i] > 12]
        if not text_cols:
            break
        i = max(text_cols, key=lambda j: current[j])
        limits[i] = max(12, current[i] - (width(text) - max_width))
        text = draw()
    return text


def save_results(path, name: str, info: dict, rows: List[dict], extra: dict | None = None, dataset=None) -> Path:
    """The benchmark's JSON: its rows, the machine, anything in `extra`, and the provenance
    record (pyann.provenance: version, git commit, command line, machine, dataset identity)."""
    payload = {"benchmark": name, "machine": info, "rows": rows, **(extra or {}),
               "provenance": provenance(dataset=dataset, machine=info)}
    return write_json(path, payload)
