"""`python -m bench kernels`: the dense C kernels against NumPy, batched and one sample at a time.

Workload: a 784 -> 512 dense layer with fused ReLU (mlp5's first layer) over 10,000 inputs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pyann import kernels
from pyann.argtypes import positive_int

from .common import format_table, machine_info, machine_line, save_results, time_call

N, IN, OUT = 10_000, 784, 512


def add_arguments(parser):
    import argparse
    parser.add_argument("--n", type=positive_int, default=N, help="number of input rows")
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--out", default="bench-results", metavar="DIR", help="folder for kernels.json")
    parser.add_argument("--json", default=None, help=argparse.SUPPRESS)   # the old flag: the JSON file itself


def run(args) -> dict:
    rng = np.random.default_rng(0)
    n = args.n
    x = rng.standard_normal((n, IN), dtype=np.float32)
    w = (rng.standard_normal((IN, OUT), dtype=np.float32) * np.float32(np.sqrt(2 / IN)))
    b = rng.standard_normal(OUT, dtype=np.float32) * np.float32(0.1)
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
        ("numpy dense (python loop)", "one sample", numpy_per_sample),
        ("pyann C GEMV (python loop)", "one sample", c_gemv_from_python),
        ("pyann C GEMV (loop in C)", "one sample", lambda: kernels.dense_per_sample(x, w, b, relu=True, out=y)),
    ]
    # The check that the rows compute the same thing, on the same data, before timing them.
    ref = kernels.dense_reference(x[:64], w, b, relu=True)
    for got in (kernels.dense(x[:64], w, b, relu=True), kernels.dense_per_sample(x[:64], w, b, relu=True)):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)

    flops = 2.0 * n * IN * OUT
    rows = []
    for name, mode, fn in cases:
        t = time_call(fn, repeats=args.repeats if mode == "batched" else max(3, args.repeats // 2))
        rows.append({"kernel": name, "mode": mode, "seconds": t["median"], "images_per_s": n / t["median"],
                     "gflops": flops / t["median"] / 1e9, "timings": t})
    for r in rows:
        base = next(b for b in rows if b["mode"] == r["mode"] and b["kernel"].startswith("numpy"))
        r["speedup_vs_numpy"] = base["seconds"] / r["seconds"]

    info = machine_info()
    print(f"dense layer {IN} -> {OUT} + ReLU, {n} inputs, median of repeats after warm-up")
    print(machine_line(info))
    print(format_table(rows, [("kernel", "kernel", "s"), ("mode", "mode", "s"), ("seconds", "seconds", ".4f"),
                              ("images_per_s", "images/s", ",.0f"), ("gflops", "GFLOP/s", ".1f"),
                              ("speedup_vs_numpy", "vs numpy (same mode)", ".2f")]))
    target = args.json or Path(args.out) / "kernels.json"
    path = save_results(target, "kernels", info, rows, {"workload": {"n": n, "in": IN, "out": OUT}})
    print(f"wrote {path}")
    return {"rows": rows}
