"""Hidden-layer activation states of an MLP (paper 1, ReLU prediction).

The paper numbers hidden layers 1..L: hidden layer k is the k-th Linear of the Sequential that is
followed by a ReLU; its "state" for an input is the boolean vector ReLU(x W + b) > 0 ("acti").
The final Linear (the logits) is not a hidden layer.

    hidden_layers(model)            -> [(index in the Sequential, Linear), ...]   (hidden 1..L)
    hidden_states(model, x)         -> [bool (N, width_k), ...]                   (eval mode)
    firing_rates(model, x)          -> [float (width_k,), ...]  share of inputs that activate
    check_layers(model, layers)     -> validated tuple of 1-based hidden-layer numbers
"""
from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..nn import Flatten, Linear, ReLU, Sequential
from ..nn.container import hidden_layers   # noqa: F401  (re-exported: part of this module's API)


def _sequence(model) -> list:
    if isinstance(model, Sequential):
        return model.layers
    raise ValueError(f"model must be a pyann.nn.Sequential MLP, got {type(model).__name__}")


def check_layers(model, layers: Optional[Iterable[int]]) -> Tuple[int, ...]:
    """Validate 1-based hidden-layer numbers against `model`. None means every hidden layer.

    Raises ValueError naming the bad number and the valid range."""
    n = len(hidden_layers(model))
    if layers is None:
        return tuple(range(1, n + 1))
    if isinstance(layers, (int, np.integer)):
        layers = (int(layers),)
    result = []
    for k in layers:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise ValueError(f"layers: hidden-layer numbers must be ints, got {k!r}")
        if not 1 <= int(k) <= n:
            raise ValueError(f"layers: hidden layer {int(k)} does not exist; this model has hidden "
                             f"layers 1..{n}")
        result.append(int(k))
    if len(set(result)) != len(result):
        raise ValueError(f"layers: repeated hidden-layer number in {result}")
    return tuple(sorted(result))


def _relu_outputs(model, x: np.ndarray, chosen: Tuple[int, ...], batch_size: int):
    """Run `model` in eval mode over x in batches; yield (start row, slot, ReLU output) for each
    chosen hidden layer (slot = its position in `chosen`), stopping after the last one needed.
    The model's training flag is restored afterwards."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    seq = _sequence(model)
    hidden = hidden_layers(model)
    slot_of_relu = {hidden[k - 1][0] + 1: slot for slot, k in enumerate(chosen)}  # ReLU index -> slot
    last = max(slot_of_relu)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, x.shape[0], batch_size):
            h = x[start:start + batch_size].astype(np.float32, copy=False)
            for i, m in enumerate(seq[:last + 1]):
                h = m.forward(h)
                if i in slot_of_relu:
                    yield start, slot_of_relu[i], h
    finally:
        model.train(was_training)


def hidden_states(model, x: np.ndarray, batch_size: int = 1000,
                  layers: Optional[Sequence[int]] = None) -> List[np.ndarray]:
    """Boolean states (ReLU output > 0) of the hidden layers for inputs x, in eval mode.

    x: (N, ...) inputs the model accepts. Returns one bool array (N, width_k) per hidden layer
    (all hidden layers, or the 1-based `layers` asked for, in increasing order). The model's
    training flag is restored afterwards."""
    chosen = check_layers(model, layers)
    hidden = hidden_layers(model)
    x = np.asarray(x)
    states = [np.zeros((x.shape[0], hidden[k - 1][1].out_features), bool) for k in chosen]
    for start, slot, h in _relu_outputs(model, x, chosen, batch_size):
        states[slot][start:start + len(h)] = h > 0
    return states


def firing_rates(model, x: np.ndarray, batch_size: int = 1000,
                 layers: Optional[Sequence[int]] = None) -> List[np.ndarray]:
    """Share of the inputs x for which each neuron is active, per hidden layer: float64 (width_k,).

    Take x from the TRAINING set when the rates feed a predictor (the paper's history mask)."""
    chosen = check_layers(model, layers)
    hidden = hidden_layers(model)
    x = np.asarray(x)
    if x.shape[0] == 0:
        raise ValueError("firing_rates needs at least one input")
    counts = [np.zeros(hidden[k - 1][1].out_features, np.int64) for k in chosen]
    for _, slot, h in _relu_outputs(model, x, chosen, batch_size):
        counts[slot] += (h > 0).sum(axis=0)
    return [c / x.shape[0] for c in counts]
