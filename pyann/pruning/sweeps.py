"""Measurements: accuracy against the share of connections removed without retraining (the
paper's Figure 4 sweep), pruning with masked retraining, and per-layer sensitivity (Figure 5)
with Distiller's CSV columns.

Every function works on copies (pruning.clone): the model passed in is never changed.
Accuracies are fractions in [0, 1] as pyann.train.evaluate returns them.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

from ..io import write_text
from ..nn.module import Module
from ..train import evaluate, fit
from .masks import (Block, Layers, check_fraction, check_threshold, clone, prune, prune_to_density,
                    resolve_layers)


@dataclasses.dataclass
class SweepPoint:
    criterion: str        # "threshold" or "fraction"
    value: float          # the threshold, or the fraction pruned
    removed: float        # share of the swept layers' weights that are pruned (masked)
    kept: int             # weights kept in the swept layers
    accuracy: float
    loss: float


def sweep(model: Module, x: np.ndarray, y: np.ndarray, *, thresholds: Optional[Sequence[float]] = None,
          fractions: Optional[Sequence[float]] = None, layers: Layers = None, scope: str = "global",
          block: Block = None, batch_size: int = 1000) -> List[SweepPoint]:
    """Accuracy against the share removed, without retraining: for each threshold (the
    paper's sweep: prune |w| < t) or each fraction (of the still-unpruned weights, ranked
    across the layers with scope="global"), prune a fresh copy of `model` and evaluate it on
    (x, y). Points are independent (each starts from `model`), in the order given.
    x (N, ...) float32, y (N,) int labels."""
    if (thresholds is None) == (fractions is None):
        raise ValueError("give exactly one of thresholds and fractions")
    values = list(thresholds if thresholds is not None else fractions)
    criterion = "threshold" if thresholds is not None else "fraction"
    check = check_threshold if thresholds is not None else check_fraction
    values = [check(v) for v in values]
    names = list(resolve_layers(model, layers))
    points = []
    for v in values:
        copy = clone(model)
        prune(copy, names, scope=scope, block=block, **{criterion: v})
        kept, total = _kept(copy, names)
        result = evaluate(copy, x, y, batch_size=batch_size)
        points.append(SweepPoint(criterion, v, 1.0 - kept / total, kept, result["accuracy"], result["loss"]))
    return points


def _kept(model: Module, names) -> tuple:
    layers = resolve_layers(model, names)
    kept = sum(int(np.count_nonzero(m.weight.mask)) if m.weight.mask is not None else m.weight.data.size
               for m in layers.values())
    return kept, sum(m.weight.data.size for m in layers.values())


def prune_and_retrain(model: Module, train, *, make_optimizer: Callable, epochs: int,
                      threshold=None, fraction=None, count=None, density=None, layers: Layers = None,
                      scope: str = "layer", block: Block = None, **fit_kwargs):
    """Prune a copy of `model` (one of threshold, fraction, count, or density: what to keep,
    a float or {layer: density}) and retrain it with its masks held (pyann.optim keeps the
    pruned weights at 0): the paper's retraining "with the same procedure as the original
    training". make_optimizer(parameters) -> a fresh optimiser; fit_kwargs go to fit
    (batch_size, validation, seed, schedule, ...). Returns (retrained copy, History)."""
    if sum(c is not None for c in (threshold, fraction, count, density)) != 1:
        raise ValueError("give exactly one of threshold, fraction, count and density")
    copy = clone(model)
    if density is not None:
        prune_to_density(copy, density, None if isinstance(density, dict) else layers, scope=scope, block=block)
    else:
        prune(copy, layers, threshold=threshold, fraction=fraction, count=count, scope=scope, block=block)
    history = fit(copy, train, epochs, make_optimizer(copy.parameters()), **fit_kwargs)
    return copy, history


# ---- per-layer sensitivity ----------------------------------------------------------------------

@dataclasses.dataclass
class SensitivityRow:
    parameter: str        # Distiller's name: "<layer>.weight"
    density: float        # share of the layer's weights kept
    accuracy: float
    loss: float

    @property
    def layer(self) -> str:
        return self.parameter[:-len(".weight")]


CSV_COLUMNS = ("parameter", "density", "accuracy", "loss")


def sensitivity(model: Module, x: np.ndarray, y: np.ndarray, densities: Iterable[float],
                layers: Layers = None, *, block: Block = None, retrain: Optional[Callable] = None,
                batch_size: int = 1000) -> List[SensitivityRow]:
    """Each layer pruned alone, the others as they are (Figure 5): for every layer and every
    density d, a copy of `model` keeps the largest round(d * weights) weights of that layer
    (prune_to_density), is optionally retrained (`retrain(copy)`, in place, e.g. a few epochs of
    fit: the "after retraining" curves), and is evaluated on (x, y).
    Rows are layer-major, densities in the order given (1.0 is the unpruned reference)."""
    densities = [check_fraction(d, "density") for d in densities]
    if not densities:
        raise ValueError("densities is empty")
    rows = []
    for name in resolve_layers(model, layers):
        for d in densities:
            copy = clone(model)
            prune_to_density(copy, d, name, block=block)
            if retrain is not None:
                retrain(copy)
            result = evaluate(copy, x, y, batch_size=batch_size)
            rows.append(SensitivityRow(f"{name}.weight", d, result["accuracy"], result["loss"]))
    return rows


def sensitivity_csv(rows: Sequence[SensitivityRow]) -> str:
    """The rows as CSV text with Distiller's columns: parameter, density, accuracy, loss."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow((r.parameter, repr(float(r.density)), repr(float(r.accuracy)), repr(float(r.loss))))
    return out.getvalue()


def write_sensitivity_csv(rows: Sequence[SensitivityRow], path):
    """Write sensitivity_csv(rows) to path atomically; returns the Path."""
    return write_text(path, sensitivity_csv(rows))


def read_sensitivity_csv(path) -> List[SensitivityRow]:
    """Rows back from write_sensitivity_csv (or any CSV with those four columns). ValueError
    naming the line for a missing column or a value that is not a finite number in range."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; expected {list(CSV_COLUMNS)}")
        rows = []
        for line, rec in enumerate(reader, start=2):
            try:
                density, acc, loss = float(rec["density"]), float(rec["accuracy"]), float(rec["loss"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}, line {line}: density, accuracy and loss must be numbers") from None
            if not (0 <= density <= 1 and 0 <= acc <= 1 and math.isfinite(loss)):
                raise ValueError(f"{path}, line {line}: need density and accuracy in [0, 1] and a finite loss")
            rows.append(SensitivityRow(rec["parameter"], density, acc, loss))
    return rows


def curves(rows: Sequence[SensitivityRow]) -> Dict[str, List[tuple]]:
    """{layer: [(density, accuracy), ...] sorted by density} from sensitivity rows: the input
    of pruning.allocation."""
    out: Dict[str, List[tuple]] = {}
    for r in rows:
        out.setdefault(r.layer, []).append((float(r.density), float(r.accuracy)))
    return {k: sorted(v) for k, v in out.items()}
