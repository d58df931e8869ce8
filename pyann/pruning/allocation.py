"""Per-layer keep ratios for an allowed accuracy drop, from the measured per-layer sensitivity
curves (pruning.sensitivity / pruning.curves): the paper's uniform split (eq. 4) and a
rate-distortion optimal split (the paper's named future work), each with its computational
gain (eq. 5).

The paper's model (eq. 4): with small per-layer errors, pruning layer i to c'_i connections
(the others untouched) adds an error E_i(c'_i) - E_0 on its own, and the network pruned in
every layer at once has error

    E(c'_1, ..., c'_n) ~= E_0 + sum_i (E_i(c'_i) - E_0)

so the accuracy drop is the sum of the layers' measured drops D_i(d_i) = A_0 - A_i(d_i) at
keep ratios (densities) d_i = c'_i / c_i. The computational gain (eq. 5) is

    c'/c = sum_i c'_i / sum_i c_i = sum_i d_i c_i / sum_i c_i

with c_i the layer's connections, i.e. its dense multiply-adds per sample (a convolution's
kernel size x output positions; sparsity_report's dense_macs).

- uniform (the paper): each of the n layers may lose budget / n; each layer takes the smallest
  measured density whose drop is within its share.
- optimal: minimise sum_i d_i c_i subject to sum_i D_i(d_i) <= budget, each d_i one of the
  layer's measured densities: exact dynamic programming over the layers, keeping at each
  stage only the Pareto-optimal (total drop, total cost) partial allocations (as in Xu et al.,
  ICCV 2023, over measured rate-distortion points). Nothing is discretised, so the optimum
  over the measured points is exact.
Both count a measured drop below 0 (pruning that happened to help) as 0: noise in one layer
must not buy extra pruning in another. Density 1.0 (drop 0) is always a choice.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Dict, List, Optional, Sequence, Tuple

_EPS = 1e-12   # drops are sums of measured floats: compare to the budget with a hair of slack


@dataclasses.dataclass
class Allocation:
    method: str                       # "uniform" or "optimal"
    budget: float                     # allowed accuracy drop (fraction: 0.03 = 3 points)
    baseline: float                   # dense accuracy A_0
    densities: Dict[str, float]       # layer -> keep ratio d_i
    drops: Dict[str, float]           # layer -> its measured drop at d_i (negatives as 0)
    costs: Dict[str, int]             # layer -> connections c_i (dense multiply-adds)

    @property
    def kept(self) -> Dict[str, int]:
        """c'_i = round(d_i c_i)."""
        return {k: int(round(self.densities[k] * self.costs[k])) for k in self.densities}

    @property
    def predicted_drop(self) -> float:
        """Eq. 4's accuracy drop: the sum of the layers' drops."""
        return sum(self.drops.values())

    @property
    def predicted_accuracy(self) -> float:
        return self.baseline - self.predicted_drop

    @property
    def gain(self) -> float:
        """c'/c of eq. 5 (smaller is better: the share of multiply-adds left)."""
        total = sum(self.costs.values())
        return sum(self.densities[k] * self.costs[k] for k in self.costs) / total

    def to_dict(self) -> dict:
        return {"method": self.method, "budget": self.budget, "baseline": self.baseline,
                "layers": [{"layer": k, "connections": self.costs[k], "density": self.densities[k],
                            "kept": self.kept[k], "drop": self.drops[k]} for k in self.costs],
                "predicted_drop": self.predicted_drop, "predicted_accuracy": self.predicted_accuracy,
                "gain": self.gain}

    def __str__(self) -> str:
        from tabulate import tabulate
        table = [(k, f"{self.costs[k]:,}", f"{self.kept[k]:,}", f"{self.densities[k]:.3f}",
                  f"{100 * self.drops[k]:.2f}") for k in self.costs]
        table.append(("total", f"{sum(self.costs.values()):,}", f"{sum(self.kept.values()):,}",
                      f"{self.gain:.3f}", f"{100 * self.predicted_drop:.2f}"))
        body = tabulate(table, headers=("layer", "connections c", "kept c'", "c'/c", "drop (points)"),
                        colalign=("left", "right", "right", "right", "right"))
        return (f"{self.method} allocation for a drop of {100 * self.budget:.2f} points "
                f"(dense accuracy {100 * self.baseline:.2f}%)\n{body}")

    __repr__ = __str__


def _prepare(curves: Dict[str, Sequence[Tuple[float, float]]], costs: Dict[str, int], budget: float,
             baseline: Optional[float]):
    """Validated (baseline, {layer: [(density, drop), ...]}, costs) with density 1.0 present."""
    if not isinstance(curves, dict) or not curves:
        raise ValueError("curves must be a non-empty dict {layer: [(density, accuracy), ...]}")
    if not (isinstance(budget, numbers.Real) and not isinstance(budget, bool) and math.isfinite(budget) and budget >= 0):
        raise ValueError(f"budget must be a finite accuracy drop >= 0 (0.03 = 3 points), got {budget!r}")
    missing = sorted(set(curves) - set(costs))
    if missing:
        raise ValueError(f"no connection count (cost) for layers {missing}")
    for k in curves:
        c = costs[k]
        if isinstance(c, bool) or not isinstance(c, numbers.Real) or not (math.isfinite(c) and c > 0):
            raise ValueError(f"the cost of layer {k!r} must be a positive number of connections, got {c!r}")
    if baseline is None:
        refs = {k: a for k, pts in curves.items() for d, a in pts if d == 1.0}
        if set(refs) != set(curves):
            raise ValueError("baseline not given and some curves have no density-1.0 point: pass the "
                             "dense accuracy as baseline")
        baseline = max(refs.values())
    points = {}
    for k, pts in curves.items():
        clean = []
        for d, a in pts:
            if not (0.0 <= d <= 1.0 and math.isfinite(a)):
                raise ValueError(f"layer {k!r}: need densities in [0, 1] and finite accuracies, got ({d}, {a})")
            if d < 1.0:
                clean.append((float(d), max(0.0, float(baseline) - float(a))))
        # a layer left dense costs nothing: a measured density-1.0 point below the baseline (the
        # noise of a retrained curve) must not make every split infeasible
        clean.append((1.0, 0.0))
        points[k] = sorted(clean)
    return float(baseline), points, {k: costs[k] for k in curves}


def uniform(curves, costs, budget: float, baseline: Optional[float] = None) -> Allocation:
    """The paper's split (eq. 4): each of the n layers may lose budget / n; each takes the
    smallest measured density whose drop is within that share.
    curves: {layer: [(density, accuracy), ...]}; costs: {layer: connections (dense MACs)};
    baseline: the dense accuracy (default: the curves' density-1.0 accuracy)."""
    baseline, points, costs = _prepare(curves, costs, budget, baseline)
    share = budget / len(points)
    densities, drops = {}, {}
    for k, pts in points.items():
        d, drop = min((p for p in pts if p[1] <= share + _EPS), key=lambda p: (p[0], p[1]))
        densities[k], drops[k] = d, drop
    return Allocation("uniform", float(budget), baseline, densities, drops, costs)


def optimal(curves, costs, budget: float, baseline: Optional[float] = None) -> Allocation:
    """The fewest total connections sum d_i c_i whose summed drop is within the budget, over
    the measured points (exact DP over Pareto fronts; see the module docstring). Arguments as
    uniform(). Among allocations of equal cost, the one of smaller drop."""
    baseline, points, costs = _prepare(curves, costs, budget, baseline)
    names = list(points)
    # each state: (total drop, total cost, choice index per layer so far); the front holds the
    # states no other state beats on both drop and cost
    front: List[Tuple[float, float, tuple]] = [(0.0, 0.0, ())]
    for k in names:
        grown = [(drop + dd, cost + d * costs[k], choice + (j,))
                 for drop, cost, choice in front
                 for j, (d, dd) in enumerate(points[k]) if drop + dd <= budget + _EPS]
        grown.sort(key=lambda s: (s[0], s[1]))
        front, best = [], math.inf
        for state in grown:
            if state[1] < best:
                front.append(state)
                best = state[1]
    _, _, choice = min(front, key=lambda s: (s[1], s[0]))
    densities = {k: points[k][j][0] for k, j in zip(names, choice)}
    drops = {k: points[k][j][1] for k, j in zip(names, choice)}
    return Allocation("optimal", float(budget), baseline, densities, drops, costs)


def allocate(curves, costs, budget: float, baseline: Optional[float] = None) -> Dict[str, Allocation]:
    """Both allocations: {"uniform": ..., "optimal": ...}."""
    return {"uniform": uniform(curves, costs, budget, baseline),
            "optimal": optimal(curves, costs, budget, baseline)}


def apply_allocation(model, allocation: Allocation, block=None) -> Dict[str, int]:
    """Prune model (in place, by magnitude) to the allocation's densities; returns {layer:
    weights newly pruned}. Retrain it afterwards to measure the accuracy actually reached."""
    from .masks import prune_to_density
    return prune_to_density(model, dict(allocation.densities), block=block)
