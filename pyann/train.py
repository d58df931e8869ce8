"""Training loop: fit / evaluate, History, callbacks, progress and checkpoints.

fit() runs mini-batch training with the fused softmax cross-entropy (or MSE) loss. Every random
choice in an epoch (shuffle order, augmentation, dropout) draws from a Generator seeded by
(seed, epoch), so a run resumed from a checkpoint after epoch k continues exactly as the
uninterrupted run would have, and the same seed gives the same weights.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from . import ops
from .data.transforms import check_float_input
from .io import load_arrays, save_arrays
from .nn.module import Module, without_masks
from .optim import describe_schedule
from .parallel import DataParallel, check_workers

try:
    from tqdm.auto import tqdm
except ImportError:  # tqdm is a dependency; keep working without a bar if it is missing
    tqdm = None

CHECKPOINT_NAME = "checkpoint.npz"
CHECKPOINT_FORMAT = "pyann-checkpoint/2"   # /2: records the run configuration


class TrainingDivergedError(ValueError):
    """The training loss (or a weight) stopped being finite: training stops there rather than
    go on to save a NaN model."""


class ResumeMismatchError(ValueError):
    """A checkpoint belongs to a run with another configuration than the one asked to resume."""


@dataclasses.dataclass
class History:
    """Per-epoch records: each a dict with epoch, loss, train_acc, val_loss, val_acc, lr, seconds
    (of the training steps) and eval_seconds (of the validation pass)."""
    epochs: List[dict] = dataclasses.field(default_factory=list)

    def append(self, record: dict) -> None:
        self.epochs.append(record)

    def column(self, key: str) -> list:
        return [e.get(key) for e in self.epochs]

    def last(self) -> dict:
        return self.epochs[-1] if self.epochs else {}

    def to_dict(self) -> dict:
        return {"epochs": self.epochs}


class Callback:
    """Hooks called by fit(). Override any of them; `logs` is the epoch's History record."""

    def on_train_begin(self, model: Module, history: History) -> None:
        pass

    def on_epoch_end(self, epoch: int, model: Module, logs: dict) -> None:
        pass

    def on_train_end(self, model: Module, history: History) -> None:
        pass


class PrintTable(Callback):
    """Print one row per epoch: loss, train and validation accuracy, seconds."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def on_train_begin(self, model, history):
        print(f"{'epoch':>5} {'loss':>8} {'train acc':>9} {'test loss':>9} {'test acc':>8} {'lr':>9} {'seconds':>8}",
              file=self.stream, flush=True)

    def on_epoch_end(self, epoch, model, logs):
        val_loss = logs.get("val_loss")
        val_acc = logs.get("val_acc")
        print(f"{epoch:>5d} {logs['loss']:>8.4f} {100 * logs['train_acc']:>8.2f}% "
              f"{'-' if val_loss is None else f'{val_loss:.4f}':>9} "
              f"{'-' if val_acc is None else f'{100 * val_acc:.2f}%':>8} {logs['lr']:>9.2e} {logs['seconds']:>8.1f}"
              + (f" {logs['image_size']:>4d}px" if "image_size" in logs else ""),
              file=self.stream, flush=True)


def _progress(total: int, desc: str, enabled: Optional[bool]):
    """A tqdm bar when on a terminal (or when forced), else a no-op with the same methods."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if enabled and tqdm is not None:
        return tqdm(total=total, desc=desc, leave=False, unit="batch", dynamic_ncols=True)

    class _Quiet:
        def update(self, n=1): pass
        def set_postfix(self, **kw): pass
        def close(self): pass
    return _Quiet()


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch])


def reseed_modules(model: Module, seed: int, epoch: int, replica: int = 0) -> None:
    """Give every module that draws random numbers (Dropout) a generator derived from
    (seed, epoch, its position in the model), so an epoch's masks do not depend on how many
    epochs ran before it in this process: a resumed run draws what the uninterrupted one drew.
    Data-parallel replicas after the first add their index, so their masks differ."""
    for position, module in enumerate(model.modules()):
        if hasattr(module, "reseed"):
            key = [seed, epoch, position] + ([replica] if replica else [])
            module.reseed(np.random.default_rng(key))


def _loss_pair(loss: str, label_smoothing: float):
    if loss == "cross_entropy":
        return (lambda out, y: ops.softmax_cross_entropy_forward(out, y, label_smoothing),
                ops.softmax_cross_entropy_backward)
    if loss == "mse":
        return ops.mse_forward, ops.mse_backward
    raise ValueError(f"unknown loss {loss!r}; choose 'cross_entropy' or 'mse'")


def _check_xy(name: str, data) -> Tuple[np.ndarray, np.ndarray]:
    try:
        x, y = data
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (x, y) of arrays") from None
    if len(x) != len(y):
        raise ValueError(f"{name}: x has {len(x)} samples but y has {len(y)}")
    check_float_input(x, f"fit ({name})")   # the message evaluate, predict and plan.run give
    if x.dtype != np.float32:
        raise ValueError(f"{name}: x must be float32 (use pyann.data.to_float), got {x.dtype}")
    return x, y


def _outputs(model, xb: np.ndarray, flip: bool) -> np.ndarray:
    """model(xb), or with flip the mean of the outputs for xb and for xb mirrored left-right
    (test-time augmentation for images (N, C, H, W) of a model trained with random flips)."""
    out = model.forward(xb)
    return (out + model.forward(xb[..., ::-1])) / 2 if flip else out


def evaluate(model: Module, x: np.ndarray, y: np.ndarray, batch_size: int = 1000,
             loss: str = "cross_entropy", workers: int = 1, flip: bool = False) -> dict:
    """Loss and accuracy of `model` in eval mode over (x, y); restores the previous mode.
    workers > 1 splits each batch over that many threads (pyann.parallel.DataParallel).
    flip: score the mean of the outputs for each image and its mirror image (label results
    that use it: it is test-time augmentation, at twice the cost).
    Raises ValueError on 0 samples: an empty set has no accuracy."""
    workers = check_workers(workers)
    x = check_float_input(x, "evaluate")
    _check_not_empty("evaluate", x)
    if workers > 1:
        with DataParallel(model, workers) as runner:
            return evaluate(runner, x, y, batch_size, loss, flip=flip)
    was_training = model.training
    model.eval()
    loss_fwd, _ = _loss_pair(loss, 0.0)
    total_loss, correct = 0.0, 0
    try:
        for i in range(0, len(x), batch_size):
            out = _outputs(model, x[i:i + batch_size], flip)
            yb = y[i:i + batch_size]
            total_loss += float(loss_fwd(out, yb)[0]) * len(yb)
            if loss == "cross_entropy":
                correct += int((out.argmax(axis=1) == yb).sum())
    finally:
        model.train(was_training)
    n = len(x)
    return {"loss": total_loss / n, "accuracy": correct / n if loss == "cross_entropy" else None}


def predict(model: Module, x: np.ndarray, batch_size: int = 1000, workers: int = 1) -> np.ndarray:
    """Model outputs (N, classes) in eval mode; workers as in evaluate. Raises ValueError on 0
    samples, as evaluate does (the models cannot run an empty batch, so there would be no
    class count to give an empty (0, classes) result)."""
    workers = check_workers(workers)
    x = check_float_input(x, "predict")
    _check_not_empty("predict", x)
    if workers > 1:
        with DataParallel(model, workers) as runner:
            return predict(runner, x, batch_size)
    was_training = model.training
    model.eval()
    try:
        return np.concatenate([model.forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def _check_not_empty(what: str, x) -> None:
    if len(x) == 0:
        raise ValueError(f"{what}: x has 0 samples")


def fit(model: Module, train, epochs: int, optimizer, batch_size: int = 128,
        validation=None, callbacks: Sequence[Callback] = (), seed: int = 0,
        schedule: Optional[Callable[[float], float]] = None, loss: str = "cross_entropy",
        label_smoothing: float = 0.0, augment: Optional[Callable] = None,
        checkpoint_dir=None, resume: bool = False, progress: Optional[bool] = None,
        eval_batch_size: int = 1000, workers: int = 1, config: Optional[dict] = None) -> History:
    """Train `model` on train = (x, y) for `epochs` epochs and return its History.

    x: float32 (N, ...) inputs; y: int labels (N,) for cross-entropy, or targets for MSE.
    validation: optional (x, y), evaluated in eval mode at the end of every epoch, in batches
      of eval_batch_size (a convolutional model wants small ones: its im2col buffers grow
      with the batch).
    schedule: lr(epoch_progress) called before every step; None keeps optimizer.lr.
    augment: optional augment(xb, rng) -> xb applied to each training batch; if it has a
      set_epoch(epoch) method, fit calls it (0-based) before each epoch, and if it has a
      for_validation(x) method, the validation inputs go through it (progressive resizing:
      each stage is evaluated at its own size, recorded as "image_size").
    checkpoint_dir: write checkpoint.npz there after every epoch (atomically);
    resume=True continues from it when it exists (weights, optimizer state, history).
    config: the run's configuration as JSON values (dataset, model, augmentation, ... whatever
      the caller knows that determines the weights). fit adds what it sees itself: epochs,
      seed, batch_size, workers, loss, label_smoothing, the optimizer's and the schedule's
      config(), the augment's type and the training set's size and label checksum; a key the
      caller also gives must agree. The checkpoint records it all, and resuming compares it
      field by field: any difference raises ResumeMismatchError naming every differing field,
      so a run is never continued with another dataset, seed, optimiser or schedule.
      `epochs` is the one field that may change on resume, to extend (or finish) a run, and
      only when the schedule is described (an optim schedule, or None): then any dependence
      of the learning rates on the run length is in the schedule's description (a cosine
      schedule records its length, so extending a cosine run is refused because its schedule
      differs, while a constant or step schedule extends as the uninterrupted longer run
      would have). With a plain-callable schedule fit cannot tell, so epochs must match.
      A checkpoint with more epochs done than `epochs` is refused too.
    progress: tqdm bar per epoch; None = only when stderr is a terminal.
    workers: split every batch over this many threads, each with its own model replica and
      one BLAS thread (pyann.parallel.DataParallel: faster on several cores; BatchNorm then
      normalises each shard with its own statistics, so results differ from workers=1).
    Each callback's on_epoch_end sees epochs numbered from 1.
    Raises TrainingDivergedError at the first batch whose loss is not finite (or at the end of
    an epoch that left a weight non-finite), naming the epoch and step.
    """
    x_train, y_train = _check_xy("train", train)
    _check_not_empty("fit: train", x_train)
    if validation is not None:
        validation = _check_xy("validation", validation)
        _check_not_empty("fit: validation", validation[0])
    if epochs < 0 or batch_size <= 0:
        raise ValueError(f"need epochs >= 0 and batch_size > 0, got {epochs} and {batch_size}")
    workers = check_workers(workers)
    loss_fwd, loss_bwd = _loss_pair(loss, label_smoothing)
    run_config = _run_config(config, epochs=epochs, seed=seed, batch_size=batch_size, workers=workers,
                             optimizer=optimizer, schedule=schedule, loss=loss, label_smoothing=label_smoothing,
                             augment=augment, y_train=y_train, x_train=x_train)
    history, start = History(), 0
    ckpt = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    if resume and ckpt is not None and ckpt.exists():
        start, history = load_checkpoint(ckpt, model, optimizer, config=run_config)

    for cb in callbacks:
        cb.on_train_begin(model, history)
    # the input is data: its gradient would be thrown away (replicas copy the setting)
    with _input_grad_off(model), DataParallel(model, workers) as runner:
        for epoch in range(start, epochs):
            rng = epoch_rng(seed, epoch)
            for k, replica in enumerate(runner.replicas):
                reseed_modules(replica, seed, epoch, k)
            if hasattr(augment, "set_epoch"):
                augment.set_epoch(epoch)
            record = _train_epoch(runner, x_train, y_train, optimizer, epoch, epochs, batch_size, rng, schedule,
                                  augment, loss, loss_fwd, loss_bwd, progress)
            if validation is not None:
                record.update(_validate(runner, validation, augment, eval_batch_size, loss))
            _check_finite_weights(model, epoch)
            history.append(record)
            if ckpt is not None:
                save_checkpoint(ckpt, model, optimizer, history, run_config)
            for cb in callbacks:
                cb.on_epoch_end(epoch + 1, model, record)
    for cb in callbacks:
        cb.on_train_end(model, history)
    return history


@contextlib.contextmanager
def _input_grad_off(model: Module):
    """model.set_input_grad(False) for the block, then the previous setting back."""
    previous = model.input_grad
    model.set_input_grad(False)
    try:
        yield
    finally:
        model.set_input_grad(previous)


def _train_epoch(model, x_train, y_train, optimizer, epoch, epochs, batch_size, rng, schedule, augment,
                 loss, loss_fwd, loss_bwd, progress) -> dict:
    """One pass over the training set in an order drawn from rng; returns the epoch's History
    record (loss, train_acc, lr, seconds), the validation fields still to add."""
    n = len(x_train)
    steps_per_epoch = (n + batch_size - 1) // batch_size
    order = rng.permutation(n)
    model.train()
    t0 = time.perf_counter()
    total_loss, correct, seen = 0.0, 0, 0
    bar = _progress(steps_per_epoch, f"epoch {epoch + 1}/{epochs}", progress)
    for step in range(steps_per_epoch):
        idx = order[step * batch_size:(step + 1) * batch_size]
        xb, yb = x_train[idx], y_train[idx]
        if augment is not None:
            xb = augment(xb, rng)
        if schedule is not None:
            optimizer.lr = schedule(epoch + step / steps_per_epoch)
        out = model.forward(xb)
        batch_loss, cache = loss_fwd(out, yb)
        if not np.isfinite(batch_loss):
            bar.close()
            raise TrainingDivergedError(
                f"training diverged: the loss is {float(batch_loss)} at epoch {epoch + 1}, step {step + 1} of "
                f"{steps_per_epoch} (lr {float(optimizer.lr):.3g}); try a lower learning rate")
        model.backward(loss_bwd(cache).astype(out.dtype, copy=False))
        optimizer.step()
        total_loss += float(batch_loss) * len(idx)
        seen += len(idx)
        if loss == "cross_entropy":
            correct += int((out.argmax(axis=1) == yb).sum())
        bar.update()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{total_loss / seen:.4f}")
    bar.close()
    return {"epoch": epoch + 1, "loss": total_loss / max(seen, 1),
            "train_acc": correct / max(seen, 1) if loss == "cross_entropy" else None,
            "lr": float(optimizer.lr), "seconds": time.perf_counter() - t0}


def _validate(model, validation, augment, eval_batch_size, loss) -> dict:
    """The validation fields of an epoch's record: val_loss, val_acc, eval_seconds, and
    image_size when the augment resizes the validation inputs (for_validation)."""
    x_val, fields = validation[0], {}
    if hasattr(augment, "for_validation"):
        x_val = augment.for_validation(x_val)
        fields["image_size"] = int(x_val.shape[-1])
    t0 = time.perf_counter()
    val = evaluate(model, x_val, validation[1], batch_size=eval_batch_size, loss=loss)
    fields.update(val_loss=val["loss"], val_acc=val["accuracy"], eval_seconds=time.perf_counter() - t0)
    return fields


def _check_finite_weights(model: Module, epoch: int) -> None:
    for name, p in model.named_parameters():
        if not np.isfinite(p.data).all():
            raise TrainingDivergedError(f"training diverged: parameter {name!r} holds NaN or Inf after epoch "
                                        f"{epoch + 1}; try a lower learning rate")


# ---- run configuration ------------------------------------------------------------------------

def _json_value(obj, what: str):
    """obj as plain JSON values (tuples become lists), so that a configuration compares equal to
    itself after a round trip through a checkpoint; ValueError if it is not strict JSON."""
    try:
        return json.loads(json.dumps(obj, allow_nan=False, default=_numpy_scalar))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON values (no NaN or Inf): {exc}") from None


def _numpy_scalar(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not a JSON value")


def _run_config(config, *, epochs, seed, batch_size, workers, optimizer, schedule, loss, label_smoothing,
                augment, x_train, y_train) -> dict:
    """The caller's config merged with what fit sees itself (see fit's docstring)."""
    labels = np.ascontiguousarray(y_train)
    seen = {"epochs": int(epochs), "seed": seed, "batch_size": int(batch_size), "workers": workers,
            "loss": loss, "label_smoothing": float(label_smoothing),
            "optimizer": optimizer.config() if hasattr(optimizer, "config") else type(optimizer).__qualname__,
            "schedule": describe_schedule(schedule),
            "augment": None if augment is None else (augment.config() if hasattr(augment, "config")
                                                      else type(augment).__qualname__),
            "train_data": {"samples": len(x_train), "sample_shape": list(x_train.shape[1:]),
                           "labels_sha256": hashlib.sha256(labels.tobytes()).hexdigest()[:16]}}
    seen = _json_value(seen, "fit's settings")
    given = _json_value(dict(config or {}), "fit(config=)")
    for key in given.keys() & seen.keys():
        if given[key] != seen[key]:
            raise ValueError(f"fit(config=) says {key}={given[key]!r} but fit was called with {seen[key]!r}")
    return {**given, **seen}


def _flatten(obj, prefix: str = "") -> dict:
    if isinstance(obj, dict) and obj:
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


_ABSENT = object()


def _config_differences(saved: dict, current: dict) -> List[str]:
    """Human-readable 'field: checkpoint X, this run Y' for every field that differs, except
    epochs where fit's resume rule allows it."""
    old, new = _flatten(saved), _flatten(current)
    opaque = any(k.endswith("opaque") and v for k, v in new.items() if k.startswith("schedule"))
    diffs = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if a == b or (key == "epochs" and not opaque):
            continue
        shown = lambda v: "(absent)" if v is _ABSENT else repr(v)
        diffs.append(f"{key}: checkpoint {shown(a)}, this run {shown(b)}")
    return diffs


def read_checkpoint_config(path) -> Optional[dict]:
    """The run configuration recorded in a checkpoint (None for a checkpoint from before they
    recorded one), e.g. to resume a run with the plan it started with."""
    _, meta = load_arrays(path)
    return meta.get("config")


# ---- checkpoints ------------------------------------------------------------------------------

def save_checkpoint(path, model: Module, optimizer, history: History, config: Optional[dict] = None) -> Path:
    """Model state, optimizer state, history and run configuration in one .npz, written atomically."""
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optim/{k}": v for k, v in optimizer.state_dict().items()})
    meta = {"format": CHECKPOINT_FORMAT, "epoch": len(history.epochs),
            "architecture": model.spec(), "history": history.to_dict(), "config": config}
    return save_arrays(path, arrays, meta)


def _check_model_state(model: Module, state: dict) -> None:
    """Raise ValueError unless `state` has exactly the model's parameters and buffers, each of
    the right shape and finite. Changes nothing."""
    targets = {name: p.data for name, p in model.named_parameters()}
    targets.update(dict(model.named_buffers()))
    targets.update(dict(model.named_masks()))   # a pruned model's masks (pyann.pruning)
    missing, unexpected = sorted(set(targets) - set(state)), sorted(set(state) - set(targets))
    if missing or unexpected:
        raise ValueError(f"model state does not fit the model: missing keys {missing}, unexpected keys {unexpected}")
    for name, target in targets.items():
        value = np.asarray(state[name])
        if value.shape != target.shape:
            raise ValueError(f"model state {name!r}: shape {value.shape}, model has {target.shape}")
        if value.dtype.kind not in "biuf" or not np.isfinite(value).all():
            raise ValueError(f"model state {name!r} is not numeric or holds NaN or Inf")


def load_checkpoint(path, model: Module, optimizer, config: Optional[dict] = None) -> Tuple[int, History]:
    """Restore model and optimizer from `path`; returns (epochs done, History).

    config: the run configuration of the run being resumed (as fit builds it); when given, the
    checkpoint's must match it (the rule is in fit's docstring) or ResumeMismatchError names
    every differing field. Model state and optimizer state are both validated before either
    is copied: a checkpoint that does not fit raises and leaves model and optimizer untouched.
    """
    arrays, meta = load_arrays(path)
    if meta.get("format") not in ("pyann-checkpoint/1", CHECKPOINT_FORMAT):
        raise ValueError(f"{path} is not a pyann checkpoint")
    if without_masks(meta["architecture"]) != without_masks(model.spec()):
        raise ValueError(f"{path} was saved for another architecture than the model being trained")
    epochs_done = int(meta["epoch"])
    if config is not None:
        saved = meta.get("config")
        if saved is None:
            raise ResumeMismatchError(f"{path} records no run configuration (written by an older pyann), so "
                                      f"it cannot be shown to belong to this run; delete it to start over")
        diffs = _config_differences(saved, config)
        if diffs:
            raise ResumeMismatchError(f"{path} belongs to another run; refusing to resume it. Differences: "
                                      + "; ".join(diffs)
                                      + ". Use another output folder, or delete the checkpoint to start over")
        if epochs_done > config["epochs"]:
            raise ResumeMismatchError(f"{path} has {epochs_done} epochs done, more than the {config['epochs']} "
                                      f"asked for; refusing to resume it")
    model_state = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
    optim_state = {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}
    # a run pruned while it trains (pyann.pruning.GradualPruning) saved masks the fresh model
    # lacks: the checkpoint's masks are the run's, undone if the state does not fit
    undo_masks = lambda: None  # noqa: E731
    try:
        undo_masks = model.take_masks(meta["architecture"].get("masks", []))
        _check_model_state(model, model_state)
        if hasattr(model, "check_state_dict"):   # the model's own rules (dtypes) as load_state_dict applies them
            model.check_state_dict(model_state)
        optimizer.check_state_dict(optim_state)
    except (KeyError, ValueError, TypeError) as exc:
        undo_masks()
        raise ValueError(f"{path}: {exc}") from None
    model.load_state_dict(model_state)
    optimizer.load_state_dict(optim_state)
    return epochs_done, History(meta["history"]["epochs"])
