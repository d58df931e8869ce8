"""Inference plans for MLPs: a trained Sequential of Flatten / Linear / ReLU compiled into C kernel calls.

    plan = pyann.infer.compile(model, plan="combined", predictor=HistoryPredictor(0.5).fit(model, x_train),
                               mode="batched")
    logits = plan.run(x)              # (n, classes) float32
    plan.last_macs                    # multiply-adds the layers executed in that run
    plan.last_predictor_macs          # and the per-sample predictor's own work

plan (the kernel family):
    "numpy"     NumPy matmul + bias + ReLU (OpenBLAS); the baseline
    "dense"     pyann's dense C kernels
    "masked"    the acti-masked kernel at the predictor's layers, dense elsewhere (the paper)
    "zeroskip"  the exact zero-skipping kernel at every layer; no predictor
    "combined"  zero skipping at every layer and the predictor's mask at its layers
    "sparse"    for a pruned model: each layer runs the sparse kernel (weights by output neuron,
                activations in tiles of 64 samples), the 4x1 blocked one (batched), pyann's dense
                kernel, exact zero skipping on the weights stored dense ("zeroskip") or the
                sparse x sparse kernel "sparse_zeroskip" (weights by input, the zero inputs -
                a ReLU's, or an image's blank pixels - skipped too), whichever measured fastest
                on this machine for that layer at compile time, in the plan's mode, on
                `calibration` inputs (layer_kernels= forces it)
mode: "batched" (the whole batch layer after layer) or "one_at_a_time" (each image through the
whole network before the next, the loop inside C: pyann.kernels.mlp_per_sample; for "numpy" a
Python loop over images). split, one image at a time: "images" (default) - each core runs whole
images, no synchronisation; "outputs" - both cores share each image, splitting every layer's
outputs with a barrier per layer (lowest latency on an idle machine; a busy machine makes every
barrier wait for a descheduled thread).

compile() also reorders each hidden layer's neurons by their training firing rate (most active
first) when the predictor recorded rates: an exact re-parameterisation (the columns of W_k and
b_k and the rows of W_{k+1} move together) that puts a history mask's kept neurons in a prefix
and packs the active ones of a per-sample mask into fewer vectors.
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional

import numpy as np

from .. import kernels
from ..data.transforms import check_float_input
from ..nn import Flatten, Linear, ReLU, Sequential
from ..nn.container import hidden_layers
from ..nn.module import fingerprint as model_fingerprint
from .predictor import ActivationPredictor as Predictor
from .choice import SPARSE_CALIBRATION, PackedWeight, choose_sparse

KERNELS = ("numpy", "dense", "masked", "zeroskip", "combined", "sparse")
_SPARSE_KINDS = {kernels.SparseWeights: "sparse", kernels.BlockSparseWeights: "blocked",
                 kernels.InputSparseWeights: "sparse_zeroskip"}
MODES = ("batched", "one_at_a_time")
SPLITS = ("images", "outputs")


@dataclasses.dataclass
class PlanLayer(PackedWeight):
    """One Linear of the plan. hidden: its 1-based hidden-layer number (None for the logits)."""
    w: np.ndarray
    b: Optional[np.ndarray]
    relu: bool
    hidden: Optional[int]
    mask: Optional[np.ndarray] = None          # shared uint8 (out,): the history predictor
    lowrank: Optional[tuple] = None            # (u, v, margin): the per-sample predictor
    sparse: Optional[object] = None            # kernels.SparseWeights, BlockSparseWeights or InputSparseWeights
                                               # (sparse x sparse): that sparse kernel runs
    timing: Optional[dict] = None              # compile-time measurement: seconds per kernel
    expected_macs: Optional[float] = None      # zero-skipping kernels: executed MACs per calibration sample
    timing_samples: Optional[int] = None       # samples per timing (default SPARSE_CALIBRATION)
    packed: Optional[kernels.PackedDense] = None   # w packed for the batched dense kernel, once, at compile
    zero_skip: bool = False                    # plan "sparse": w stored dense, each sample's zero inputs skipped

    @property
    def shape(self):
        return self.w.shape


def _mlp_layers(model) -> List[tuple]:
    """[(Linear, relu after it)] for a Sequential of Flatten / Linear / ReLU layers."""
    if not isinstance(model, Sequential):
        raise ValueError(f"compile expects a pyann.nn.Sequential MLP, got {type(model).__name__}")
    seq = model.layers
    out = []
    for i, m in enumerate(seq):
        if isinstance(m, Linear):
            out.append((m, i + 1 < len(seq) and isinstance(seq[i + 1], ReLU)))
        elif isinstance(m, ReLU):
            if i == 0 or not isinstance(seq[i - 1], Linear):
                raise ValueError(f"layer {i}: a ReLU must follow a Linear in a compiled MLP")
        elif not (isinstance(m, Flatten) and i == 0):
            raise ValueError(f"layer {i} ({type(m).__name__}) is not supported by infer.compile: "
                             f"only Flatten (first), Linear and ReLU")
    if not out:
        raise ValueError("the model has no Linear layer")
    return out


class InferencePlan:
    def __init__(self, layers: List[PlanLayer], kernel: str, mode: str, fingerprint: str,
                 predictor: Optional[Predictor], permuted: bool, split: str = "images",
                 model_macs: Optional[int] = None, compacted: bool = False, scheme: str = "auto"):
        self.layers, self.kernel, self.mode, self.split = layers, kernel, mode, split
        self.fingerprint, self.predictor, self.permuted = fingerprint, predictor, permuted
        self.compacted, self.scheme = compacted, scheme
        self.in_features = layers[0].w.shape[0]
        self.out_features = layers[-1].w.shape[1]
        # the model's dense multiply-adds per sample, fixed before compaction and padding change
        # the layers' shapes: the denominator of every "share of MACs executed"
        self.model_macs = model_macs if model_macs is not None else sum(l.w.size for l in layers)
        self.last_macs = 0
        self.last_predictor_macs = 0
        self.padded = 0   # zero columns added to the logits layer (see _pad_output)

    # ---- description ------------------------------------------------------------------------
    def dense_macs(self, n: int = 1) -> int:
        """The model's dense multiply-adds for n samples (as compiled from, before compaction)."""
        return int(n * self.model_macs)

    def describe(self) -> str:
        pred = self.predictor.describe() if self.predictor is not None and self.kernel in ("masked", "combined") else "none"
        mode = self.mode if self.mode == "batched" else f"{self.mode}, split {self.split}"
        if self.compacted:
            mode += ", masks compacted"
        head = (f"InferencePlan({self.kernel}, {mode}, "
                f"{'-'.join(str(l.w.shape[0]) for l in self.layers)}-{self.out_features}, predictor: {pred})")
        return "\n".join([head] + [f"  layer {i}: {self._layer_line(l)}" for i, l in enumerate(self.layers, 1)])

    def _layer_line(self, l: "PlanLayer") -> str:
        density = np.count_nonzero(l.w) / max(l.w.size, 1)
        kind = _SPARSE_KINDS.get(type(l.sparse), "sparse") if l.sparse is not None \
            else "zeroskip" if l.zero_skip else ("dense" if self.kernel == "sparse" else self.kernel)
        if kind in ("zeroskip", "sparse_zeroskip"):
            macs = f"at most {l.w.size if kind == 'zeroskip' else l.sparse.nnz:,} (as the input's zeros allow"
            macs += f"; {l.expected_macs:,.0f} on the calibration inputs)" if l.expected_macs is not None else ")"
        else:
            macs = f"{l.sparse.nnz if l.sparse is not None else l.w.size:,}"
        line = (f"{l.w.shape[0]}x{l.w.shape[1]}{' +ReLU' if l.relu else ''}, kernel {kind}, weight density "
                f"{100 * density:.1f} %, multiply-adds per sample {macs}")
        if l.timing:
            line += " (measured: " + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in l.timing.items()) + \
                    f" per {l.timing_samples or SPARSE_CALIBRATION} samples)"
        return line

    __repr__ = describe

    def check_model(self, model) -> None:
        """ValueError unless this plan was compiled from `model` (same weights)."""
        fp = model_fingerprint(model)
        if fp != self.fingerprint:
            raise ValueError(f"this plan was compiled for another model (fingerprint {self.fingerprint}, "
                             f"given model {fp}); compile a plan for this model")

    # ---- running -----------------------------------------------------------------------------
    def _input(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim < 2:
            raise ValueError(f"x must be a batch (n, ...) of inputs, got shape {x.shape}")
        check_float_input(x, "plan.run")   # the same check and message as fit, evaluate, predict
        x = x.reshape(x.shape[0], int(np.prod(x.shape[1:])))   # -1 cannot be inferred for 0 rows
        if x.shape[1] != self.in_features:
            raise ValueError(f"x has {x.shape[1]} features per sample, the plan expects {self.in_features}")
        return np.ascontiguousarray(x, np.float32)

    def run(self, x) -> np.ndarray:
        """Logits (n, out_features) float32 for inputs x (n, ...)."""
        return self.run_prepared(self._input(x))

    def run_prepared(self, x: np.ndarray) -> np.ndarray:
        """run() for an x that is already float32 C-contiguous (n, in_features): what is timed."""
        y = self._run_one(x) if self.mode == "one_at_a_time" else self._run_batched(x)
        return y[:, :self.out_features] if self.padded else y

    def predict(self, x) -> np.ndarray:
        return np.argmax(self.run(x), axis=1)

    def accuracy(self, x, y) -> float:
        return float(np.mean(self.predict(x) == np.asarray(y)))

    def _lowrank_mask(self, l: PlanLayer, h: np.ndarray, zero_skip: bool):
        u, v, margin = l.lowrank
        z, m1 = kernels.relu_layer(h, u, None, None, zero_skip, relu=False, return_macs=True, scheme=self.scheme,
                                   assume_finite=True)
        s, m2 = kernels.relu_layer(z, v, l.b, None, False, relu=False, return_macs=True)
        return (s > -margin).view(np.uint8), m1 + m2

    def _run_batched(self, x: np.ndarray) -> np.ndarray:
        if self.kernel == "sparse":
            return self._run_sparse(x)
        h = x
        macs = pmacs = 0
        k = self.kernel
        for l in self.layers:
            if k == "numpy":
                y = h @ l.w
                if l.b is not None:
                    y += l.b
                if l.relu:
                    np.maximum(y, 0, out=y)
                macs += h.shape[0] * l.w.size
            elif k == "dense" or (k == "masked" and l.mask is None and l.lowrank is None):
                y = kernels.dense(h, l.dense_w, l.b, relu=l.relu)
                macs += h.shape[0] * l.w.size
            else:
                zero_skip = k in ("zeroskip", "combined")
                mask = None
                if k != "zeroskip":
                    mask = l.mask
                    if l.lowrank is not None:
                        pm, c = self._lowrank_mask(l, h, zero_skip)
                        pmacs += c
                        mask = pm if mask is None else (pm & mask)
                y, c = kernels.relu_layer(h, l.w, l.b, mask, zero_skip, l.relu, return_macs=True,
                                          scheme=self.scheme, assume_finite=True)
                macs += c
            h = y
        self.last_macs, self.last_predictor_macs = int(macs), int(pmacs)
        return h

    def _run_sparse(self, x: np.ndarray) -> np.ndarray:
        """Sparse layers on tiles of 64 samples, dense ones on rows: consecutive sparse layers keep
        the tiled layout, converted only where the kernel family changes."""
        n, h, tiled, macs = x.shape[0], x, False, 0
        padded = -(-n // kernels.SPARSE_TILE) * kernels.SPARSE_TILE
        for l in self.layers:
            if l.sparse is not None and not isinstance(l.sparse, kernels.InputSparseWeights):
                if not tiled:   # rows in, tiles out: each tile gathered as it is used, no tiled copy of h
                    h, tiled = kernels.sparse_tiled_gather(h, l.sparse, l.b, l.relu), True
                else:
                    h = kernels.sparse_tiled(h, l.sparse, l.b, l.relu)
                macs += padded * l.sparse.nnz          # the padding samples of the last tile too
                continue
            if tiled:   # the kernels below take rows
                h, tiled = kernels.from_tiles(h, n), False
            if l.sparse is not None:                   # sparse x sparse
                h, c = kernels.sparse_zeroskip(h, l.sparse, l.b, l.relu, return_macs=True)
            elif l.zero_skip:                          # dense w, zero inputs skipped
                h, c = kernels.relu_layer(h, l.w, l.b, None, True, l.relu, return_macs=True, scheme=self.scheme,
                                          assume_finite=True)
            else:
                h, c = kernels.dense(h, l.dense_w, l.b, relu=l.relu), n * l.w.size
            macs += c
        self.last_macs, self.last_predictor_macs = int(macs), 0
        return kernels.from_tiles(h, n) if tiled else h

    def _run_one(self, x: np.ndarray) -> np.ndarray:
        k = self.kernel
        if k == "sparse":
            y, self.last_macs = kernels.sparse_mlp_per_sample(
                x, [(l.sparse if l.sparse is not None else l.w, l.b, l.relu, l.zero_skip) for l in self.layers],
                split_images=self.split == "images", return_macs=True)
            self.last_predictor_macs = 0
            return y
        if k == "numpy":
            out = np.empty((x.shape[0], self.out_features), np.float32)
            layers = [(l.w, l.b, l.relu) for l in self.layers]
            for i in range(x.shape[0]):
                h = x[i]
                for w, b, relu in layers:
                    h = h @ w
                    if b is not None:
                        h += b
                    if relu:
                        np.maximum(h, 0, out=h)
                out[i] = h
            self.last_macs, self.last_predictor_macs = self.dense_macs(x.shape[0]), 0
            return out
        use_pred = k in ("masked", "combined")
        masks = [l.mask if use_pred else None for l in self.layers]
        preds = [l.lowrank if use_pred else None for l in self.layers]
        y, macs, pmacs = kernels.mlp_per_sample(
            x, [l.w for l in self.layers], [l.b for l in self.layers],
            masks if any(m is not None for m in masks) else None,
            preds if any(p is not None for p in preds) else None,
            zero_skip=k in ("zeroskip", "combined"), split_images=self.split == "images", return_macs=True,
            relus=[l.relu for l in self.layers], assume_finite=True)
        self.last_macs, self.last_predictor_macs = macs, pmacs
        return y


def compile(model, plan="combined", predictor: Optional[Predictor] = None, mode: str = "batched",
            reorder: bool = True, split: str = "images", compact: bool = True,
            scheme: str = "auto", layer_kernels: Optional[List[Optional[str]]] = None,
            calibration=None) -> InferencePlan:
    """Build an InferencePlan from a trained MLP (pyann.nn.Sequential of Flatten/Linear/ReLU).

    plan: a kernel family in KERNELS, or an InferencePlan to rebuild for `model` (its kernel,
      mode and predictor are reused; ValueError if it was compiled for another model).
    predictor: a fitted activation predictor (pyann.infer.predictor: relu_prediction's
      HistoryPredictor and LowRankPredictor, or a user's object with the same interface); required
      for "masked", optional for "combined" (without it, combined = zeroskip). ValueError if it
      was fitted on another model or names a hidden layer the model does not have.
    mode: "batched" or "one_at_a_time"; split (one at a time): "images" or "outputs". reorder: sort hidden neurons by training firing rate
      (exact; needs a fitted predictor).
    compact: a shared (history) mask is applied at compile time instead of at run time: the
      masked neurons' columns of W_k and b_k and their rows of W_{k+1} are removed (see
      _compact), so neither layer spends anything on them. Exact with respect to the mask.
    scheme: batched zero skipping on unmasked layers: "list" (each sample's nonzeros alone),
      "union" (tiles of 4 samples share the union of their nonzeros: more multiply-adds, fewer
      loads), or "auto" (the kernel picks per layer call from the input's density); see
      pyann.kernels.relu_layer.
    layer_kernels (plan "sparse"): per Linear None (measure), "dense", "sparse", (batched, outputs
      divisible by 4) "blocked", "zeroskip" or "sparse_zeroskip".
    calibration (plan "sparse"): inputs (n, ...) the per-layer measurement runs on, e.g. a few
      hundred training images, so that the sparse x sparse kernel is timed on the zeros the
      layers really see; default: standard normal noise through the model.
    """
    if isinstance(plan, InferencePlan):
        plan.check_model(model)
        return compile(model, plan.kernel, plan.predictor if predictor is None else predictor,
                       plan.mode, reorder=plan.permuted, split=plan.split, compact=plan.compacted,
                       scheme=plan.scheme)
    if plan not in KERNELS:
        raise ValueError(f"plan must be one of {KERNELS} or an InferencePlan, got {plan!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if scheme not in kernels.ZEROSKIP_SCHEMES:
        raise ValueError(f"scheme must be one of {tuple(kernels.ZEROSKIP_SCHEMES)}, got {scheme!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if layer_kernels is not None and plan != "sparse":
        raise ValueError("layer_kernels applies to plan 'sparse' only")
    linears = _mlp_layers(model)
    _check_finite(linears, predictor)
    if plan == "masked" and predictor is None:
        raise ValueError("plan 'masked' needs a fitted predictor (e.g. HistoryPredictor(tau).fit(model, x_train))")
    hidden = hidden_layers(model)
    number = {id(lin): k for k, (_, lin) in enumerate(hidden, start=1)}
    if predictor is not None:
        predictor.check_model(model)
        for k in predictor.layers:
            if not 1 <= k <= len(hidden):
                raise ValueError(f"predictor layer {k} does not exist: the model has hidden layers 1..{len(hidden)}")
    layers = []
    for lin, relu in linears:
        w = np.ascontiguousarray(lin.weight.data, np.float32).copy()
        b = None if lin.bias is None else np.ascontiguousarray(lin.bias.data, np.float32).copy()
        k = number.get(id(lin)) if relu else None
        pl = PlanLayer(w, b, relu, k)
        if predictor is not None and k is not None and k in predictor.layers:
            if predictor.kind == "shared":
                pl.mask = predictor.mask(k)
            else:
                u, v = predictor.factors[k]
                pl.lowrank = (u.copy(), v.copy(), predictor.margin_abs(k))
        layers.append(pl)
    model_macs = sum(l.w.size for l in layers)
    if plan == "sparse":
        if calibration is not None:
            calibration = np.asarray(calibration)
            check_float_input(calibration, "compile calibration")
            calibration = calibration.reshape(len(calibration), -1) if len(calibration) else calibration
        choose_sparse(layers, layer_kernels, mode, split, zeroskip=True, calibration=calibration)
    permuted = bool(reorder and predictor is not None and predictor.rates is not None
                    and plan not in ("numpy", "dense"))
    if permuted:
        _reorder(layers, predictor.rates)
    compacted = bool(compact and plan in ("masked", "combined") and any(l.mask is not None for l in layers))
    if compacted:
        _compact(layers, kernels.vector_width())
    result = InferencePlan(layers, plan, mode, model_fingerprint(model), predictor, permuted, split,
                           model_macs, compacted, scheme)
    if plan not in ("numpy", "dense", "sparse"):
        _pad_output(result)
    if mode == "batched":
        _pack_dense(result)
    return result


def _pack_dense(plan: InferencePlan) -> None:
    """Pack, once, the w of every layer that the batched plan runs on pyann's dense kernel
    (kernels.pack_dense: the weight panels laid out as the kernel reads them), after every
    transformation of w (reorder, compaction, padding)."""
    for l in plan.layers:
        dense = plan.kernel == "dense" or (plan.kernel == "masked" and l.mask is None and l.lowrank is None) \
            or (plan.kernel == "sparse" and l.sparse is None and not l.zero_skip)
        if dense and l.packed is None:
            l.packed = kernels.pack_dense(l.w)


def _check_finite(linears, predictor: Optional[Predictor]) -> None:
    """ValueError naming the first weight, bias or predictor factor that holds NaN or Inf.

    A plan must give what the model gives, and zero skipping cannot: it leaves out 0 x w, which
    is NaN for an infinite w (and a NaN weight makes the model's outputs NaN anyway)."""
    arrays = []
    for i, (lin, _) in enumerate(linears):
        arrays.append((f"Linear {i} weight", lin.weight.data))
        if lin.bias is not None:
            arrays.append((f"Linear {i} bias", lin.bias.data))
    if predictor is not None:
        for k, (u, v) in getattr(predictor, "factors", {}).items():
            arrays += [(f"predictor factor u of hidden layer {k}", u), (f"predictor factor v of hidden layer {k}", v)]
    for name, a in arrays:
        if not np.isfinite(a).all():
            bad = int(np.size(a) - np.isfinite(a).sum())
            raise ValueError(f"the model's {name} holds {bad} NaN or Inf value(s): a plan needs finite "
                             f"weights (the model itself would output NaN); retrain or repair the model")


def _pad_output(plan: InferencePlan) -> None:
    """The logits layer (10 wide for mlp5) gets zero columns up to a whole vector, so the C kernels
    compute it with vector FMAs instead of their scalar edge loop; run() returns the first
    out_features columns. The padded columns' multiply-adds are executed and counted."""
    l = plan.layers[-1]
    width = kernels.vector_width()
    extra = -l.w.shape[1] % width
    if not extra:
        return
    l.w = np.ascontiguousarray(np.pad(l.w, ((0, 0), (0, extra))))
    if l.b is not None:
        l.b = np.ascontiguousarray(np.pad(l.b, (0, extra)))
    if l.mask is not None:
        l.mask = np.ascontiguousarray(np.pad(l.mask, (0, extra)))
    plan.padded = extra


def _reorder(layers: List[PlanLayer], rates) -> None:
    """Sort each hidden layer's neurons by decreasing firing rate (stable), in place. Exact."""
    for i, l in enumerate(layers[:-1]):
        if l.hidden is None:
            continue
        perm = np.argsort(-np.asarray(rates[l.hidden - 1]), kind="stable")
        l.w = np.ascontiguousarray(l.w[:, perm])
        if l.b is not None:
            l.b = np.ascontiguousarray(l.b[perm])
        if l.mask is not None:
            l.mask = np.ascontiguousarray(l.mask[perm])
        if l.lowrank is not None:
            u, v, m = l.lowrank
            l.lowrank = (u, np.ascontiguousarray(v[:, perm]), m)
        nxt = layers[i + 1]
        nxt.w = np.ascontiguousarray(nxt.w[perm, :])
        if nxt.lowrank is not None:
            u, v, m = nxt.lowrank
            nxt.lowrank = (np.ascontiguousarray(u[perm, :]), v, m)


def _compact(layers: List[PlanLayer], width: int) -> None:
    """Apply each shared mask by deleting the neurons it switches off, in place.

    A masked neuron of layer k outputs 0 whatever the input, so dropping its column of W_k (and
    b_k) and its row of W_{k+1} leaves every output of the network unchanged. The kept count is
    padded with zero neurons (W column 0, bias 0: ReLU(0) = 0, exact) up to a multiple of the
    vector width, so the kernels keep whole vectors; the padding is executed and counted.
    A mask that keeps nothing stays a mask (a layer of width 0 is not a layer). Masks come from
    a shared (history) predictor, so no layer here carries low-rank factors to trim.
    """
    for i, l in enumerate(layers[:-1]):
        if l.mask is None or not l.mask.any():
            continue
        if l.mask.all():
            l.mask = None
            continue
        keep = np.flatnonzero(l.mask)
        pad = -len(keep) % width
        nxt = layers[i + 1]
        l.w = np.ascontiguousarray(np.pad(l.w[:, keep], ((0, 0), (0, pad))))
        if l.b is not None:
            l.b = np.ascontiguousarray(np.pad(l.b[keep], (0, pad)))
        l.mask = None
        nxt.w = np.ascontiguousarray(np.pad(nxt.w[keep, :], ((0, pad), (0, 0))))
