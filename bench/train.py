"""`python -m bench train`: one training step (forward + backward + SGD update) per model, in
images/s, pyann against PyTorch CPU on the same architecture, measured in the same run.

Workloads: cnn3 on MNIST-shaped batches (N, 1, 28, 28) and WRN-16-2 on (N, 3, 32, 32), batch
128, softmax cross-entropy, SGD with Nesterov momentum 0.9 and weight decay 5e-4, float32.
pyann rows: one process with every BLAS thread (the default), with one BLAS thread, and
data-parallel (pyann.parallel.DataParallel: one worker thread per core, one BLAS thread each),
as fit(workers=) trains.
PyTorch is optional (a peer, never a dependency): its rows say "not installed" without it.
"""
from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from pyann import nn, ops, optim
from pyann.argtypes import comma_list, non_negative_int, positive_int
from pyann.parallel import DataParallel, available_cores

from .common import format_table, machine_info, machine_line, save_results

MODELS = {"cnn3": ((1, 28, 28), {}), "wrn16_2": ((3, 32, 32), {"depth": 16, "width": 2})}


def _model_name(text: str) -> str:
    """cnn3 or wrn (sized by --depth/--width, as in `pyann wrn-cifar10`); wrn16_2 is the old name."""
    if text not in ("cnn3", "wrn") and text not in MODELS:
        raise argparse.ArgumentTypeError(f"unknown model {text!r}; choose from cnn3, wrn")
    return text


def add_arguments(parser):
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--batch", dest="batch_size", type=positive_int, help=argparse.SUPPRESS)   # the old name
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--warmup", type=non_negative_int, default=2)
    parser.add_argument("--models", type=comma_list(_model_name), default="cnn3,wrn",
                        help="comma-separated: cnn3, wrn (sized by --depth and --width)")
    parser.add_argument("--depth", type=positive_int, default=16, help="depth of the wrn model")
    parser.add_argument("--width", type=positive_int, default=2, help="width of the wrn model")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows")
    parser.add_argument("--no-single-thread", action="store_true",
                        help="skip the extra pyann row with BLAS limited to one thread")
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="threads of the data-parallel pyann row (default: one per core; 1 skips the row)")
    parser.add_argument("--out", default="bench-results", metavar="DIR", help="folder for train.json")
    parser.add_argument("--json", default=None, help=argparse.SUPPRESS)   # the old flag: the JSON file itself


def _resolve_models(args) -> list:
    """--models with wrn named by its size (wrn16_2), registered in MODELS."""
    names = []
    for name in args.models:
        if name == "wrn":
            name = f"wrn{args.depth}_{args.width}"
            MODELS.setdefault(name, ((3, 32, 32), {"depth": args.depth, "width": args.width}))
        names.append(name)
    return names


def pyann_step(name, batch, rng, workers=1):
    """A training step of pyann; workers > 1 runs it data-parallel, entering DataParallel's
    context (thread pool, BLAS limit) in every step, so its small cost is timed too."""
    shape, kwargs = MODELS[name]
    model = nn.build("wrn" if name.startswith("wrn") else name, rng=0, **kwargs)
    model.set_input_grad(False)   # as fit() does: the gradient of the data is never used
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    runner = DataParallel(model, workers)
    x = rng.standard_normal((batch,) + shape, dtype=np.float32)
    y = rng.integers(0, 10, batch)

    def step():
        with runner:
            out = runner.forward(x)
            _, cache = ops.softmax_cross_entropy_forward(out, y)
            runner.backward(ops.softmax_cross_entropy_backward(cache))
            opt.step()
    return step


def torch_model(name):
    """The same architectures in PyTorch (pre-activation WRN as in pyann.nn.wrn)."""
    import torch.nn as tnn
    if name == "cnn3":
        return tnn.Sequential(tnn.Conv2d(1, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                              tnn.Conv2d(32, 64, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                              tnn.Flatten(), tnn.Linear(3136, 10))

    class Block(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.bn1, self.conv1 = tnn.BatchNorm2d(cin), tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn2, self.conv2 = tnn.BatchNorm2d(cout), tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.shortcut = (tnn.Conv2d(cin, cout, 1, stride, bias=False)
                             if cin != cout or stride != 1 else None)

        def forward(self, x):
            o = self.bn1(x).relu()
            y = self.conv2(self.bn2(self.conv1(o)).relu())
            return y + (x if self.shortcut is None else self.shortcut(o))

    _, kwargs = MODELS[name]
    n, k = (kwargs["depth"] - 4) // 6, kwargs["width"]
    layers, cin = [tnn.Conv2d(3, 16, 3, 1, 1, bias=False)], 16
    for cout, stride in ((16 * k, 1), (32 * k, 2), (64 * k, 2)):
        for i in range(n):
            layers.append(Block(cin, cout, stride if i == 0 else 1))
            cin = cout
    layers += [tnn.BatchNorm2d(cin), tnn.ReLU(), tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(cin, 10)]
    return tnn.Sequential(*layers)


def torch_step(name, batch, rng):
    import torch
    model = torch_model(name).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    shape, _ = MODELS[name]
    x = torch.from_numpy(rng.standard_normal((batch,) + shape, dtype=np.float32))
    y = torch.from_numpy(rng.integers(0, 10, batch))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    return step


def _blas_threads():
    """The thread count of NumPy's BLAS, or None when threadpoolctl cannot see it."""
    return max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=None)


def _interleaved(steps, repeats, warmup):
    """Time each (step, blas_threads) round-robin, so that a load change on a shared machine
    hits every row alike; returns one time_call-style dict per step. blas_threads None leaves
    the BLAS thread count as it is."""
    def once(fn, threads):
        with threadpool_limits(threads, user_api="blas") if threads else nullcontext():
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
    for fn, threads in steps:
        for _ in range(warmup):
            once(fn, threads)
    times = [[] for _ in steps]
    for _ in range(repeats):
        for i, (fn, threads) in enumerate(steps):
            times[i].append(once(fn, threads))
    return [{"median": statistics.median(t), "min": min(t), "max": max(t), "all": t} for t in times]


def run(args) -> dict:
    try:
        import torch
        torch_version = None if args.no_torch else torch.__version__
    except ImportError:
        torch_version = None
    missing = "skipped (--no-torch)" if args.no_torch else "not installed"
    blas_threads = _blas_threads()
    workers = available_cores() if args.workers is None else args.workers
    rng = np.random.default_rng(0)
    rows = []
    args.batch = args.batch_size
    for name in _resolve_models(args):
        configs = [("pyann (NumPy)", pyann_step(name, args.batch, rng), None)]
        if not args.no_single_thread and (blas_threads or 0) > 1:
            # OpenBLAS threads spin-wait: on a busy machine one thread can beat two by 2-3x
            configs.append(("pyann (NumPy, 1 BLAS thread)", pyann_step(name, args.batch, rng), 1))
        if workers > 1:
            configs.append((f"pyann (NumPy, {workers} data-parallel workers)",
                            pyann_step(name, args.batch, rng, workers), None))
        if torch_version is not None:
            configs.append((f"PyTorch {torch_version} CPU ({torch.get_num_threads()} threads)",
                            torch_step(name, args.batch, rng), None))
        timings = _interleaved([(fn, th) for _, fn, th in configs], args.repeats, args.warmup)
        model_rows = [{"model": name, "engine": engine, "seconds": t["median"],
                       "images_per_s": args.batch / t["median"], "timings": t}
                      for (engine, _, _), t in zip(configs, timings)]
        if torch_version is None:
            model_rows.append({"model": name, "engine": "PyTorch CPU", "note": missing})
        else:
            for row in model_rows[:-1]:
                row["slowdown_vs_torch"] = row["seconds"] / model_rows[-1]["seconds"]
        rows.extend(model_rows)

    info = machine_info()
    if torch_version is not None:
        info["torch"] = torch_version
    print(f"training step (forward + backward + SGD nesterov/wd update), batch {args.batch}, float32, "
          f"median of {args.repeats} after {args.warmup} warm-up, rows timed round-robin")
    print(machine_line(info))
    print(format_table(rows, [("model", "model", "s"), ("engine", "engine", "s"),
                              ("seconds", "s/step", ".3f"), ("images_per_s", "images/s", ",.0f"),
                              ("slowdown_vs_torch", "x slower than torch", ".2f"), ("note", "note", "s")]))
    path = save_results(args.json or f"{args.out}/train.json", "train", info, rows, {"workload": {"batch": args.batch, "blas_threads": blas_threads, "workers": workers}})
    print(f"wrote {path}")
    return {"rows": rows}
