"""Training recipes for the CNN models, as plain functions (and `python -m pyann.cnn_recipes NAME`).

cnn3_mnist:  cnn3 on MNIST, SGD + Nesterov momentum, cosine schedule with a short warm-up,
             5 epochs (target >= 99.0% test accuracy).
wrn_cifar10: pre-activation WRN-depth-width on CIFAR-10 (the JPEG-derived copy when the official
             files are absent), SGD + Nesterov, weight decay 5e-4 on weights only, cosine
             schedule with warm-up, random crop (4-pixel reflect padding) + horizontal flip,
             per-channel normalisation; the number of epochs can be derived from a time budget.

Each returns a dict with the History records, the final test accuracy and the model; with
`out` it also saves the model (.npz) and results.json there.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from . import optim
from .data.augment import CropFlip, LowResFirst
from .nn import build, save


def _finish(model, history, test, out, name, config):
    from .train import evaluate
    result = {"recipe": name, "config": config, "history": history.epochs,
              "test": evaluate(model, *test, batch_size=500)}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save(model, out / f"{name}.npz", metadata={"recipe": name, "test": result["test"]})
        (out / "results.json").write_text(json.dumps(result, indent=2))
    result["model"] = model
    return result


def cnn3_mnist(epochs: int = 5, batch_size: int = 128, lr: float = 0.05, momentum: float = 0.9,
               weight_decay: float = 5e-4, seed: int = 0, root=None, out=None, progress=None,
               limit: int | None = None) -> dict:
    """Train cnn3 on MNIST and return {"history", "test", "model", ...}. `limit` trains on the
    first `limit` images only (for smoke tests)."""
    from .data import load_mnist, to_float
    from .train import PrintTable, fit
    ds = load_mnist(root=root)
    mean, std = (0.1307,), (0.3081,)
    x_train, y_train = to_float(ds.x_train, mean, std), ds.y_train
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
    test = (to_float(ds.x_test, mean, std), ds.y_test)
    model = build("cnn3", rng=seed)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)
    schedule = optim.Warmup(optim.CosineLR(lr, epochs), epochs=min(0.2, epochs / 5))
    history = fit(model, (x_train, y_train), epochs, opt, batch_size=batch_size, validation=test,
                  callbacks=[PrintTable()], seed=seed, schedule=schedule, progress=progress)
    config = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "momentum": momentum,
              "weight_decay": weight_decay, "seed": seed}
    return _finish(model, history, test, out, "cnn3_mnist", config)


def wrn_cifar10(depth: int = 16, width: int = 2, dropout: float = 0.0, epochs: int | None = None,
                minutes: float = 60.0, batch_size: int = 128, lr: float = 0.1, momentum: float = 0.9,
                weight_decay: float = 5e-4, label_smoothing: float = 0.0, pad_mode: str = "reflect",
                low_res_fraction: float = 0.0, seed: int = 0, root=None, out=None, progress=None,
                limit: int | None = None) -> dict:
    """Train WRN-depth-width on CIFAR-10 and return {"history", "test", "model", ...}.

    epochs None: time training steps on a sample first, then pick the number of epochs that fits
    `minutes` (the cosine schedule needs the total up front).
    low_res_fraction: the share of the epochs (the first ones) trained on 16x16 downscaled
    batches (progressive resizing, data.LowResFirst); evaluation is always at 32x32.
    """
    from .data import channel_stats, load_cifar10, to_float
    from .train import PrintTable, fit
    ds = load_cifar10(root=root, allow_unofficial=True)
    mean, std = channel_stats(ds.x_train)
    x_train, y_train = to_float(ds.x_train, mean, std), ds.y_train
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
    test = (to_float(ds.x_test, mean, std), ds.y_test)
    model = build("wrn", depth=depth, width=width, dropout=dropout, rng=seed)
    if not 0.0 <= low_res_fraction < 1.0:
        raise ValueError(f"low_res_fraction must be in [0, 1), got {low_res_fraction}")
    augment = CropFlip(4, pad_mode)
    if epochs is None:
        epochs = _epochs_for_budget(model, x_train, y_train, batch_size, augment, minutes, low_res_fraction,
                                    n_eval=len(test[0]))
    low_res_epochs = int(round(low_res_fraction * epochs))
    if low_res_epochs:
        augment = LowResFirst(augment, low_res_epochs, 2)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)
    schedule = optim.Warmup(optim.CosineLR(lr, epochs), epochs=min(1.0, epochs / 10))
    history = fit(model, (x_train, y_train), epochs, opt, batch_size=batch_size, validation=test,
                  callbacks=[PrintTable()], seed=seed, schedule=schedule, label_smoothing=label_smoothing,
                  augment=augment, checkpoint_dir=out, resume=out is not None, progress=progress)
    config = {"depth": depth, "width": width, "dropout": dropout, "epochs": epochs,
              "batch_size": batch_size, "lr": lr, "momentum": momentum, "weight_decay": weight_decay,
              "label_smoothing": label_smoothing, "pad_mode": pad_mode, "seed": seed,
              "low_res_epochs": low_res_epochs, "minutes_budget": minutes,
              "official_data": ds.official}
    return _finish(model, history, test, out, f"wrn{depth}_{width}_cifar10", config)


def _epochs_for_budget(model, x, y, batch_size, augment, minutes, low_res_fraction=0.0, steps=5,
                       n_eval=10000):
    """Time a few training steps (after one warm-up) on a throw-away copy of the model, at full
    and (if low_res_fraction) half resolution, and an evaluation pass, and return the number of
    whole epochs, each followed by evaluating n_eval images, that fit in `minutes` with that
    share at half resolution (3% kept for the rest: loading, checkpoints)."""
    full = _epoch_seconds(model, x, y, batch_size, augment, steps)
    half = _epoch_seconds(model, x, y, batch_size, LowResFirst(augment, 1, 2), steps) if low_res_fraction else full
    evaluation = _eval_seconds(model, x, batch_size, n_eval)
    per_epoch = low_res_fraction * half + (1 - low_res_fraction) * full + evaluation
    epochs = max(1, int(minutes * 60 * 0.97 / per_epoch))
    print(f"~{full / 60:.1f} min per epoch at 32x32, ~{half / 60:.1f} at 16x16, ~{evaluation / 60:.1f} to "
          f"evaluate: {epochs} epochs ({low_res_fraction:.0%} at 16x16) fit in {minutes:g} minutes", flush=True)
    return epochs


def _eval_seconds(model, x, batch_size, n_eval):
    """Seconds to evaluate n_eval images (forward only, eval mode), from two timed batches."""
    from .nn import Module
    probe = Module.from_spec(model.spec()).eval()
    xb = x[:batch_size]
    probe.forward(xb)
    t0 = time.perf_counter()
    probe.forward(xb)
    return (time.perf_counter() - t0) * math.ceil(n_eval / len(xb))


def _epoch_seconds(model, x, y, batch_size, augment, steps):
    """Seconds of one epoch of training steps, from the median of `steps` timed steps."""
    from . import ops
    from .nn import Module
    probe = Module.from_spec(model.spec()).set_input_grad(False)   # as in fit()
    opt = optim.SGD(probe.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        xb = augment(x[i * batch_size:(i + 1) * batch_size], rng)
        out = probe.forward(xb)
        _, cache = ops.softmax_cross_entropy_forward(out, y[i * batch_size:(i + 1) * batch_size])
        probe.backward(ops.softmax_cross_entropy_backward(cache).astype(np.float32))
        opt.step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:])) * math.ceil(len(x) / batch_size)


RECIPES = {"cnn3-mnist": cnn3_mnist, "wrn-cifar10": wrn_cifar10}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyann.cnn_recipes", description=__doc__.split("\n")[0])
    parser.add_argument("recipe", choices=sorted(RECIPES))
    parser.add_argument("--epochs", type=int, default=None, help="default: 5 (cnn3); from --minutes (wrn)")
    parser.add_argument("--minutes", type=float, default=60.0, help="wrn time budget when --epochs is not given")
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--width", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--low-res-fraction", type=float, default=0.0,
                        help="wrn: share of the epochs (the first) trained at 16x16 (progressive resizing)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--out", default=None, help="folder for the model, results.json (and wrn checkpoints)")
    args = parser.parse_args(argv)
    kwargs = {"seed": args.seed, "out": args.out, "limit": args.limit}
    for key in ("epochs", "batch_size", "lr"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    if args.recipe == "wrn-cifar10":
        kwargs.update(depth=args.depth, width=args.width, dropout=args.dropout, minutes=args.minutes,
                      low_res_fraction=args.low_res_fraction)
    result = RECIPES[args.recipe](**kwargs)
    print(f"test accuracy {100 * result['test']['accuracy']:.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
