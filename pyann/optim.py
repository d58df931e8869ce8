"""Optimisers (SGD with momentum/nesterov/weight decay, Adam) and learning-rate schedules.

An optimiser updates Parameter.data in place from Parameter.grad. Weight decay (L2, added to
the gradient) applies by default only to parameters marked `decay=True` (weights, not biases or
normalisation parameters); `decay_all=True` applies it to every parameter.

Pruned parameters (Parameter.mask, see pyann.nn.module) stay pruned whatever the update rule:
every step reads the mask afresh (so pruning after the optimiser was built, or during fit, is
seen), zeroes the gradient's pruned entries after weight decay is added, updates, then sets the
pruned weights and this optimiser's per-weight state there (velocity, Adam's moments) back to
exactly 0. Masking the gradient alone would not do: momentum or moments gathered before pruning
would still move a pruned weight; re-zeroing the weight alone would leave that state to grow.

A schedule is a callable `lr(epoch_progress) -> float`, where epoch_progress is a float epoch
(epoch 2, half way through = 2.5); the training loop sets `optimizer.lr` before every step.

Optimisers and schedules describe themselves with `config()` (JSON values): fit() records the
description in a checkpoint and refuses to resume it with a different one.
"""
from __future__ import annotations

import math
from typing import Dict, Sequence

import numpy as np


class Optimizer:
    def __init__(self, params: Sequence, lr: float, weight_decay: float = 0.0, decay_all: bool = False):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got no parameters")
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be positive and finite, got {lr}")
        self.lr = lr
        self.initial_lr = float(lr)   # self.lr follows the schedule; the run is described by this one
        self.weight_decay = weight_decay
        self.decay_all = decay_all
        self.steps = 0

    def _grad(self, p) -> np.ndarray:
        if self.weight_decay and (p.decay or self.decay_all):
            return p.grad + self.weight_decay * p.data
        return p.grad

    def step(self) -> None:
        self.steps += 1
        for i, p in enumerate(self.params):
            mask = getattr(p, "mask", None)
            g = self._grad(p)
            if mask is not None:
                g = np.where(mask, g, g.dtype.type(0))
            self._update(i, p, g)
            if mask is not None:
                pruned = ~mask
                np.copyto(p.data, 0, where=pruned)
                for state in self._slots(i):
                    np.copyto(state, 0, where=pruned)

    def _update(self, i, p, g):
        raise NotImplementedError

    def _slots(self, i) -> list:
        """This optimiser's per-weight state arrays of parameter i (shaped like it)."""
        return []

    def config(self) -> dict:
        """The hyperparameters that define this optimiser (lr as constructed), as JSON values."""
        return {"name": type(self).__name__, "lr": self.initial_lr, "weight_decay": float(self.weight_decay),
                "decay_all": bool(self.decay_all)}

    # state for checkpoints: plain arrays and numbers, keyed by parameter index
    def state_dict(self) -> Dict[str, np.ndarray]:
        return {"steps": np.array(self.steps), "lr": np.array(self.lr)}

    def check_state_dict(self, state: Dict[str, np.ndarray]) -> None:
        """Raise ValueError unless `state` fits this optimiser exactly: the same keys, every
        array of the shape of this optimiser's own, every value finite. Changes nothing."""
        own = self.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"optimizer state does not fit {type(self).__name__}: missing keys {missing}, "
                             f"unexpected keys {unexpected}")
        for key, mine in own.items():
            theirs = np.asarray(state[key])
            if theirs.shape != mine.shape:
                raise ValueError(f"optimizer state {key!r}: shape {theirs.shape}, expected {mine.shape}")
            if not np.issubdtype(theirs.dtype, np.number):
                raise ValueError(f"optimizer state {key!r}: dtype {theirs.dtype} is not numeric")
            if not np.isfinite(theirs).all():
                raise ValueError(f"optimizer state {key!r} holds NaN or Inf")
        if int(state["steps"]) < 0 or float(state["lr"]) < 0:
            raise ValueError(f"optimizer state: steps {int(state['steps'])} and lr {float(state['lr'])} "
                             f"must not be negative")

    def load_state_dict(self, state: Dict[str, np.ndarray]) -> None:
        """Restore from state_dict(); validates all of it first, so a state that does not fit
        raises ValueError and leaves this optimiser unchanged."""
        self.check_state_dict(state)
        self._copy_state(state)

    def _copy_state(self, state) -> None:
        self.steps = int(state["steps"])
        self.lr = float(state["lr"])


class SGD(Optimizer):
    """v = mu v + g;  p -= lr * v   (nesterov: p -= lr * (g + mu v))."""

    def __init__(self, params, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, decay_all=False):
        super().__init__(params, lr, weight_decay, decay_all)
        if nesterov and momentum <= 0:
            raise ValueError("nesterov momentum needs momentum > 0")
        self.momentum, self.nesterov = momentum, nesterov
        self.velocity = [np.zeros_like(p.data) for p in self.params] if momentum else None

    def _update(self, i, p, g):
        if not self.momentum:
            p.data -= self.lr * g
            return
        v = self.velocity[i]
        v *= self.momentum
        v += g
        p.data -= self.lr * (g + self.momentum * v if self.nesterov else v)

    def _slots(self, i):
        return [self.velocity[i]] if self.velocity else []

    def config(self):
        return dict(super().config(), momentum=float(self.momentum), nesterov=bool(self.nesterov))

    def state_dict(self):
        state = super().state_dict()
        for i, v in enumerate(self.velocity or []):
            state[f"velocity.{i}"] = v.copy()
        return state

    def _copy_state(self, state):
        super()._copy_state(state)
        for i, v in enumerate(self.velocity or []):
            v[...] = state[f"velocity.{i}"]


class Adam(Optimizer):
    """m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr * m_hat / (sqrt(v_hat) + eps)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decay_all=False):
        super().__init__(params, lr, weight_decay, decay_all)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def step(self):
        # bias corrections depend only on the step count: compute them once per step
        t = self.steps + 1
        self._c1 = 1.0 - self.beta1 ** t
        self._c2 = 1.0 - self.beta2 ** t
        super().step()

    def _update(self, i, p, g):
        m, v = self.m[i], self.v[i]
        m *= self.beta1
        m += (1.0 - self.beta1) * g
        v *= self.beta2
        v += (1.0 - self.beta2) * (g * g)
        step = self.lr / self._c1
        p.data -= step * m / (np.sqrt(v / self._c2) + self.eps)

    def _slots(self, i):
        return [self.m[i], self.v[i]]

    def config(self):
        return dict(super().config(), betas=[float(self.beta1), float(self.beta2)], eps=float(self.eps))

    def state_dict(self):
        state = super().state_dict()
        for i in range(len(self.params)):
            state[f"m.{i}"], state[f"v.{i}"] = self.m[i].copy(), self.v[i].copy()
        return state

    def _copy_state(self, state):
        super()._copy_state(state)
        for i in range(len(self.params)):
            self.m[i][...], self.v[i][...] = state[f"m.{i}"], state[f"v.{i}"]


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


# ---- learning-rate schedules ------------------------------------------------------------------

class Constant:
    def __init__(self, lr: float):
        self.lr = lr

    def __call__(self, epoch: float) -> float:
        return self.lr

    def config(self) -> dict:
        return {"name": "Constant", "lr": float(self.lr)}


class StepLR:
    """lr = base * gamma ** floor(epoch / step_size)."""

    def __init__(self, base: float, step_size: int, gamma: float = 0.1):
        self.base, self.step_size, self.gamma = base, step_size, gamma

    def __call__(self, epoch: float) -> float:
        return self.base * self.gamma ** math.floor(epoch / self.step_size)

    def config(self) -> dict:
        return {"name": "StepLR", "base": float(self.base), "step_size": self.step_size, "gamma": float(self.gamma)}


class MultiStepLR:
    """lr = base * gamma ** (number of milestones <= epoch)."""

    def __init__(self, base: float, milestones: Sequence[int], gamma: float = 0.1):
        self.base, self.milestones, self.gamma = base, sorted(milestones), gamma

    def __call__(self, epoch: float) -> float:
        return self.base * self.gamma ** sum(epoch >= m for m in self.milestones)

    def config(self) -> dict:
        return {"name": "MultiStepLR", "base": float(self.base), "milestones": list(self.milestones),
                "gamma": float(self.gamma)}


class CosineLR:
    """lr = min_lr + (base - min_lr) * (1 + cos(pi * epoch / total)) / 2, flat at min_lr after."""

    def __init__(self, base: float, total_epochs: float, min_lr: float = 0.0):
        self.base, self.total, self.min_lr = base, total_epochs, min_lr

    def __call__(self, epoch: float) -> float:
        t = min(epoch / self.total, 1.0)
        return self.min_lr + (self.base - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))

    def config(self) -> dict:
        return {"name": "CosineLR", "base": float(self.base), "total_epochs": float(self.total),
                "min_lr": float(self.min_lr)}


class Warmup:
    """Scale the wrapped schedule linearly from start_factor to 1 over the first `epochs`."""

    def __init__(self, schedule, epochs: float, start_factor: float = 0.1):
        self.schedule, self.epochs, self.start_factor = schedule, epochs, start_factor

    def __call__(self, epoch: float) -> float:
        lr = self.schedule(epoch)
        if epoch >= self.epochs:
            return lr
        frac = epoch / self.epochs
        return lr * (self.start_factor + (1.0 - self.start_factor) * frac)

    def config(self) -> dict:
        return {"name": "Warmup", "epochs": float(self.epochs), "start_factor": float(self.start_factor),
                "schedule": describe_schedule(self.schedule)}


def describe_schedule(schedule) -> dict | None:
    """schedule.config(), or for a plain callable {"name": "custom", "callable": its name,
    "opaque": True}: what it computes cannot be described, so a run using it cannot prove
    that its learning rates do not depend on the number of epochs (fit() then refuses to
    resume with another epoch count)."""
    if schedule is None:
        return None
    if hasattr(schedule, "config"):
        return schedule.config()
    name = getattr(schedule, "__qualname__", type(schedule).__qualname__)
    return {"name": "custom", "callable": f"{getattr(schedule, '__module__', '?')}.{name}", "opaque": True}
