"""Gradual pruning during training: the polynomial schedule of Zhu & Gupta (2017), used by
TF-MOT's PolynomialDecay and Distiller's AGP, as a fit() callback.

    s(t) = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_1 - t_0)) ** p      for t_0 <= t <= t_1

s_i and s_f are the initial and final sparsity (share of weights pruned), t_0 and t_1 the first
and last pruning epochs, p the power (3, cubic, by default: prune fast while the network is
redundant, slowly as it nears the target). Before t_0 nothing is pruned, after t_1 the
sparsity stays s_f. This is the alternative to one-shot prune-then-retrain: the network
trains between the pruning steps and the masks keep the pruned weights at 0 (pyann.optim).
"""
from __future__ import annotations

import math
import numbers

from ..train import Callback
from .masks import Layers, check_block, check_fraction, prune_to_density, resolve_layers


def polynomial_sparsity(t: float, final: float, begin: float, end: float, initial: float = 0.0,
                        power: float = 3.0) -> float:
    """s(t) of the module docstring: 0 before `begin`, `final` from `end` on. ValueError for
    sparsities outside [0, 1], end < begin, or a power that is not positive."""
    initial, final = check_fraction(initial, "initial sparsity"), check_fraction(final, "final sparsity")
    if not (isinstance(power, numbers.Real) and math.isfinite(power) and power > 0):
        raise ValueError(f"power must be a positive number, got {power!r}")
    if not (math.isfinite(begin) and math.isfinite(end) and end >= begin):
        raise ValueError(f"need finite begin <= end, got begin={begin!r}, end={end!r}")
    if t < begin:
        return 0.0
    if t >= end:
        return final
    progress = (t - begin) / (end - begin)
    return final + (initial - final) * (1.0 - progress) ** power


class GradualPruning(Callback):
    """Prune the chosen layers to the sparsity of the schedule as training goes:

        fit(model, train, epochs=10, optimizer=opt,
            callbacks=[GradualPruning(final=0.9, begin=0, end=6)])

    At the start of training (epochs done t, 0 for a fresh run, more when fit resumes from a
    checkpoint) and after every epoch t with begin <= t <= end and (t - begin) % frequency == 0
    (or t == end), every chosen layer is pruned by magnitude to sparsity s(t)
    (pruning.prune_to_density, so masks only narrow); scope="global" ranks the layers'
    weights together instead. Pruning only depends on the epoch count and the weights, so a
    resumed run prunes as the uninterrupted one did. The last sparsity set is in `.sparsity`.
    """

    def __init__(self, final: float, begin: int = 0, end: int = 10, initial: float = 0.0,
                 power: float = 3.0, frequency: int = 1, layers: Layers = None, scope: str = "layer",
                 block=None):
        polynomial_sparsity(begin, final, begin, end, initial, power)   # validates
        if isinstance(frequency, bool) or not isinstance(frequency, numbers.Integral) or frequency < 1:
            raise ValueError(f"frequency must be an integer >= 1, got {frequency!r}")
        if scope not in ("layer", "global"):
            raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
        self.final, self.begin, self.end, self.initial = final, begin, end, initial
        layers = layers if layers is None or isinstance(layers, str) else list(layers)   # read every epoch
        self.power, self.frequency, self.layers, self.scope = power, int(frequency), layers, scope
        self.block = check_block(block)
        self.sparsity = 0.0

    def target(self, epochs_done: int) -> float:
        return polynomial_sparsity(epochs_done, self.final, self.begin, self.end, self.initial, self.power)

    def _step(self, model, t: int) -> None:
        if t > self.end:            # done: the masks (saved in checkpoints too) hold the final sparsity
            self.sparsity = self.final
            return
        if t < self.begin or ((t - self.begin) % self.frequency and t != self.end):
            return
        s = self.target(t)
        if s > 0:
            prune_to_density(model, 1.0 - s, self.layers, scope=self.scope, block=self.block)
        self.sparsity = s

    def on_train_begin(self, model, history):
        resolve_layers(model, self.layers)   # an unknown layer fails before any epoch runs
        self._step(model, len(history.epochs))

    def on_epoch_end(self, epoch, model, logs):
        self._step(model, epoch)
        logs["sparsity"] = self.sparsity
