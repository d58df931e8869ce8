"""Accuracy versus executed multiply-adds: a knob sweep per predictor (pyann.plots draws the figure).

    sweep_history(model, x_train_rates_predictor, x_test, y_test, taus)   the paper's tau sweep
    sweep_lowrank(model, predictor, x_test, y_test, margins)               the per-sample knob
    paper_point()                                                          the paper's operating point

Every point runs a compiled plan (pyann.infer) on the test images and takes the accuracy from the
plan's own outputs and the executed multiply-adds from the C kernels' counters (for the low-rank
predictor its own multiply-adds are added). MAC share = executed / dense multiply-adds.

The paper's point. The paper skips, in hidden layers 3 and 4 only, the dot products of the
neurons its history predicts inactive; no zero skipping. Taking the share of neurons it computes
in those layers as their active share (Table 3: 15.78 % and 10.21 %), mlp5 executes
784*512 + 512*512 + (0.1578 + 0.1021)*512*512 + 512*10 of its 1,192,960 dense multiply-adds:
61.8 %, at 97.4 % accuracy (dense 98.41 %).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from .predictors import HistoryPredictor, LowRankPredictor, inactive_precision_recall

PAPER_DENSE_ACC, PAPER_PRED_ACC = 0.9841, 0.974
PAPER_ACTIVE = (0.6731, 0.4473, 0.1578, 0.1021)
DEFAULT_TAUS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
DEFAULT_MARGINS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)


# The names of the figure's series, shared by the study (sweep_hook) and `python -m bench relu`,
# so the same predictor, kernel and layers carry the same name in both figures.
POINT_NAMES = {"dense": "dense", "zeroskip": "zero skipping (exact)"}


def layers_text(layers) -> str:
    """(3, 4) -> "layers 3-4"; (1, 2, 4) -> "layers 1,2,4"; (2,) -> "layer 2"."""
    layers = sorted(int(k) for k in layers)
    if len(layers) == 1:
        return f"layer {layers[0]}"
    if layers == list(range(layers[0], layers[-1] + 1)):
        return f"layers {layers[0]}-{layers[-1]}"
    return "layers " + ",".join(map(str, layers))


def series_name(predictor, kernel: str) -> str:
    """The name of a sweep's curve: which predictor (and its fixed settings), which kernel, which
    knob is swept, on which layers. predictor: a HistoryPredictor or LowRankPredictor."""
    where = layers_text(predictor.layers)
    if isinstance(predictor, LowRankPredictor):
        what, knob = f"low-rank r={predictor.rank} sign", "margin"
    else:
        what, knob = "history mask", "tau"
    how = {"masked": ", masked kernel", "combined": " + zero skipping"}.get(kernel, f", {kernel} kernel")
    return f"{what}{how} ({knob} sweep), {where}"


def named_points(points: Dict[str, dict]) -> Dict[str, dict]:
    """reference_points() keyed by their display names (POINT_NAMES)."""
    return {POINT_NAMES.get(k, k): v for k, v in points.items()}


def paper_point(sizes=(784, 512, 512, 512, 512, 10), layers=(3, 4)) -> dict:
    """The paper's (MAC share, accuracy) with the derivation in the module docstring."""
    dense = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    executed = 0
    for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        share = PAPER_ACTIVE[l - 1] if l in layers else 1.0
        executed += a * b * share
    return {"name": "paper (history, layers 3-4)", "mac_share": executed / dense, "accuracy": PAPER_PRED_ACC,
            "dense_accuracy": PAPER_DENSE_ACC,
            "how": "layers 1, 2, 5 dense; layers 3, 4 compute their Table 3 active share (15.78 %, 10.21 %)"}


def _point(model, predictor, x, y, kernel: str, evaluate_pr: bool = True) -> dict:
    from .. import infer
    # scheme "list": the multiply-adds each sample needs on its own, whatever batching would
    # add (the union scheme multiplies a tile-mate's zeros), so the curve describes the predictor
    plan = infer.compile(model, kernel, predictor, mode="batched", scheme="list")
    logits = plan.run(x)
    acc = float(np.mean(np.argmax(logits, 1) == y))
    dense = plan.dense_macs(len(x))
    p = {"accuracy": acc, "macs": plan.last_macs, "predictor_macs": plan.last_predictor_macs,
         "mac_share": (plan.last_macs + plan.last_predictor_macs) / dense, "kernel": kernel,
         "predictor": predictor.describe() if predictor is not None else "none"}
    if evaluate_pr and predictor is not None:
        pr = inactive_precision_recall(model, predictor, x)
        p.update({k: v for k, v in pr["pooled"].items()})
        p["per_layer"] = {str(k): v for k, v in pr["layers"].items()}
    return p


def sweep_knob(model, predictor, knob: str, values: Sequence[float], x, y,
               kernel: str = "combined") -> List[dict]:
    """One point per value of the predictor's `knob` ("tau" or "margin"): the fitted predictor
    is copied with only that knob changed (no refit), and each point records the value."""
    out = []
    for value in values:
        p = _point(model, predictor.copy(**{knob: float(value)}), x, y, kernel)
        p[knob] = float(value)
        out.append(p)
    return out


def sweep_history(model, predictor: HistoryPredictor, x, y, taus: Sequence[float] = DEFAULT_TAUS,
                  kernel: str = "combined") -> List[dict]:
    """One point per tau of a fitted HistoryPredictor."""
    return sweep_knob(model, predictor, "tau", taus, x, y, kernel)


def sweep_lowrank(model, predictor: LowRankPredictor, x, y, margins: Sequence[float] = DEFAULT_MARGINS,
                  kernel: str = "combined") -> List[dict]:
    """One point per margin (in units of the layer's fitted rms error) of a LowRankPredictor."""
    return sweep_knob(model, predictor, "margin", margins, x, y, kernel)


def reference_points(model, x, y) -> Dict[str, dict]:
    """Dense and exact zero-skipping points (no predictor)."""
    return {"dense": _point(model, None, x, y, "dense", False),
            "zeroskip": _point(model, None, x, y, "zeroskip", False)}
