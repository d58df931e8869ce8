"""Latency-aware selection: one candidate per position, maximising the summed LANA scores under
a latency budget (LANA's own goal, which the paper stops short of).

The latency model is additive in the blocks, measured once per candidate (latency.py):

    predicted_ms = network_ms - sum_p original_ms[p] + sum_p chosen_ms[p]

so the problem is a multiple-choice knapsack: pick exactly one item (candidate) from each group
(position), value = score, weight = ms, total weight <= budget - (network - sum original). It is
solved exactly by dynamic programming over positions that keeps the Pareto front of partial
choices: a partial choice is dropped only when another one is at most as slow AND scores at least
as high, which can never be worse in any completion. Latencies stay floats (no discretisation into
ms buckets, which would make the answer depend on the bucket size). The front is at most
prod(candidates per position) long and in practice tiny (3 positions x 7 candidates: <= 343).

Inputs are the study's own shapes: `latency` is results.json's "latency" section (see
latency.measure_latency), `scores` maps (position, candidate) -> LANA score (accuracy with only
that block swapped); positions may be ints or the strings JSON gives back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

# how far (relative) a float latency sum may exceed the budget and still count as within it: the
# same sum formed in another order (a brute-force check, a report) can differ in its last bits,
# and a budget set to exactly a choice's latency must admit that choice
_REL_TOL = 1e-12


@dataclass(frozen=True)
class Selection:
    choice: Dict[int, str]          # position -> candidate name
    predicted_ms: float
    score_sum: float
    budget_ms: Optional[float] = None
    batch: Optional[int] = None


def _ms_table(latency: Mapping, batch: int) -> Dict[int, Dict[str, float]]:
    """{pos: {name: ms}} at `batch` from the latency section (registry order kept)."""
    table: Dict[int, Dict[str, float]] = {}
    for row in latency["blocks"]:
        ms = row["ms"].get(str(batch), row["ms"].get(batch))
        if ms is None:
            raise ValueError(f"the latency table has no batch {batch} (it has {sorted(row['ms'])})")
        table.setdefault(int(row["position"]), {})[row["candidate"]] = float(ms)
    for pos, row in table.items():
        if "original" not in row:
            raise ValueError(f"the latency table has no 'original' at position {pos}: "
                             "the predicted network latency needs it")
    return table


def _network_ms(latency: Mapping, batch: int) -> float:
    net = latency["network"]
    return float(net.get(str(batch), net.get(batch)))


def _score_table(scores: Mapping, ms: Dict[int, Dict[str, float]],
                 original_score: Optional[float]) -> Dict[int, Dict[str, Tuple[float, float]]]:
    """{pos: {name: (ms, score)}} of the candidates that have both a latency and a score; the
    original is always offered (its score: scores[(pos, "original")], else original_score)."""
    by_key = {(int(p), n): float(s) for (p, n), s in scores.items()}
    items: Dict[int, Dict[str, Tuple[float, float]]] = {}
    for pos, row in sorted(ms.items()):
        items[pos] = {}
        for name, t in row.items():
            s = by_key.get((pos, name), original_score if name == "original" else None)
            if s is None and name == "original":
                raise ValueError(f"no score for 'original' at position {pos}: pass it in scores or as original_score")
            if s is not None:
                items[pos][name] = (t, s)
    return items


def _offset(latency: Mapping, batch: int, ms: Dict[int, Dict[str, float]]) -> float:
    """network - sum of the original blocks: the part of the network no choice changes."""
    return _network_ms(latency, batch) - sum(row["original"] for row in ms.values())


def _pareto(states: List[tuple]) -> List[tuple]:
    """Keep the states (ms, score, choice) no other state dominates: sorted by ms, then by
    score descending, a state survives only if it scores strictly more than every faster one.
    Latencies within float noise (_REL_TOL) count as equal: sums of the same times in another
    order differ in the last bits, and a state 2e-18 ms faster but scoring less is no choice."""
    states.sort(key=lambda s: (s[0], -s[1]))
    kept, best = [], float("-inf")
    for s in states:
        if s[1] > best:
            while kept and s[0] - kept[-1][0] <= _REL_TOL * max(1.0, abs(s[0])):
                kept.pop()        # as fast as s within noise, and scoring less
            kept.append(s)
            best = s[1]
    return kept


def _front(items: Dict[int, Dict[str, Tuple[float, float]]], cap: float = float("inf")) -> List[tuple]:
    """The Pareto front of complete choices (sum ms, sum score, ((pos, name), ...)) whose summed
    ms can stay within `cap`; partial sums that cannot (even with the fastest candidates at the
    positions left) are dropped early."""
    positions = sorted(items)
    fastest_rest = [sum(min(t for t, _ in items[q].values()) for q in positions[i + 1:])
                    for i in range(len(positions))]
    states = [(0.0, 0.0, ())]
    for i, pos in enumerate(positions):
        grown = [(t0 + t, s0 + s, c + ((pos, name),)) for t0, s0, c in states
                 for name, (t, s) in items[pos].items() if t0 + t + fastest_rest[i] <= cap]
        states = _pareto(grown)
    return states


def _within(predicted: float, budget: float) -> bool:
    return predicted <= budget + _REL_TOL * max(1.0, abs(budget))


def fastest_ms(latency: Mapping, batch: int, scores: Optional[Mapping] = None,
               original_score: Optional[float] = None) -> float:
    """The predicted latency of the fastest network: the fastest candidate at every position
    (only candidates with a score when `scores` is given)."""
    ms = _ms_table(latency, batch)
    if scores is not None:
        ms = {p: {n: t for n, (t, _) in row.items()} for p, row in _score_table(scores, ms, original_score).items()}
    return _offset(latency, batch, _ms_table(latency, batch)) + sum(min(row.values()) for row in ms.values())


def pareto_front(latency: Mapping, scores: Mapping, batch: int,
                 original_score: Optional[float] = None) -> List[Selection]:
    """Every selection no other beats on both predicted latency and summed score, fastest first:
    the whole accuracy/latency trade-off, of which `select` picks one point per budget."""
    ms = _ms_table(latency, batch)
    offset = _offset(latency, batch, ms)
    return [Selection(dict(c), offset + t, s, None, batch)
            for t, s, c in _front(_score_table(scores, ms, original_score))]


def select(latency: Mapping, scores: Mapping, budget_ms: float, batch: int,
           original_score: Optional[float] = None) -> Selection:
    """The choice {pos: name} with the highest summed score whose predicted latency is within
    budget_ms; ties in score go to the faster choice. ValueError when the budget is below the
    fastest possible network (both numbers in the message)."""
    ms = _ms_table(latency, batch)
    items = _score_table(scores, ms, original_score)
    offset = _offset(latency, batch, ms)
    floor = offset + sum(min(t for t, _ in row.values()) for row in items.values())
    if not _within(floor, budget_ms):
        raise ValueError(f"latency budget {budget_ms:.4g} ms at batch {batch} is below the fastest possible "
                         f"network, {floor:.4g} ms (the fastest candidate at every position)")
    front = _front(items, cap=budget_ms - offset + _REL_TOL * max(1.0, abs(budget_ms)))
    feasible = [s for s in front if _within(offset + s[0], budget_ms)]
    t, s, c = max(feasible, key=lambda st: (st[1], -st[0]))
    return Selection(dict(c), offset + t, s, float(budget_ms), int(batch))
