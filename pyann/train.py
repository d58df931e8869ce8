"""Training loop: fit / evaluate, History, callbacks, progress and checkpoints.

fit() runs mini-batch training with the fused softmax cross-entropy (or MSE) loss. Every random
choice in an epoch (shuffle order, augmentation, dropout) draws from a Generator seeded by
(seed, epoch), so a run resumed from a checkpoint after epoch k continues exactly as the
uninterrupted run would have, and the same seed gives the same weights.
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from . import ops
from .io import load_arrays, save_arrays
from .nn.module import Module
from .parallel import DataParallel

try:
    from tqdm.auto import tqdm
except ImportError:  # tqdm is a dependency; keep working without a bar if it is missing
    tqdm = None

CHECKPOINT_NAME = "checkpoint.npz"


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
    that use it: it is test-time augmentation, at twice the cost)."""
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
    n = max(len(x), 1)
    return {"loss": total_loss / n, "accuracy": correct / n if loss == "cross_entropy" else None}


def predict(model: Module, x: np.ndarray, batch_size: int = 1000, workers: int = 1) -> np.ndarray:
    """Model outputs (N, classes) in eval mode; workers as in evaluate."""
    if workers > 1:
        with DataParallel(model, workers) as runner:
            return predict(runner, x, batch_size)
    was_training = model.training
    model.eval()
    try:
        return np.concatenate([model.forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def fit(model: Module, train, epochs: int, optimizer, batch_size: int = 128,
        validation=None, callbacks: Sequence[Callback] = (), seed: int = 0,
        schedule: Optional[Callable[[float], float]] = None, loss: str = "cross_entropy",
        label_smoothing: float = 0.0, augment: Optional[Callable] = None,
        checkpoint_dir=None, resume: bool = False, progress: Optional[bool] = None,
        eval_batch_size: int = 1000, workers: int = 1) -> History:
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
    progress: tqdm bar per epoch; None = only when stderr is a terminal.
    workers: split every batch over this many threads, each with its own model replica and
      one BLAS thread (pyann.parallel.DataParallel: faster on several cores; BatchNorm then
      normalises each shard with its own statistics, so results differ from workers=1).
    Each callback's on_epoch_end sees epochs numbered from 1.
    """
    x_train, y_train = _check_xy("train", train)
    if validation is not None:
        validation = _check_xy("validation", validation)
    if epochs < 0 or batch_size <= 0:
        raise ValueError(f"need epochs >= 0 and batch_size > 0, got {epochs} and {batch_size}")
    loss_fwd, loss_bwd = _loss_pair(loss, label_smoothing)
    history, start = History(), 0
    ckpt = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    if resume and ckpt is not None and ckpt.exists():
        start, history = load_checkpoint(ckpt, model, optimizer)

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
            history.append(record)
            if ckpt is not None:
                save_checkpoint(ckpt, model, optimizer, history)
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


# ---- checkpoints ------------------------------------------------------------------------------

def save_checkpoint(path, model: Module, optimizer, history: History) -> Path:
    """Model state, optimizer state and history in one .npz, written atomically."""
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optim/{k}": v for k, v in optimizer.state_dict().items()})
    meta = {"format": "pyann-checkpoint/1", "epoch": len(history.epochs),
            "architecture": model.spec(), "history": history.to_dict()}
    return save_arrays(path, arrays, meta)


def load_checkpoint(path, model: Module, optimizer) -> Tuple[int, History]:
    """Restore model and optimizer from `path`; returns (epochs done, History)."""
    arrays, meta = load_arrays(path)
    if meta.get("format") != "pyann-checkpoint/1":
        raise ValueError(f"{path} is not a pyann checkpoint")
    if meta["architecture"] != model.spec():
        raise ValueError(f"{path} was saved for another architecture than the model being trained")
    model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
    optimizer.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("optim/")})
    return int(meta["epoch"]), History(meta["history"]["epochs"])
