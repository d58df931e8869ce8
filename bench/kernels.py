"""`python -m bench kernels`: the dense C kernels against NumPy, batched and one sample at a time,
and the dense floor (issue 13): pyann's batched dense kernel, unpacked and packed, against
OpenBLAS on the same product.

Workload 1: a 784 -> 512 dense layer with fused ReLU (mlp5's first layer) over 10,000 inputs,
every form (batched: NumPy, pyann unpacked, pyann packed; one sample at a time: NumPy and the
GEMV), rows of one mode timed round-robin, at the kernels' default threads, wall clock.

Workload 2, the floor: y = x @ w on 784x512 and 512x512 at batch 10,000 (no bias, no ReLU: the
product OpenBLAS computes), rows "numpy @ (OpenBLAS)", "pyann dense (old)" (kernels.dense on the
unpacked w) and "pyann dense packed" (kernels.dense on kernels.pack_dense(w), packed before
timing, as a compiled plan does), every output preallocated. Each thread count of
--floor-threads is timed separately:
  1     single-threaded, by thread CPU time (time.thread_time around each call): OpenBLAS limited
        to 1 thread with threadpoolctl, pyann's team capped at 1. This stays meaningful on a
        machine other work keeps busy, which wall-clock timing of 2 threads does not.
  n>1   (or "max": the kernels' default team) wall clock, both libraries at n threads.
Rounds round-robin over the three rows, after a warm-up; medians; ratios to OpenBLAS's median
from the same rounds.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from pyann import kernels
from pyann.argtypes import comma_list, positive_int

from .common import format_table, machine_info, machine_line, save_results, time_round_robin

N, IN, OUT = 10_000, 784, 512
FLOOR_SHAPES = ((784, 512), (512, 512))


def _threads(text: str):
    if text.strip() == "max":
        return "max"
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a thread count >= 1 or 'max', got {text!r}") from None


def add_arguments(parser):
    parser.add_argument("--n", type=positive_int, default=N, help="number of input rows")
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--floor-threads", type=comma_list(_threads), default="1,max", metavar="LIST",
                        help="thread counts of the floor rows: 1 is timed by thread CPU time, more "
                             "(or 'max', the default team) by wall clock")
    parser.add_argument("--floor-repeats", type=positive_int, default=11,
                        help="round-robin rounds of the floor rows")
    parser.add_argument("--no-floor", action="store_true", help="leave out the floor rows")
    parser.add_argument("--out", default="bench-results", metavar="DIR", help="folder for kernels.json")
    parser.add_argument("--json", default=None, help=argparse.SUPPRESS)   # the old flag: the JSON file itself


def run(args) -> dict:
    rng = np.random.default_rng(0)
    n = args.n
    x = rng.standard_normal((n, IN), dtype=np.float32)
    w = (rng.standard_normal((IN, OUT), dtype=np.float32) * np.float32(np.sqrt(2 / IN)))
    b = rng.standard_normal(OUT, dtype=np.float32) * np.float32(0.1)
    pw = kernels.pack_dense(w)
    y = np.empty((n, OUT), np.float32)
    y1 = np.empty(OUT, np.float32)

    def numpy_batched():
        np.matmul(x, w, out=y)
        np.add(y, b, out=y)
        np.maximum(y, 0, out=y)

    def numpy_per_sample():
        for i in range(n):
            np.matmul(x[i], w, out=y1)
            np.add(y1, b, out=y1)
            np.maximum(y1, 0, out=y1)

    def c_gemv_from_python():
        for i in range(n):
            kernels.dense_gemv(x[i], w, b, relu=True, out=y1)

    cases = [
        ("numpy dense", "batched", numpy_batched),
        ("pyann C dense", "batched", lambda: kernels.dense(x, w, b, relu=True, out=y)),
        ("pyann C dense packed", "batched", lambda: kernels.dense(x, pw, b, relu=True, out=y)),
        ("numpy dense (python loop)", "one sample", numpy_per_sample),
        ("pyann C GEMV (python loop)", "one sample", c_gemv_from_python),
        ("pyann C GEMV (loop in C)", "one sample", lambda: kernels.dense_per_sample(x, w, b, relu=True, out=y)),
    ]
    # The check that the rows compute the same thing, on the same data, before timing them.
    ref = kernels.dense_reference(x[:64], w, b, relu=True)
    for got in (kernels.dense(x[:64], w, b, relu=True), kernels.dense(x[:64], pw, b, relu=True),
                kernels.dense_per_sample(x[:64], w, b, relu=True)):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)

    flops = 2.0 * n * IN * OUT
    rows = []
    for mode, repeats in (("batched", args.repeats), ("one sample", max(3, args.repeats // 2))):
        group = [c for c in cases if c[1] == mode]
        for (name, _, _), t in zip(group, time_round_robin([fn for _, _, fn in group], repeats=repeats)):
            rows.append({"kernel": name, "mode": mode, "seconds": t["median"], "images_per_s": n / t["median"],
                         "gflops": flops / t["median"] / 1e9, "timings": t})
    for r in rows:
        base = next(b for b in rows if b["mode"] == r["mode"] and b["kernel"].startswith("numpy"))
        r["speedup_vs_numpy"] = base["seconds"] / r["seconds"]

    info = machine_info()
    print(f"dense layer {IN} -> {OUT} + ReLU, {n} inputs, rows of a mode round-robin, median of repeats after "
          f"warm-up, {kernels.num_threads()} threads, wall clock")
    print(machine_line(info))
    print(format_table(rows, [("kernel", "kernel", "s"), ("mode", "mode", "s"), ("seconds", "seconds", ".4f"),
                              ("images_per_s", "images/s", ",.0f"), ("gflops", "GFLOP/s", ".1f"),
                              ("speedup_vs_numpy", "vs numpy (same mode)", ".2f")]))
    extra = {"workload": {"n": n, "in": IN, "out": OUT}}
    if not args.no_floor:
        floor_rows = floor(n, args.floor_threads, args.floor_repeats)
        extra["floor"] = {"method": FLOOR_METHOD, "isa": kernels.isa(), "rows": floor_rows}
    target = args.json or Path(args.out) / "kernels.json"
    path = save_results(target, "kernels", info, rows, extra)
    print(f"wrote {path}")
    return {"rows": rows, **({"floor": extra["floor"]["rows"]} if "floor" in extra else {})}


FLOOR_METHOD = ("y = x @ w into a preallocated y; rows round-robin after a warm-up, median of the rounds; "
                "1 thread: thread CPU time (time.thread_time), OpenBLAS at 1 thread (threadpoolctl), pyann's "
                "team capped at 1; more threads: wall clock (time.perf_counter), both libraries at that count")


def floor(n: int, thread_counts, repeats: int, shapes=FLOOR_SHAPES, seed: int = 0) -> list:
    """The floor rows: per shape and thread count, OpenBLAS, pyann dense unpacked and packed."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    rows = []
    for d_in, d_out in shapes:
        x = rng.standard_normal((n, d_in), dtype=np.float32)
        w = rng.standard_normal((d_in, d_out), dtype=np.float32) * np.float32(np.sqrt(2 / d_in))
        pw = kernels.pack_dense(w)
        y = np.empty((n, d_out), np.float32)
        ref = x[:64] @ w
        for got in (kernels.dense(x[:64], w), kernels.dense(x[:64], pw)):
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
        cases = [("numpy @ (OpenBLAS)", lambda: np.matmul(x, w, out=y)),
                 ("pyann dense (old)", lambda: kernels.dense(x, w, out=y)),
                 ("pyann dense packed", lambda: kernels.dense(x, pw, out=y))]
        for threads in thread_counts:
            count = kernels.num_threads() if threads == "max" else int(threads)
            clock = time.thread_time if count == 1 else time.perf_counter
            try:
                kernels.set_max_threads(count)
                with threadpool_limits(count):
                    times = time_round_robin([fn for _, fn in cases], repeats=repeats, clock=clock)
            finally:
                kernels.set_max_threads(0)
            base = times[0]["median"]
            for (name, _), t in zip(cases, times):
                rows.append({"shape": f"{d_in}x{d_out}", "n": n, "kernel": name, "threads": count,
                             "clock": "thread CPU" if count == 1 else "wall", "seconds": t["median"],
                             "gflops": 2.0 * n * d_in * d_out / t["median"] / 1e9,
                             "vs_openblas": base / t["median"], "timings": t})
    print(f"\ndense floor: y = x @ w, batch {n}, {repeats} rounds round-robin, medians; 1 thread by thread CPU "
          f"time (OpenBLAS limited by threadpoolctl), more threads by wall clock")
    print(format_table(rows, [("shape", "shape", "s"), ("threads", "threads", "d"), ("clock", "clock", "s"),
                              ("kernel", "kernel", "s"), ("seconds", "seconds", ".4f"), ("gflops", "GFLOP/s", ".1f"),
                              ("vs_openblas", "vs OpenBLAS", ".3f")]))
    return rows
