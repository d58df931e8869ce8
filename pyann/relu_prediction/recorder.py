"""ActivationRecorder: hidden-layer activation states on a fixed probe set, every epoch.

A `fit` callback. At the end of every epoch it runs the probe inputs through the model (eval
mode, via `hidden_states`) and keeps each hidden layer's boolean states (ReLU output > 0),
bit-packed along the neuron axis (np.packbits), so 20 epochs x 4 layers x 2,000 probes x 512
neurons take 10 MB instead of 80.

The statistics the study needs are plain functions of state arrays, so they can be checked by
hand on small examples:

    state_agreement(prev, cur)      Figure 2's probability: mean over samples and neurons of
                                    [cur == prev]
    stay_off_probability(prev, cur) P(cur off | prev off), what a "skip if it was off" predictor
                                    relies on
    agreement_by_epoch(states)      both, for every epoch e whose epoch e-1 was recorded
    firing_rate_summary(rates)      dead / rarely-on / always-on counts and a histogram
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..train import Callback
from .activations import hidden_layers, hidden_states

#: Thresholds for the firing-rate categories (share of inputs on which a neuron is active).
RARE_BELOW = 0.05
ALWAYS_ABOVE = 0.95
#: Histogram bins of per-neuron firing rates: 50 bins of width 2 % on [0, 1].
RATE_BINS = np.linspace(0.0, 1.0, 51)


def state_agreement(prev: np.ndarray, cur: np.ndarray) -> float:
    """Share of (sample, neuron) pairs whose state is the same in `prev` and `cur` (bool, same shape)."""
    prev, cur = np.asarray(prev, bool), np.asarray(cur, bool)
    if prev.shape != cur.shape:
        raise ValueError(f"state arrays differ in shape: {prev.shape} vs {cur.shape}")
    if prev.size == 0:
        raise ValueError("state arrays are empty")
    return float(np.mean(prev == cur))


def stay_off_probability(prev: np.ndarray, cur: np.ndarray) -> Optional[float]:
    """P(cur is off | prev was off) over (sample, neuron) pairs; None when nothing was off."""
    prev, cur = np.asarray(prev, bool), np.asarray(cur, bool)
    if prev.shape != cur.shape:
        raise ValueError(f"state arrays differ in shape: {prev.shape} vs {cur.shape}")
    off = ~prev
    n_off = int(off.sum())
    return None if n_off == 0 else float((off & ~cur).sum() / n_off)


def agreement_by_epoch(states: Mapping[int, Sequence[np.ndarray]]) -> dict:
    """Figure 2 from recorded states.

    states: {epoch: [bool (N, width_k) per hidden layer]}. For every recorded epoch e whose
    previous epoch e-1 is also recorded, per layer k:
        agreement[k][i] = mean over samples and neurons of [state_e == state_{e-1}]
        stay_off[k][i]  = P(state_e off | state_{e-1} off)
    Returns {"epochs": [e, ...], "agreement": [[...] per layer], "stay_off": [[...] per layer]}.
    """
    epochs = sorted(states)
    pairs = [e for e in epochs if e - 1 in states]
    n_layers = len(states[epochs[0]]) if epochs else 0
    agreement = [[state_agreement(states[e - 1][k], states[e][k]) for e in pairs] for k in range(n_layers)]
    stay_off = [[stay_off_probability(states[e - 1][k], states[e][k]) for e in pairs] for k in range(n_layers)]
    return {"epochs": pairs, "agreement": agreement, "stay_off": stay_off}


def firing_rate_summary(rates: np.ndarray, rare_below: float = RARE_BELOW,
                        always_above: float = ALWAYS_ABOVE, bins: np.ndarray = RATE_BINS) -> dict:
    """Categories and histogram of one layer's per-neuron firing rates (floats in [0, 1]).

    dead: rate == 0 (never active on the set); rare: 0 < rate < rare_below; always: rate >
    always_above; never_off: rate == 1. The histogram's first bin [0, 0.02) includes the dead
    neurons. Counts are ints, rates are shares in [0, 1]."""
    rates = np.asarray(rates, np.float64)
    if rates.ndim != 1 or rates.size == 0:
        raise ValueError(f"rates must be a non-empty 1-D array, got shape {rates.shape}")
    counts, edges = np.histogram(np.clip(rates, 0.0, 1.0), bins=bins)
    return {
        "neurons": int(rates.size),
        "dead": int(np.sum(rates == 0)),
        "rare": int(np.sum((rates > 0) & (rates < rare_below))),
        "always": int(np.sum(rates > always_above)),
        "never_off": int(np.sum(rates == 1)),
        "mean": float(rates.mean()),
        "median": float(np.median(rates)),
        "rare_below": rare_below,
        "always_above": always_above,
        "hist_counts": counts.astype(int).tolist(),
        "hist_edges": edges.tolist(),
    }


class ActivationRecorder(Callback):
    """Record every hidden layer's binary states on the fixed `probe_x` at the end of every epoch.

    probe_x: float32 inputs (N, ...) the model accepts; the same images every epoch.
    After fit: `epochs` (recorded epoch numbers), `states(epoch)` (bool arrays per layer),
    `layer_states(k)` (bool (epochs, N, width) of hidden layer k, 1-based), `agreement()`
    (Figure 2), `active_share()` (share of active states per layer and epoch), `packed()` (the
    raw packed arrays, for saving). A new fit starts a new record; a fit resumed from a
    checkpoint keeps what was recorded and adds the epochs it runs.
    """

    def __init__(self, probe_x: np.ndarray, batch_size: int = 1000):
        probe_x = np.asarray(probe_x)
        if probe_x.dtype != np.float32:
            raise ValueError(f"probe_x must be float32 model inputs, got {probe_x.dtype}")
        if len(probe_x) == 0:
            raise ValueError("probe_x is empty")
        self.probe_x = probe_x
        self.batch_size = batch_size
        self.widths: List[int] = []
        self._packed: Dict[int, List[np.ndarray]] = {}

    # -- Callback hooks ----------------------------------------------------------------------
    def on_train_begin(self, model, history) -> None:
        widths = [lin.out_features for _, lin in hidden_layers(model)]
        if self.widths and widths != self.widths:
            raise ValueError(f"ActivationRecorder was used with hidden widths {self.widths}, now {widths}")
        if not history.epochs:  # a fresh run: forget any earlier record
            self._packed = {}
        self.widths = widths

    def on_epoch_end(self, epoch, model, logs) -> None:
        states = hidden_states(model, self.probe_x, batch_size=self.batch_size)
        self._packed[int(epoch)] = [np.packbits(s, axis=1) for s in states]

    # -- access --------------------------------------------------------------------------------
    @property
    def epochs(self) -> List[int]:
        return sorted(self._packed)

    @property
    def num_layers(self) -> int:
        return len(self.widths)

    def states(self, epoch: int) -> List[np.ndarray]:
        """Bool (N, width_k) per hidden layer at the end of `epoch`."""
        if epoch not in self._packed:
            raise KeyError(f"epoch {epoch} was not recorded; recorded epochs: {self.epochs}")
        return [np.unpackbits(p, axis=1, count=w).astype(bool)
                for p, w in zip(self._packed[epoch], self.widths)]

    def layer_states(self, layer: int) -> np.ndarray:
        """Bool (recorded epochs, N, width) of hidden layer `layer` (1-based)."""
        if not 1 <= layer <= self.num_layers:
            raise ValueError(f"hidden layer {layer} does not exist; layers are 1..{self.num_layers}")
        w = self.widths[layer - 1]
        return np.stack([np.unpackbits(self._packed[e][layer - 1], axis=1, count=w).astype(bool)
                         for e in self.epochs])

    def agreement(self) -> dict:
        """Figure 2: see `agreement_by_epoch`."""
        return agreement_by_epoch({e: self.states(e) for e in self.epochs})

    def active_share(self) -> dict:
        """{"epochs": [...], "share": [[share of active (sample, neuron) states per epoch] per layer]}."""
        shares = [[float(np.mean(self.states(e)[k])) for e in self.epochs] for k in range(self.num_layers)]
        return {"epochs": self.epochs, "share": shares}

    def packed(self) -> Dict[str, np.ndarray]:
        """Arrays to save: "epochs" (E,), "widths" (L,), "layer{k}" uint8 (E, N, ceil(width/8))
        packed along the neuron axis (np.unpackbits(a, axis=2, count=width) restores them)."""
        out = {"epochs": np.array(self.epochs, np.int32), "widths": np.array(self.widths, np.int32)}
        n = len(self.probe_x)
        for k, w in enumerate(self.widths):
            per_epoch = [self._packed[e][k] for e in self.epochs]
            out[f"layer{k + 1}"] = np.stack(per_epoch) if per_epoch else np.zeros((0, n, (w + 7) // 8), np.uint8)
        return out
