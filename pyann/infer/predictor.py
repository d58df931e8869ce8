"""What an inference plan needs of an activation predictor: the interface, not an implementation.

pyann.relu_prediction's HistoryPredictor and LowRankPredictor implement it; a user's predictor
does too by offering these attributes and methods (duck typing; ActivationPredictor is a
typing.Protocol, for documentation and static checks). Hidden layers are numbered 1..L as
pyann.nn.container.hidden_layers numbers them.

    kind            "shared": one on/off decision per neuron for every input (mask(k));
                    "per_sample": a low-rank score per input (factors[k], margin_abs(k)):
                    neuron j of layer k is computed when (h @ u) @ v [j] + b[j] > -margin
    layers          the hidden layers it predicts, e.g. (3, 4)
    rates           per hidden layer, each neuron's firing rate on the training data (or None):
                    a plan may reorder neurons by it (reorder=True)
    check_model(m)  raise ValueError unless fitted on model m (same weights: nn.module.fingerprint)
    mask(k)         "shared": uint8 (width_k,), 1 = computed
    factors[k]      "per_sample": (u (in_k, r), v (r, width_k))
    margin_abs(k)   "per_sample": the margin in the units of layer k's pre-activation
    describe()      one line for plan.describe()
"""
from __future__ import annotations

from typing import Dict, List, Optional, Protocol, Sequence, Tuple

import numpy as np


class ActivationPredictor(Protocol):
    kind: str
    layers: Sequence[int]
    rates: Optional[List[np.ndarray]]
    factors: Dict[int, Tuple[np.ndarray, np.ndarray]]

    def check_model(self, model) -> None: ...

    def mask(self, k: int) -> np.ndarray: ...

    def margin_abs(self, k: int) -> float: ...

    def describe(self) -> str: ...
