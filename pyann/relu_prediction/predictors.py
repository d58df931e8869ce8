"""Activation predictors: the `acti` decision (compute this neuron or write 0) for chosen layers.

    HistoryPredictor(tau, layers)   the paper's method: one mask per neuron, shared by every
                                    input: neuron j of hidden layer k is computed when its firing
                                    rate on recorded TRAINING activations is >= tau. Free at run
                                    time (the mask is fixed at compile time).
    LowRankPredictor(rank, margin, layers)
                                    per sample: a rank-r factorisation u (in, r), v (r, out) of the
                                    layer, fitted on training activations, predicts the
                                    pre-activation s = h @ u @ v + b; the neuron is computed when
                                    s > -margin * sigma (sigma: the rms error of s on the training
                                    activations). Costs r * (inputs used + out) multiply-adds per
                                    sample and layer, which the plans count and time.

Both record the firing rates of every hidden layer at fit time (the inference plans order each
layer's neurons by them), and a fingerprint of the model they were fitted on, so that a plan
cannot be built from a predictor and a different model. Hidden layers are numbered 1..L as in
the paper (relu_prediction.activations); the paper's choice is layers 3 and 4.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..nn.module import fingerprint as model_fingerprint   # the name this package always used
from .activations import check_layers, firing_rates, hidden_layers, hidden_states

PAPER_LAYERS = (3, 4)


def layer_inputs(model, x: np.ndarray, layers: Sequence[int], batch_size: int = 1000) -> Dict[int, np.ndarray]:
    """Inputs of the chosen hidden layers' Linear (the previous ReLU's output, or the flattened
    image for hidden layer 1), for inputs x, in eval mode: {k: float32 (N, in_k)}."""
    seq = model.layers
    hidden = hidden_layers(model)
    want = {hidden[k - 1][0]: k for k in layers}
    last = max(want)
    out = {k: [] for k in layers}
    was = model.training
    model.eval()
    try:
        for s in range(0, len(x), batch_size):
            h = np.asarray(x[s:s + batch_size], np.float32)
            for i, m in enumerate(seq[:last + 1]):
                if i in want:
                    out[want[i]].append(h)
                h = m.forward(h)
    finally:
        model.train(was)
    return {k: np.concatenate(v) for k, v in out.items()}


class Predictor:
    """Base: `layers` (1-based hidden layers), `fit(model, x_train)`, `rates` after fitting."""

    kind = "shared"   # "shared": one mask per neuron; "per_sample": a decision per input

    def __init__(self, layers: Optional[Sequence[int]] = PAPER_LAYERS):
        self.layers = None if layers is None else tuple(int(k) for k in layers)
        self.rates: Optional[List[np.ndarray]] = None   # firing rate per hidden layer, training data
        self.fingerprint: Optional[str] = None
        self.n_fit = 0

    @property
    def fitted(self) -> bool:
        return self.fingerprint is not None

    def _fit_common(self, model, x_train, batch_size):
        self.layers = check_layers(model, self.layers)
        self.rates = firing_rates(model, x_train, batch_size=batch_size)
        self.fingerprint = model_fingerprint(model)
        self.n_fit = len(x_train)

    def check_model(self, model) -> None:
        """ValueError unless fitted on `model` (same weights)."""
        if not self.fitted:
            raise ValueError(f"{type(self).__name__} is not fitted: call .fit(model, x_train) first")
        if model_fingerprint(model) != self.fingerprint:
            raise ValueError(f"{type(self).__name__} was fitted on another model (fingerprint "
                             f"{self.fingerprint}, this model {model_fingerprint(model)}); fit it on this model")

    def predict_active(self, k: int, h: np.ndarray, b: Optional[np.ndarray]) -> np.ndarray:
        """Bool (N, width_k): predicted active, for inputs h (N, in_k) of hidden layer k."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def copy(self, **changes) -> "Predictor":
        other = copy.copy(self)
        for key, value in changes.items():
            if not hasattr(other, key):
                raise ValueError(f"{type(self).__name__} has no setting {key!r}")
            setattr(other, key, value)
        return other


class HistoryPredictor(Predictor):
    """The paper's history mask: neuron active when its training firing rate >= tau."""

    kind = "shared"

    def __init__(self, tau: float = 0.5, layers: Optional[Sequence[int]] = PAPER_LAYERS):
        super().__init__(layers)
        if not 0.0 <= float(tau) <= 1.0:
            raise ValueError(f"tau must be in [0, 1], got {tau}")
        self.tau = float(tau)

    def fit(self, model, x_train: np.ndarray, batch_size: int = 1000) -> "HistoryPredictor":
        """Record the firing rates of every hidden layer on x_train (training images)."""
        self._fit_common(model, x_train, batch_size)
        return self

    def mask(self, k: int) -> np.ndarray:
        """uint8 (width_k,): 1 where hidden layer k's neuron is computed."""
        if not self.fitted:
            raise ValueError("HistoryPredictor is not fitted: call .fit(model, x_train) first")
        if k not in self.layers:
            raise ValueError(f"hidden layer {k} is not one of this predictor's layers {self.layers}")
        return (self.rates[k - 1] >= self.tau).astype(np.uint8)

    def predict_active(self, k, h, b=None):
        return np.broadcast_to(self.mask(k).astype(bool), (len(h), len(self.rates[k - 1])))

    def describe(self) -> str:
        return f"history tau={self.tau:g}, layers {'-'.join(map(str, self.layers or ()))}"


class LowRankPredictor(Predictor):
    """Per-sample sign predictor from a rank-r factorisation of each chosen layer.

    Fitted on training activations: with H the layer's inputs and A = H @ W its pre-activations
    (bias aside), the top r right singular vectors Q_r of A give v = Q_r^T and u = W @ Q_r, so
    H @ u @ v is A projected on its r main directions. sigma is the rms of the error on the
    fitting data; a neuron is computed when (h @ u @ v + b)_j > -margin * sigma.
    """

    kind = "per_sample"

    def __init__(self, rank: int = 32, margin: float = 1.0, layers: Optional[Sequence[int]] = PAPER_LAYERS,
                 max_fit_samples: int = 10000, seed: int = 0):
        super().__init__(layers)
        if int(rank) <= 0:
            raise ValueError(f"rank must be positive, got {rank}")
        self.rank, self.margin = int(rank), float(margin)
        self.max_fit_samples, self.seed = int(max_fit_samples), seed
        self.factors: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}
        self.sigma: Dict[int, float] = {}

    def fit(self, model, x_train: np.ndarray, batch_size: int = 1000) -> "LowRankPredictor":
        self._fit_common(model, x_train, batch_size)
        rng = np.random.default_rng(self.seed)
        sub = x_train
        if len(x_train) > self.max_fit_samples:
            sub = x_train[np.sort(rng.choice(len(x_train), self.max_fit_samples, replace=False))]
        inputs = layer_inputs(model, sub, self.layers, batch_size)
        hidden = hidden_layers(model)
        for k in self.layers:
            w = hidden[k - 1][1].weight.data.astype(np.float64)
            h = inputs[k].astype(np.float64)
            a = h @ w
            r = min(self.rank, *w.shape)
            _, _, vt = np.linalg.svd(a, full_matrices=False)
            q = vt[:r].T                                  # (out, r)
            u, v = (w @ q).astype(np.float32), np.ascontiguousarray(q.T, np.float32)
            err = a - (h @ u.astype(np.float64)) @ v.astype(np.float64)
            self.factors[k] = (np.ascontiguousarray(u), v)
            self.sigma[k] = float(np.sqrt(np.mean(err ** 2)))
        return self

    def margin_abs(self, k: int) -> float:
        return self.margin * self.sigma[k]

    def predict_active(self, k, h, b=None):
        u, v = self.factors[k]
        s = (h @ u) @ v
        if b is not None:
            s = s + b
        return s > -self.margin_abs(k)

    def describe(self) -> str:
        return f"low-rank r={self.rank} margin={self.margin:g}sigma, layers {'-'.join(map(str, self.layers or ()))}"


def inactive_precision_recall(model, predictor: Predictor, x: np.ndarray, batch_size: int = 1000) -> dict:
    """Precision and recall of "inactive" per chosen layer and pooled, on inputs x (the test set).

    The true state is the dense model's (ReLU output > 0); the prediction is made from the dense
    model's input to the layer. precision = P(truly inactive | predicted inactive),
    recall = P(predicted inactive | truly inactive); also the share predicted inactive and the
    share of truly active neurons that the prediction wrongly zeroes ("lost active").
    """
    predictor.check_model(model)
    layers = predictor.layers
    states = hidden_states(model, x, batch_size=batch_size, layers=layers)
    inputs = layer_inputs(model, x, layers, batch_size) if predictor.kind == "per_sample" else None
    hidden = hidden_layers(model)
    per_layer, tot = {}, np.zeros(4, np.int64)   # tp (pred inactive & inactive), pred inactive, inactive, active
    for k, active in zip(layers, states):
        lin = hidden[k - 1][1]
        h = inputs[k] if inputs is not None else np.empty((len(x), 0), np.float32)
        pred_active = predictor.predict_active(k, h, lin.bias.data if lin.bias is not None else None)
        pred_in, true_in = ~pred_active, ~active
        c = np.array([np.sum(pred_in & true_in), pred_in.sum(), true_in.sum(), active.sum()], np.int64)
        tot += c
        per_layer[k] = _pr(c, active & pred_in)
    out = {"layers": per_layer, "pooled": _pr(tot, None)}
    return out


def _pr(c, lost) -> dict:
    tp, pred, true, act = (int(v) for v in c)
    d = {"precision_inactive": tp / pred if pred else 1.0, "recall_inactive": tp / true if true else 1.0,
         "predicted_inactive_share": pred / (true + act) if true + act else 0.0,
         "true_inactive_share": true / (true + act) if true + act else 0.0}
    if lost is not None:
        d["lost_active_share"] = float(lost.sum() / max(act, 1))
    return d
