"""The paper's error model (eq. 1-3): the error of a pruned network as a function of the number
of connections c it keeps, with a sensitivity s, fitted from two measured points, and used to
predict the error between measured pruning ratios instead of retraining at each one.

The equations' symbols did not survive the extraction of the paper's text, but its words fix
their shape: eq. 1 has two unknowns, the sensitivity s and a scale; eq. 2 writes eq. 1 at two
measured points, one before the knee (many connections, error still near the dense error) and
one after it (few connections, error rising fast); eq. 3 solves the pair with a logarithm. The
error rising exponentially as connections are removed is

    (1)  e(c) = a * exp(-s * c)
    (2)  e_1 = a * exp(-s * c_1)    (c_1: before the knee)
         e_2 = a * exp(-s * c_2)    (c_2 < c_1: after the knee)
    (3)  s = ln(e_2 / e_1) / (c_1 - c_2),    a = e_1 * exp(s * c_1)

form="power" is the other two-unknown reading, a power law e(c) = a * c^(-s) with
s = ln(e_2 / e_1) / ln(c_1 / c_2) and a = e_1 * c_1^s. c may be counted in connections or as
the share kept (s changes unit with it); e is the error rate 1 - accuracy, in [0, 1].
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Iterable, List, Sequence, Tuple

FORMS = ("exp", "power")


@dataclasses.dataclass(frozen=True)
class ErrorModel:
    a: float
    s: float                      # the sensitivity
    form: str                     # "exp" or "power"
    fitted_on: Tuple[Tuple[float, float], Tuple[float, float]]   # ((c_1, e_1), (c_2, e_2))

    @classmethod
    def fit(cls, c_before: float, e_before: float, c_after: float, e_after: float,
            form: str = "exp") -> "ErrorModel":
        """Eq. 3 from the two measured points (connections, error rate). ValueError unless
        c_before > c_after > 0 and 0 < e_before < e_after (both errors positive: the fit takes
        their logarithm; the point after the knee must have the larger error)."""
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        values = (c_before, e_before, c_after, e_after)
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise ValueError(f"the two points must be finite numbers, got {values}")
        if not c_before > c_after > 0:
            raise ValueError(f"need c_before > c_after > 0 (the point before the knee keeps more "
                             f"connections), got c_before={c_before}, c_after={c_after}")
        if not 0 < e_before < e_after:
            raise ValueError(f"need 0 < e_before < e_after (error rates; the error grows after the "
                             f"knee), got e_before={e_before}, e_after={e_after}")
        ratio = math.log(e_after / e_before)
        if form == "exp":
            s = ratio / (c_before - c_after)
            a = e_before * math.exp(s * c_before)
        else:
            s = ratio / math.log(c_before / c_after)
            a = e_before * c_before ** s
        return cls(a, s, form, ((float(c_before), float(e_before)), (float(c_after), float(e_after))))

    def error(self, c: float) -> float:
        """e(c), eq. 1 (may exceed 1 far below the knee: the model is for its fitted region)."""
        if self.form == "exp":
            return self.a * math.exp(-self.s * c)
        if c <= 0:
            return math.inf
        return self.a * c ** (-self.s)

    def accuracy(self, c: float) -> float:
        return 1.0 - self.error(c)

    def connections_for(self, error: float) -> float:
        """The c where e(c) = error: the fewest connections the model allows for that error."""
        if not error > 0:
            raise ValueError(f"error must be > 0, got {error}")
        if self.form == "exp":
            return math.log(self.a / error) / self.s
        return (self.a / error) ** (1.0 / self.s)

    @property
    def region(self) -> Tuple[float, float]:
        """(c_2, c_1): the connections between the two fitted points."""
        return (self.fitted_on[1][0], self.fitted_on[0][0])

    def held_out(self, points: Iterable[Tuple[float, float]]) -> dict:
        """How well the model predicts measured (connections, error) points other than the two
        it was fitted on, in accuracy points (100 x error rates).

        Returns {"points": [{c, measured, predicted, error_points, in_region}], "in_region":
        {n, max_error_points, mean_error_points}, "outside": {same}}: in_region is the
        stretch between the two fitted points, where the paper uses the model."""
        used = {self.fitted_on[0][0], self.fitted_on[1][0]}
        lo, hi = self.region
        rows = []
        for c, e in points:
            if c in used:
                continue
            predicted = self.error(c)
            rows.append({"c": float(c), "measured": float(e), "predicted": predicted,
                         "error_points": 100.0 * abs(predicted - e), "in_region": lo <= c <= hi})
        return {"points": rows,
                "in_region": _stats([r["error_points"] for r in rows if r["in_region"]]),
                "outside": _stats([r["error_points"] for r in rows if not r["in_region"]])}

    def to_dict(self) -> dict:
        return {"form": self.form, "a": self.a, "s": self.s,
                "fitted_on": [list(p) for p in self.fitted_on]}


def _stats(errors: List[float]) -> dict:
    if not errors:
        return {"n": 0, "max_error_points": None, "mean_error_points": None}
    return {"n": len(errors), "max_error_points": max(errors), "mean_error_points": sum(errors) / len(errors)}


def knee_points(points: Sequence[Tuple[float, float]], tolerance: float) -> Tuple[Tuple[float, float],
                                                                                   Tuple[float, float]]:
    """A choice of the two points of eq. 2 from measured (connections, error) points: before
    the knee, the fewest connections whose error is within `tolerance` of the error with the
    most connections; after it, the next measured point with fewer connections. ValueError
    when no point lies past the knee."""
    ordered = sorted(points, key=lambda p: -p[0])
    if len(ordered) < 2:
        raise ValueError("need at least two measured points")
    reference = ordered[0][1]
    before = 0
    for i, (_, e) in enumerate(ordered):
        if e > reference + tolerance:
            break
        before = i
    if before + 1 >= len(ordered):
        raise ValueError(f"no measured point lies past the knee (every error is within {tolerance} "
                         f"of {reference}): measure with fewer connections")
    return tuple(ordered[before]), tuple(ordered[before + 1])
