"""Training recipes for the CNN models, as plain functions (and `python -m pyann.cnn_recipes NAME`).

cnn3_mnist:  cnn3 on MNIST, SGD + Nesterov momentum, cosine schedule with a short warm-up,
             5 epochs (target >= 99.0% test accuracy).
wrn_cifar10: pre-activation WRN-depth-width on CIFAR-10 (the JPEG-derived copy when the official
             files are absent), batch 64, SGD + Nesterov, weight decay 5e-4 on weights only,
             label smoothing 0.1, cosine schedule with warm-up, random crop (4-pixel reflect
             padding) + horizontal flip, per-channel normalisation, progressive resizing
             (16x16, 24x24, then 32x32), data-parallel over the cores; the number of epochs
             can come from a time budget.

Each returns a dict with the History records, the final test accuracy and the model; with
`out` it also saves the model (.npz), results.json, report.md and training-curve.png there
(`out` is proved writable before any data is loaded). Both hand fit() their configuration, so
a checkpoint of another run in `out` is refused rather than resumed.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from . import optim
from .argtypes import fraction, positive_float, positive_int, seed as seed_type
from .data.augment import CropFlip, ProgressiveResize
from .io import write_text
from .nn import build, save
from .outputs import OutputFolderError, writable_folder, write_model_and_results
from .parallel import DataParallel, available_cores
from .provenance import stamp


def _finish(model, history, test, out, name, config, target=None, flip_test=False, workers=1, started=None,
            dataset=None):
    """The final test accuracy (the last epoch's evaluation when it was on the whole test set at
    full size), and with flip_test also the accuracy with flip test-time augmentation, which the
    report gives beside the plain one. started: the recipe's time.perf_counter() at its start,
    for the wall-clock minutes of the whole recipe (loading, planning, training, final test)."""
    from .train import evaluate
    last = history.last()
    whole_test = config.get("curve_images") is None
    result = {"recipe": name, "config": config, "history": history.epochs, "target": target}
    stamp(result, dataset=dataset)   # version, commit, command line, machine, dataset identity
    if flip_test:
        result["test"], result["test_flip"] = _test_plain_and_flipped(model, test, workers)
    elif whole_test and "val_acc" in last and last.get("image_size", test[0].shape[-1]) == test[0].shape[-1]:
        result["test"] = {"loss": last["val_loss"], "accuracy": last["val_acc"]}   # the last epoch's evaluation
    else:
        result["test"] = evaluate(model, *test, batch_size=100, workers=workers)
    if started is not None:
        result["wall_minutes"] = (time.perf_counter() - started) / 60
    if out is not None:
        out = Path(out)
        write_model_and_results(out / f"{name}.npz",
                                lambda path: save(model, path, metadata={"recipe": name, "test": result["test"]}),
                                out / "results.json", result)
        write_report(out, result)
    result["model"] = model
    return result


def _test_plain_and_flipped(model, test, workers):
    """(plain, flip) scores of the test set from one pass over its images and one over their
    mirror images (the flip score: the mean of both outputs); "seconds" of the flip one is the
    cost of its extra pass."""
    from . import ops
    from .train import predict
    x, y = test

    def scores(out):
        return {"loss": float(ops.softmax_cross_entropy_forward(out, y)[0]),
                "accuracy": float((out.argmax(axis=1) == y).mean())}
    out = predict(model, x, batch_size=100, workers=workers)
    t0 = time.perf_counter()
    mirrored = predict(model, x[..., ::-1], batch_size=100, workers=workers)
    flip = dict(scores((out + mirrored) / 2), seconds=time.perf_counter() - t0)
    return scores(out), flip


def write_report(out, result: dict) -> None:
    """report.md (the per-epoch table, the time, the final accuracy against the target) and
    training-curve.png in `out`, from a recipe's results.json dict alone."""
    from .plots import plot_training_curve, save_figure
    out = Path(out)
    config, history, target = result["config"], result["history"], result.get("target")
    unofficial = not config.get("official_data", True)
    data = " (JPEG-derived copy, not the official files)" if unofficial else ""
    minutes = sum(e["seconds"] + e.get("eval_seconds", 0.0) for e in history) / 60
    acc = 100 * result["test"]["accuracy"]
    wall = (f" ({result['wall_minutes']:.1f} minutes from start to finish, loading, planning and the final "
            f"test included)") if "wall_minutes" in result else ""
    lines = [f"# {result['recipe']}{data}", "",
             f"Test accuracy **{acc:.2f} %** after {len(history)} epochs, {minutes:.1f} minutes of training "
             f"and evaluation{wall}" + (f"; target {100 * target:g} %: {'met' if acc >= 100 * target else 'missed'}."
                                        if target else "."), "",
             "Config: " + ", ".join(f"{k}={v}" for k, v in config.items()), ""]
    if "test_flip" in result:
        flip = result["test_flip"]
        flip_acc = 100 * flip["accuracy"]
        lines += [f"With flip test-time augmentation (each test image scored as the mean of the outputs "
                  f"for it and its mirror image, {flip['seconds']:.0f} s more): **{flip_acc:.2f} %**"
                  + (f"; target {100 * target:g} %: {'met' if flip_acc >= 100 * target else 'missed'} with it."
                     if target else "."), ""]
    curve = config.get("curve_images")
    test_column = f"test acc (first {curve} images)" if curve else "test acc"
    lines += [f"| epoch | image size | loss | train acc | {test_column} | lr | train s | eval s | minutes so far |",
              "|---|---|---|---|---|---|---|---|---|"]
    elapsed = 0.0
    for e in history:
        elapsed += e["seconds"] + e.get("eval_seconds", 0.0)
        val = f"{100 * e['val_acc']:.2f} %" if e.get("val_acc") is not None else "-"
        lines.append(f"| {e['epoch']} | {e.get('image_size', '-')} | {e['loss']:.4f} | {100 * e['train_acc']:.2f} % "
                     f"| {val} | {e['lr']:.2e} | {e['seconds']:.0f} | {e.get('eval_seconds', 0.0):.0f} "
                     f"| {elapsed / 60:.1f} |")
    lines += ["", "Test accuracy of a reduced-size epoch is measured at that size; the final one at full size"
              + (f", on all test images (the per-epoch curve uses the first {curve})." if curve else "."),
              "", "![training curve](training-curve.png)", ""]
    write_text(out / "report.md", "\n".join(lines))
    finals = {"final test, all images": acc}
    if "test_flip" in result:
        finals["final test with flip TTA"] = 100 * result["test_flip"]["accuracy"]
    elif history and history[-1].get("val_acc") == result["test"]["accuracy"]:
        finals = {}   # the final test is the last epoch's evaluation: the curve's last point already
    save_figure(plot_training_curve(history, None if target is None else 100 * target, finals=finals,
                                    **curve_labels(result)),
                out / "training-curve.png")


def curve_labels(result: dict) -> dict:
    """The training curve's title and series names for a recipe's results: what was trained on
    what, whether the training batches were augmented, and what the per-epoch test measured."""
    config, recipe = result["config"], result["recipe"]
    unofficial = not config.get("official_data", True)
    curve = config.get("curve_images")
    if recipe.startswith("wrn"):
        model, data = f"WRN-{config.get('depth', '?')}-{config.get('width', '?')}", "CIFAR-10"
        data += " (JPEG-derived copy)" if unofficial else ""
        stages = config.get("progressive") or []
        train = "train (crop + flip augmented batches, running mean over the epoch)"
        test = f"test ({f'first {curve} images' if curve else 'all images'}" + \
               (", at the epoch's image size)" if stages else ")")
    else:
        model = recipe.split("_")[0]
        data = "MNIST" + (" (not the official files)" if unofficial else "")
        train = "train (running mean over the epoch's batches)"
        test = f"test ({f'first {curve} images' if curve else 'all test images; the last point is the final result'})"
    return {"title": f"{model} on {data}: accuracy while training", "train_label": train, "test_label": test}


def cnn3_mnist(epochs: int = 5, batch_size: int = 128, lr: float = 0.05, momentum: float = 0.9,
               weight_decay: float = 5e-4, seed: int = 0, root=None, out=None, progress=None,
               limit: int | None = None) -> dict:
    """Train cnn3 on MNIST and return {"history", "test", "model", ...}. `limit` trains on the
    first `limit` images only (for smoke tests)."""
    from .data import load_mnist, to_float
    from .train import PrintTable, fit
    _check_limit(limit)
    if out is not None:
        writable_folder(out)
    ds = load_mnist(root=root)
    mean, std = (0.1307,), (0.3081,)
    x_train, y_train = to_float(ds.x_train, mean, std), ds.y_train
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
    test = (to_float(ds.x_test, mean, std), ds.y_test)
    model = build("cnn3", rng=seed)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)
    schedule = optim.Warmup(optim.CosineLR(lr, epochs), epochs=min(0.2, epochs / 5))
    config = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "momentum": momentum,
              "weight_decay": weight_decay, "seed": seed}
    history = fit(model, (x_train, y_train), epochs, opt, batch_size=batch_size, validation=test,
                  callbacks=[PrintTable()], seed=seed, schedule=schedule, progress=progress,
                  config=dict(config, recipe="cnn3_mnist", dataset="mnist", official_data=ds.official, limit=limit))
    return _finish(model, history, test, out, "cnn3_mnist", config, target=0.99, dataset=ds)


def wrn_cifar10(depth: int = 16, width: int = 2, dropout: float = 0.0, epochs: int | None = None,
                minutes: float = 60.0, batch_size: int = 64, lr: float = 0.05, momentum: float = 0.9,
                weight_decay: float = 5e-4, label_smoothing: float = 0.1, pad_mode: str = "reflect",
                progressive=((16, 3), (24, 4)), eval_batch_size: int = 100, workers: int | None = None,
                curve_images: int | None = 2000, seed: int = 0, root=None, out=None, progress=None,
                limit: int | None = None) -> dict:
    """Train WRN-depth-width on CIFAR-10 and return {"history", "test", "model", ...}.

    progressive: [(size, epochs), ...] low-resolution stages trained first (progressive
      resizing, data.ProgressiveResize: random crop and flip at 32x32, then an area resize),
      each evaluated at its own size; the remaining epochs train at 32x32. () turns it off.
    epochs: all epochs, stages included. None: after the stages, as many 32x32 epochs (at least
      one) as fit `minutes`, worked out from timed steps (the cosine schedule needs the total
      up front).
    The final test accuracy is always measured at 32x32.
    Batch 64 rather than 128: twice the updates per epoch, which counts in a short budget, and
    ~15% more images/s on 2 cores (the im2col buffers stay smaller); lr scaled with it.
    workers: data-parallel threads (fit(workers=)); None: one per core, but no shard under 16
      images, since each shard's BatchNorm uses its own statistics.
    curve_images: the per-epoch evaluation (the training curve) uses the first curve_images
      test images, so that it costs ~1/5 of a full one; the final accuracy is measured on the
      whole test set, plain and with flip test-time augmentation. None: all of them every epoch.
    out: also where the checkpoint is written after every epoch and resumed from; a checkpoint
      of a run with another configuration is refused (train.ResumeMismatchError). When it
      resumes, epochs=None and workers=None take the checkpoint's values: the run keeps the
      plan it started with instead of re-planning from a new timing (which would change the
      cosine schedule's length and so be refused).
    """
    from .data import channel_stats, load_cifar10, to_float
    from .train import CHECKPOINT_NAME, PrintTable, fit, read_checkpoint_config
    started = time.perf_counter()
    _check_limit(limit)
    planned = {}
    if out is not None:
        writable_folder(out)
        if (Path(out) / CHECKPOINT_NAME).exists():
            planned = read_checkpoint_config(Path(out) / CHECKPOINT_NAME) or {}
    if epochs is None and "epochs" in planned:
        epochs = planned["epochs"]
        print(f"resuming the run in {out}: its plan of {epochs} epochs", flush=True)
    if workers is None and "workers" in planned:
        workers = planned["workers"]
    ds = load_cifar10(root=root, allow_unofficial=True)
    mean, std = channel_stats(ds.x_train)
    x_train, y_train = to_float(ds.x_train, mean, std), ds.y_train
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
    test = (to_float(ds.x_test, mean, std), ds.y_test)
    if curve_images is not None and curve_images >= len(test[0]):
        curve_images = None
    curve = test if curve_images is None else (test[0][:curve_images], test[1][:curve_images])
    model = build("wrn", depth=depth, width=width, dropout=dropout, rng=seed)
    if workers is None:
        workers = max(1, min(available_cores(), batch_size // 16))
    stages = [(int(size), int(n)) for size, n in progressive]
    augment = ProgressiveResize(CropFlip(4, pad_mode), stages)
    stage_epochs = sum(n for _, n in stages)
    if epochs is None:
        final_images = 2 * len(test[0])   # the final test: a pass over the images, one over their mirrors
        full = _full_epochs_for_budget(model, x_train, y_train, batch_size, augment, minutes, len(curve[0]),
                                       eval_batch_size, workers, final_images)
        epochs = stage_epochs + full
    if epochs <= stage_epochs:
        raise ValueError(f"wrn_cifar10: {epochs} epochs leave none at full size after the "
                         f"progressive stages {stages} ({stage_epochs} epochs)")
    opt = optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)
    schedule = optim.Warmup(optim.CosineLR(lr, epochs), epochs=min(1.0, epochs / 10))
    run = {"recipe": "wrn_cifar10", "dataset": "cifar10", "official_data": ds.official, "depth": depth,
           "width": width, "dropout": dropout, "momentum": momentum, "weight_decay": weight_decay,
           "pad_mode": pad_mode, "progressive": stages, "limit": limit}
    history = fit(model, (x_train, y_train), epochs, opt, batch_size=batch_size, validation=curve,
                  callbacks=[PrintTable()], seed=seed, schedule=schedule, label_smoothing=label_smoothing,
                  augment=augment, checkpoint_dir=out, resume=out is not None, progress=progress,
                  eval_batch_size=eval_batch_size, workers=workers, config=run)
    config = {"depth": depth, "width": width, "dropout": dropout, "epochs": epochs,
              "batch_size": batch_size, "lr": lr, "momentum": momentum, "weight_decay": weight_decay,
              "label_smoothing": label_smoothing, "pad_mode": pad_mode, "seed": seed,
              "progressive": stages, "minutes_budget": minutes, "workers": workers, "curve_images": curve_images,
              "official_data": ds.official}
    return _finish(model, history, test, out, f"wrn{depth}_{width}_cifar10", config, target=0.85, flip_test=True,
                   workers=workers, started=started, dataset=ds)


def _full_epochs_for_budget(model, x, y, batch_size, augment, minutes, n_eval, eval_batch_size, workers=1,
                            final_images=0, steps=5):
    """The number of full-size epochs (at least 1) that fit in `minutes` after the progressive
    stages of `augment`, each epoch followed by evaluating n_eval images at its size, and
    final_images more images evaluated at full size at the end (the final test).
    Costs come from a few timed training steps (after one warm-up) on a throw-away copy of the
    model and two timed evaluation batches, per size; 3% is kept for the rest (loading, checkpoints)."""
    def costs(size):
        stage = ProgressiveResize(augment.inner, [(size, 1)] if size else [])
        return (_epoch_seconds(model, x, y, batch_size, stage, steps, workers),
                _eval_seconds(model, stage.for_validation(x[:eval_batch_size]), n_eval, workers))
    stage_costs = {size: sum(costs(size)) for size in sorted({s for s, _ in augment.stages})}
    stage_seconds = sum(n * stage_costs[size] for size, n in augment.stages)
    train, evaluation = costs(None)
    full = train + evaluation
    final = evaluation * final_images / n_eval
    epochs = max(1, int((minutes * 60 * 0.97 - stage_seconds - final) / full))
    plan = ", ".join(f"{n} at {size}px (~{stage_costs[size] / 60:.1f} min each)" for size, n in augment.stages)
    print(f"budget {minutes:g} min: {plan + ', then ' if plan else ''}{epochs} at full size "
          f"(~{full / 60:.1f} min each, evaluation included)"
          + (f", then the final test (~{final / 60:.1f} min)" if final_images else ""),
          flush=True)
    return epochs


def _eval_seconds(model, xb, n_eval, workers=1):
    """Seconds to evaluate n_eval images (forward only, eval mode) in batches like xb, from
    the second of two timed passes."""
    from .nn import Module
    with DataParallel(Module.from_spec(model.spec()), workers) as probe:
        probe.eval()
        probe.forward(xb)
        t0 = time.perf_counter()
        probe.forward(xb)
        return (time.perf_counter() - t0) * math.ceil(n_eval / len(xb))


def _epoch_seconds(model, x, y, batch_size, augment, steps, workers=1):
    """Seconds of one epoch of training steps, from the median of `steps` timed steps."""
    from . import ops
    from .nn import Module
    probe = Module.from_spec(model.spec()).set_input_grad(False)   # as in fit()
    opt = optim.SGD(probe.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    times = []
    with DataParallel(probe, workers) as runner:
        for i in range(steps + 1):
            t0 = time.perf_counter()
            xb = augment(x[i * batch_size:(i + 1) * batch_size], rng)
            out = runner.forward(xb)
            _, cache = ops.softmax_cross_entropy_forward(out, y[i * batch_size:(i + 1) * batch_size])
            runner.backward(ops.softmax_cross_entropy_backward(cache).astype(np.float32))
            opt.step()
            times.append(time.perf_counter() - t0)
    return float(np.median(times[1:])) * math.ceil(len(x) / batch_size)


def _check_limit(limit) -> None:
    # `limit` is a slice end: 0 would train on nothing and -5 on all but 5 images
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of images, got {limit}")


def _parse_stages(text: str):
    """"16:3,24:3" -> [(16, 3), (24, 3)]; "" or "none" -> []. Sizes and epochs must be >= 1."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        stages = [tuple(int(v) for v in item.split(":")) for item in text.split(",")]
    except ValueError:
        stages = None
    if not stages or any(len(s) != 2 or min(s) < 1 for s in stages):
        raise argparse.ArgumentTypeError(f"expected SIZE:EPOCHS[,SIZE:EPOCHS...] with positive integers, "
                                         f"got {text!r}")
    return stages


RECIPES = {"cnn3-mnist": cnn3_mnist, "wrn-cifar10": wrn_cifar10}


def main(argv=None) -> int:
    """`python -m pyann.cnn_recipes RECIPE ...`, kept as an alias: the recipes are subcommands of
    the one command line now (`pyann cnn3-mnist`, `pyann wrn-cifar10`, `pyann report`)."""
    import sys
    from .cli import main as pyann_main
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        print(f"note: `python -m pyann.cnn_recipes` moved: run `pyann {argv[0]}` (or `python -m pyann "
              f"{argv[0]}`); `pyann --help` lists every command", file=sys.stderr)
    return pyann_main(argv, prog="pyann")


if __name__ == "__main__":
    raise SystemExit(main())
