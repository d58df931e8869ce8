"""The connection-pruning paper's experiments as one resumable study per model (fcn1, fcn2, cnn3
on MNIST): `python -m pyann prune-study --model fcn2 --out DIR`, or run_study() from Python.

What a study measures (every point seeded, on the dense model from the trained-model cache):
- fcn1: Figure 2 (the ten weight patterns as 28x28 images, three cross-sections of digit 0);
- every model: Figure 3 (weight histogram, all layers and per layer); Figure 4 (accuracy against
  the share of connections removed: a global |w| threshold sweep without retraining, and
  iterative pruning with masked retraining at several keep ratios, largest first, each point
  starting from the previous one); the error model of eq. 1-3 fitted on two points of each
  curve (before / after the knee) with its error on the held-out points;
- fcn2 and cnn3: Figure 5 (per-layer sensitivity, each layer pruned alone, before and after a
  short retraining; Distiller's CSV columns); the allocations of eq. 4 (uniform) and the exact
  rate-distortion optimum at the paper's budget and at a "no loss" budget of 0.1 points, each
  with c'/c (eq. 5), each pruned and retrained to measure the accuracy it reaches; Figure 6.

Resuming: every point (one sweep threshold, one retrained keep ratio, one sensitivity point,
one allocation) is written atomically to DIR/points/<key>.json as soon as it finishes (a
retrained model to DIR/models/<key>.npz, masks included, before it); a rerun with the same
configuration reads what is there and computes only what is missing. A folder holding a study
of another configuration is refused (a different --quick, seed or model).

The whole study is driven by a Config; FULL is sized so that `make reproduce-prune` (the three
models) fits about an hour on two cores, QUICK is a tiny run (seconds) for tests. results.json
records the config used, so report.md says what was scaled.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from .. import nn
from ..io import read_json, write_json, write_text
from ..optim import SGD, CosineLR
from ..train import evaluate, fit
from . import allocation as alloc_mod
from .error_model import ErrorModel, knee_points
from .masks import clone, prunable_layers, prune, prune_to_density
from .report import sparsity_report
from .sweeps import curves as sens_curves, sensitivity, write_sensitivity_csv, SensitivityRow

MODELS = ("fcn1", "fcn2", "cnn3")
INPUT_SHAPE = {"fcn1": (1, 28, 28), "fcn2": (1, 28, 28), "cnn3": (1, 28, 28)}
CNN3_MEAN, CNN3_STD = (0.1307,), (0.3081,)

# The paper's numbers (../shared/papers/README.md, section 3), fractions.
PAPER = {
    "fcn1": {"dense_accuracy": 0.90, "connections": {"1": 7840}, "knee_removed": 0.30,
             "keep_with_retraining": 0.10},
    "fcn2": {"dense_accuracy": 0.93, "connections": {"1": 235200, "3": 30000, "5": 1000}, "budget": 0.03,
             "kept": {"1": 34266, "3": 4494, "5": 197}, "ratios": {"1": 0.145, "3": 0.149, "5": 0.197}},
    "cnn3": {"dense_accuracy": 0.99, "connections": {"0": 225792, "3": 3612672, "7": 31360}, "budget": 0.06,
             "ratios": {"0": 0.285, "3": 0.154, "7": 0.112}},
}
# the targets: keep at most `keep` of the weights at a loss of at most `loss` (final-epoch test accuracy)
TARGETS = {"fcn1": {"keep": 0.10, "loss": 0.001}, "fcn2": {"keep": 0.08, "loss": 0.001, "stretch": 0.04},
           "cnn3": {"keep": 0.12, "loss": 0.002}}
NO_LOSS_BUDGET = 0.001


@dataclasses.dataclass(frozen=True)
class Config:
    name: str                                 # "full" or "quick"
    dense_epochs: int                         # the dense model's training (trained-model cache key)
    train_limit: Optional[int]                # training images for every retraining (None: all)
    test_limit: Optional[int]                 # test images for the final accuracies (None: all 10,000)
    sens_test_limit: Optional[int]            # test images for the sensitivity curves
    sweep_removed: tuple                      # shares removed by the threshold sweep (no retraining)
    retrain_keep: tuple                       # keep ratios of the retraining sweep, largest first
    retrain_epochs: int                       # epochs per retrained keep ratio
    sens_densities: tuple                     # per-layer densities of Figure 5
    sens_retrain_epochs: int                  # "after retraining" curves: epochs ...
    sens_retrain_limit: Optional[int]         # ... over this many training images
    alloc_retrain_epochs: int                 # epochs for each allocation's retraining
    lr: float                                 # peak lr of every retraining (cosine to 0)
    weight_decay: float = 5e-4
    batch_size: int = 128
    dense_train_limit: Optional[int] = None   # cnn3: train the dense model on the first N images (own cache)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


_SWEEP = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99)
_SENS = (1.0, 0.7, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.12, 0.1, 0.08, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01)

FULL = {
    # retraining epochs per point: 3 left fcn2 0.24 point short at 8 % kept; 10 (1-5 s an epoch
    # here) keep it within 0.13 point down to 4 % (probe, 2026-11-30)
    "fcn1": Config("full", 20, None, None, None, _SWEEP,
                   (0.5, 0.3, 0.2, 0.15, 0.1, 0.08, 0.06, 0.05, 0.04, 0.03), 10,
                   (), 0, None, 0, lr=0.01),
    "fcn2": Config("full", 20, None, None, None, _SWEEP,
                   (0.5, 0.3, 0.2, 0.12, 0.08, 0.06, 0.05, 0.04, 0.03, 0.02), 10,
                   _SENS, 1, 10000, 10, lr=0.01),
    # cnn3: the cnn3_mnist recipe's 5 epochs over all 60,000 images (99.19 %, its own cache
    # entry); an epoch of retraining costs ~40-70 s here. 3 epochs per point over all the
    # training images kept 15 % within 0.10 point (probe, 2026-11-30), so 4 per point; the
    # sensitivity curves on 2,000 test images, retrained 1 epoch over 2,000 images per point
    "cnn3": Config("full", 5, None, None, 2000,
                   (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99),
                   (0.3, 0.2, 0.15, 0.12, 0.1, 0.08), 4,
                   (1.0, 0.5, 0.3, 0.2, 0.12, 0.08, 0.05, 0.03, 0.01), 1, 2000, 3, lr=0.01),
}
QUICK = {
    m: Config("quick", 1, 600, 300, 300, (0.0, 0.5, 0.9, 0.99), (0.5, 0.2), 1,
              (1.0, 0.5, 0.2, 0.05), 1, 200, 1, lr=0.02, batch_size=64)
    for m in MODELS
}
QUICK["fcn1"] = dataclasses.replace(QUICK["fcn1"], sens_densities=(), sens_retrain_epochs=0, alloc_retrain_epochs=0)


def config_for(model: str, quick: bool = False) -> Config:
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    return (QUICK if quick else FULL)[model]


# ---- the store of finished points ----------------------------------------------------------------

class Store:
    """Finished points as DIR/points/<key>.json (atomic); counts what it computed and reused."""

    def __init__(self, out: Path, progress=None):
        self.dir = Path(out) / "points"
        self.models = Path(out) / "models"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.models.mkdir(parents=True, exist_ok=True)
        self.computed, self.reused = [], []
        self.bar = progress

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def model_path(self, key: str) -> Path:
        return self.models / f"{key}.npz"

    def get(self, key: str):
        p = self.path(key)
        return read_json(p) if p.exists() else None

    def run(self, key: str, compute: Callable[[], dict]) -> dict:
        """The stored value of `key`, or compute() (which returns a JSON-able dict), stored with
        the seconds it took."""
        found = self.get(key)
        if found is not None:
            self.reused.append(key)
        else:
            t0 = time.perf_counter()
            found = compute()
            found["seconds"] = time.perf_counter() - t0
            write_json(self.path(key), found)
            self.computed.append(key)
        if self.bar is not None:
            self.bar.set_postfix_str(key, refresh=False)
            self.bar.update(1)
        return found


def _count_points(model: str, cfg: Config) -> int:
    n = 2 + len(cfg.sweep_removed) + len(cfg.retrain_keep)
    if model != "fcn1":
        layers = 3
        n += layers * len(cfg.sens_densities) * (2 if cfg.sens_retrain_epochs else 1)
        n += 2 * 2 * (1 if cfg.alloc_retrain_epochs else 0) + 4
    return n


# ---- data and the dense model --------------------------------------------------------------------

def _prepare(model: str, x: np.ndarray) -> np.ndarray:
    from ..data import to_float
    if model == "cnn3":
        return to_float(x, CNN3_MEAN, CNN3_STD)
    return to_float(x)


def _limit(a, n):
    return a if n is None else a[:n]


def cnn3_cache_path(epochs: int, seed: int, cache=None, limit: Optional[int] = None) -> Path:
    from ..data import cache_dir
    variant = f"-n{limit}" if limit else ""
    return Path(cache or cache_dir()) / "models" / f"cnn3-mnist-e{epochs}-s{seed}{variant}.npz"


def dense_model(model: str, cfg: Config, data, seed: int, store: Store, cache=None, root=None):
    """(model, source text). Full studies use the trained-model cache (fcn1/fcn2: recipes.
    trained_model; cnn3: cnn_recipes.cnn3_mnist saved under the same cache folder); a quick
    study trains its own tiny dense model into DIR/models/dense.npz."""
    if cfg.name == "quick":
        path = store.model_path("dense")
        if path.exists():
            return nn.load(path), f"trained by this quick study ({path.name})"
        m = nn.build(model, rng=seed)
        x = _prepare(model, _limit(data.x_train, cfg.train_limit))
        y = _limit(data.y_train, cfg.train_limit)
        opt = SGD(m.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
        fit(m, (x, y), cfg.dense_epochs, opt, batch_size=cfg.batch_size, seed=seed,
            schedule=CosineLR(0.05, cfg.dense_epochs), progress=False)
        nn.save(m, path, metadata={"dense": model, "quick": True})
        return m, f"trained by this quick study: {cfg.dense_epochs} epoch(s) on {cfg.train_limit} images"
    if model in ("fcn1", "fcn2"):
        from ..data import cache_dir
        from ..recipes import trained_model
        m, _ = trained_model(model, "mnist", seed=seed, epochs=cfg.dense_epochs, root=root, cache=cache)
        path = Path(cache or cache_dir()) / "models" / f"{model}-mnist-e{cfg.dense_epochs}-s{seed}.npz"
        return m, f"trained-model cache ({cfg.dense_epochs} epochs of the mlp recipe): {path}"
    path = cnn3_cache_path(cfg.dense_epochs, seed, cache, cfg.dense_train_limit)
    key = {"recipe": "cnn3_mnist", "epochs": cfg.dense_epochs, "seed": seed, "limit": cfg.dense_train_limit}
    if path.exists():
        try:
            if nn.serialization.read_metadata(path).get("key") == key:
                return nn.load(path), f"trained-model cache: {path}"
        except ValueError:
            pass
    from ..cnn_recipes import cnn3_mnist
    result = cnn3_mnist(epochs=cfg.dense_epochs, seed=seed, root=root, out=None, progress=False,
                        limit=cfg.dense_train_limit)
    nn.save(result["model"], path, metadata={"key": key, "history": result["history"], "test": result["test"]})
    images = "all" if cfg.dense_train_limit is None else f"the first {cfg.dense_train_limit:,}"
    return result["model"], (f"trained-model cache ({cfg.dense_epochs} epochs of the cnn3_mnist recipe over "
                             f"{images} training images): {path}")


# ---- helpers -----------------------------------------------------------------------------------

def _retrain(m, train, epochs: int, cfg: Config, seed: int) -> None:
    """The retraining "with the same procedure as the original training": SGD with Nesterov
    momentum 0.9 and weight decay, cosine lr from cfg.lr to 0; the masks hold (pyann.optim)."""
    if epochs <= 0:
        return
    opt = SGD(m.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    fit(m, train, epochs, opt, batch_size=cfg.batch_size, seed=seed, schedule=CosineLR(cfg.lr, epochs),
        progress=False)


def _weights(m) -> Dict[str, np.ndarray]:
    return {name: layer.weight.data for name, layer in prunable_layers(m).items()}


def _kept_total(m):
    kept = total = 0
    for layer in prunable_layers(m).values():
        w = layer.weight
        total += w.data.size
        kept += int(np.count_nonzero(w.mask)) if w.mask is not None else w.data.size
    return kept, total


def global_threshold(m, removed: float) -> float:
    """The |w| threshold below which a share `removed` of all prunable weights lies."""
    a = np.sort(np.concatenate([np.abs(w).ravel() for w in _weights(m).values()]))
    if removed <= 0:
        return 0.0
    k = min(int(round(removed * a.size)), a.size)
    return float(a[k - 1]) * (1 + 1e-7) + 1e-30 if k == a.size else float(a[k])


def _fit_error_models(points, tolerance: float, span: float) -> dict:
    """Eq. 1-3 on (connections kept, error) points, both forms. Before the knee: knee_points'
    choice (the fewest connections whose error is within `tolerance` of the densest point's);
    after it: the first point with fewer connections whose error exceeds the densest point's by
    more than `span` (else the next point), so that measured points lie between the two and
    the interpolation the paper uses the model for is checked on them."""
    pts = [(float(c), float(e)) for c, e in points]
    try:
        before, after = knee_points(pts, tolerance)
    except ValueError as exc:
        return {"why": str(exc)}
    reference = max(pts)[1]
    past = [p for p in sorted(pts, key=lambda p: -p[0]) if p[0] < before[0] and p[1] > reference + span]
    last = min(pts)                      # the fewest connections measured
    if past and past[0][1] > before[1]:
        after = past[0]
    elif last[0] < before[0] and last[1] > before[1]:
        after = last                     # no point that far past the knee: the last one measured
    out = {"tolerance": tolerance, "span": span, "before": list(before), "after": list(after)}
    for form in ("exp", "power"):
        try:
            em = ErrorModel.fit(before[0], before[1], after[0], after[1], form=form)
        except ValueError as exc:
            out[form] = {"why": str(exc)}
            continue
        held = em.held_out(pts)
        lo, hi = em.region
        grid = np.linspace(max(min(c for c, _ in pts), 1.0), max(c for c, _ in pts), 200)
        out[form] = {**em.to_dict(), "held_out": held,
                     "curve": [[float(c), float(min(1.0, em.error(c)))] for c in grid],
                     "region": [lo, hi]}
    return out


# ---- the study -----------------------------------------------------------------------------------

def run_study(model: str, out, *, quick: bool = False, seed: int = 0, root=None, cache=None, data=None,
              config: Optional[Config] = None, progress: Optional[bool] = None, log=print) -> dict:
    """Run (or resume) the study of `model` into folder `out`; returns the results dict that
    results.json holds. data: a pyann.data.Dataset-like object (x_train, y_train, x_test,
    y_test as uint8 NCHW images and int labels, name), default MNIST from pyann.data.load."""
    from ..data import load
    cfg = config or config_for(model, quick)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    ident = {"model": model, "seed": seed, "config": cfg.to_dict()}
    ident_path = out / "points" / "study.json"
    if ident_path.exists():
        old = read_json(ident_path)
        if old != ident:
            raise ValueError(f"{out} holds a prune-study of another configuration (model {old.get('model')}, "
                             f"config {old.get('config', {}).get('name')}, seed {old.get('seed')}): "
                             f"choose another --out, or delete {out / 'points'} to start afresh")
    if data is None:
        data = load("mnist", root=root)
    bar = None
    if progress is None:
        progress = sys.stderr.isatty()
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=_count_points(model, cfg), desc=f"prune-study {model}", unit="point", leave=True)
    store = Store(out, bar)
    write_json(ident_path, ident)
    try:
        results = _study(model, cfg, data, seed, store, out, cache, root, log)
    finally:
        if bar is not None:
            bar.close()
    results["resume"] = {"computed": len(store.computed), "reused": len(store.reused),
                         "computed_keys": store.computed}
    results["timing"]["this_run_seconds"] = time.perf_counter() - started
    # CPU seconds of this process (all its threads): on a machine shared with other work, the
    # better guide to what the run costs on an idle one
    results["timing"]["this_run_cpu_seconds"] = time.process_time() - cpu_started
    stages: Dict[str, float] = {}
    for k in store.computed + store.reused:
        stage = {"dense": "dense evaluation", "sweep": "threshold sweep", "retrain": "retraining sweep",
                 "sens": "sensitivity", "alloc": "allocations (pruned + retrained)"}[k.split("-")[0]]
        if k.startswith("sens-after"):
            stage = "sensitivity after retraining"
        stages[stage] = stages.get(stage, 0.0) + float(store.get(k).get("seconds", 0.0))
    results["timing"]["points_seconds_by_stage"] = stages
    results["timing"]["all_points_seconds"] = sum(stages.values())
    try:
        from ..provenance import stamp
        stamp(results, dataset=data if hasattr(data, "source_path") else getattr(data, "name", None))
    except Exception as exc:   # provenance is a record, never a reason to lose the study
        results["provenance"] = {"why": f"{type(exc).__name__}: {exc}"[:200]}
    from . import study_report
    results["files"] = study_report.write_outputs(out, results)
    write_json(out / "results.json", results)
    return results


def _study(model, cfg, data, seed, store, out, cache, root, log) -> dict:
    t0 = time.perf_counter()
    dense, source = dense_model(model, cfg, data, seed, store, cache, root)
    timing = {"dense_model_seconds": time.perf_counter() - t0}
    x_test = _prepare(model, _limit(data.x_test, cfg.test_limit))
    y_test = _limit(data.y_test, cfg.test_limit)
    train = (_prepare(model, _limit(data.x_train, cfg.train_limit)), _limit(data.y_train, cfg.train_limit))
    base = store.run("dense", lambda: evaluate(dense, x_test, y_test))
    dense_acc = float(base["accuracy"])
    rep = sparsity_report(dense, INPUT_SHAPE[model])
    costs = {r.layer: int(r.dense_macs) for r in rep.rows}
    kept0, total = _kept_total(dense)
    results = {"model": model, "quick": cfg.name == "quick", "seed": seed, "config": cfg.to_dict(),
               "dense": {"source": source, "accuracy": dense_acc, "loss": float(base["loss"]),
                         "test_images": int(len(y_test)), "weights": total, "connections": costs,
                         "sparsity": rep.to_dict()},
               "paper": PAPER[model], "target": TARGETS[model], "timing": timing}
    log(f"[{model}] dense accuracy {100 * dense_acc:.2f}% on {len(y_test)} test images ({source})")

    # Figure 2 (fcn1) and Figure 3 (histograms): straight from the weights
    w = _weights(dense)
    if model == "fcn1":
        w1 = w["1"]   # (784, 10): one 28x28 pattern per digit
        results["figure2"] = {"rows": [7, 14, 21], "digit": 0,
                              "patterns": np.round(w1.T.reshape(10, 28, 28), 5).tolist()}
    hist = {}
    edges = np.linspace(-max(float(np.abs(v).max()) for v in w.values()), max(float(np.abs(v).max()) for v in w.values()), 121)
    for name, v in w.items():
        counts, _ = np.histogram(v.ravel(), bins=edges)
        hist[name] = {"counts": counts.tolist(), "std": float(v.std()), "mean_abs": float(np.abs(v).mean()),
                      "weights": int(v.size)}
    results["figure3"] = {"edges": edges.tolist(), "layers": hist}

    # Figure 4, no retraining: a global |w| threshold sweep (the paper's method)
    t1 = time.perf_counter()
    sweep_rows = []
    for r in cfg.sweep_removed:
        def point(r=r):
            t = global_threshold(dense, r)
            copy = clone(dense)
            prune(copy, threshold=t)
            kept, tot = _kept_total(copy)
            ev = evaluate(copy, x_test, y_test)
            return {"target_removed": r, "threshold": t, "kept": kept, "removed": 1 - kept / tot,
                    "accuracy": float(ev["accuracy"]), "loss": float(ev["loss"])}
        sweep_rows.append(store.run(f"sweep-{r:g}", point))
    timing["sweep_seconds"] = time.perf_counter() - t1

    # Figure 4, with masked retraining: iterative, largest keep ratio first, each point from the last
    t1 = time.perf_counter()
    retrain_rows, previous = [], None
    for i, keep in enumerate(cfg.retrain_keep):
        key = f"retrain-{keep:g}"

        def point(keep=keep, prev=previous, i=i):
            # global magnitude pruning of what the previous point kept (its retrained weights): the
            # same |w| ranking across layers as the threshold sweep, to `keep` of all the weights
            m = clone(dense if prev is None else nn.load(store.model_path(prev)))
            prune_to_density(m, keep, scope="global")
            before = evaluate(m, x_test, y_test)
            _retrain(m, train, cfg.retrain_epochs, cfg, seed + 1 + i)
            ev = evaluate(m, x_test, y_test)
            kept, tot = _kept_total(m)
            rep = sparsity_report(m, INPUT_SHAPE[model])
            nn.save(m, store.model_path(key), metadata={"study": "prune-study", "model": model, "keep": keep,
                                                        "accuracy": float(ev["accuracy"])})
            return {"keep": keep, "kept": kept, "removed": 1 - kept / tot, "from": prev or "dense",
                    "accuracy_before_retraining": float(before["accuracy"]),
                    "accuracy": float(ev["accuracy"]), "loss": float(ev["loss"]),
                    "epochs": cfg.retrain_epochs, "gain": rep.gain, "densities": {r.layer: r.density for r in rep.rows},
                    "model_file": str(store.model_path(key).relative_to(out))}
        if store.get(key) is not None and not store.model_path(key).exists():
            store.path(key).unlink()   # a point whose model went missing is redone
        retrain_rows.append(store.run(key, point))
        previous = key
    timing["retrain_sweep_seconds"] = time.perf_counter() - t1
    results["figure4"] = {"sweep": sweep_rows, "retrained": retrain_rows}

    # the target: the fewest weights kept at a loss of at most TARGETS[model]["loss"]
    tgt = TARGETS[model]
    ok = [r for r in retrain_rows if r["accuracy"] >= dense_acc - tgt["loss"] - 1e-12]
    best = min(ok, key=lambda r: r["kept"]) if ok else None
    results["target_result"] = {
        "keep_at_most": tgt["keep"], "loss_at_most": tgt["loss"],
        "best": None if best is None else {"keep": best["kept"] / total, "accuracy": best["accuracy"],
                                           "loss_points": 100 * (dense_acc - best["accuracy"]),
                                           "model_file": best["model_file"]},
        "met": best is not None and best["kept"] / total <= tgt["keep"] + 1e-12,
        "stretch_met": (None if "stretch" not in tgt else best is not None and best["kept"] / total <= tgt["stretch"])}
    if best is not None:
        results["target_result"]["sparsity"] = sparsity_report(nn.load(out / best["model_file"]), INPUT_SHAPE[model]).to_dict()

    # the error model (eq. 1-3) on both curves, c = connections kept
    results["error_model"] = {
        "without_retraining": _fit_error_models([(r["kept"], 1 - r["accuracy"]) for r in sweep_rows], 0.01, 0.05),
        "with_retraining": _fit_error_models([(total, 1 - dense_acc)] + [(r["kept"], 1 - r["accuracy"]) for r in retrain_rows],
                                             0.002, 0.02),
    }

    if model != "fcn1" and cfg.sens_densities:
        results.update(_per_layer(model, cfg, dense, dense_acc, data, train, x_test, y_test, costs, seed, store, out, timing))
    timing["study_seconds_this_run"] = time.perf_counter() - t0
    return results


def _per_layer(model, cfg, dense, dense_acc, data, train, x_test, y_test, costs, seed, store, out, timing) -> dict:
    xs, ys = x_test[:cfg.sens_test_limit] if cfg.sens_test_limit else x_test, \
        y_test[:cfg.sens_test_limit] if cfg.sens_test_limit else y_test
    sens_train = (train[0][:cfg.sens_retrain_limit], train[1][:cfg.sens_retrain_limit]) if cfg.sens_retrain_limit else train
    names = list(prunable_layers(dense))
    t1 = time.perf_counter()
    rows = {"before": [], "after": []}
    for phase in ("before", "after"):
        if phase == "after" and not cfg.sens_retrain_epochs:
            continue
        for name in names:
            for d in cfg.sens_densities:
                def point(name=name, d=d, phase=phase):
                    retrain = None
                    if phase == "after":
                        def retrain(m):
                            _retrain(m, sens_train, cfg.sens_retrain_epochs, cfg, seed + 100)
                    r = sensitivity(dense, xs, ys, [d], layers=name, retrain=retrain)[0]
                    return dataclasses.asdict(r)
                rows[phase].append(store.run(f"sens-{phase}-{name}-{d:g}", point))
        write_sensitivity_csv([SensitivityRow(**{k: r[k] for k in ("parameter", "density", "accuracy", "loss")})
                               for r in rows[phase]], out / f"sensitivity-{phase}.csv")
    timing["sensitivity_seconds"] = time.perf_counter() - t1
    sens_dense = store.run("sens-dense", lambda: evaluate(dense, xs, ys))
    sens_base = float(sens_dense["accuracy"])
    curves = {phase: sens_curves([SensitivityRow(**{k: r[k] for k in ("parameter", "density", "accuracy", "loss")})
                                  for r in rows[phase]]) for phase in rows if rows[phase]}
    # the paper's budget on the curves without retraining (its method); "no loss" on the retrained curves
    budgets = [("paper", PAPER[model]["budget"], "before"),
               ("no_loss", NO_LOSS_BUDGET, "after" if "after" in curves else "before")]
    t1 = time.perf_counter()
    allocations = []
    for label, budget, phase in budgets:
        # density 1.0 is "the layer left dense": drop 0 by definition (allocation adds it); its
        # measured point (after a short retraining it may sit below the dense accuracy) is left out
        pts = {k: [p for p in v if p[0] < 1.0] for k, v in curves[phase].items()}
        # the reference of the curves after retraining is the dense model retrained the same way
        # (the mean of their density-1.0 points): a short retraining's own offset is no pruning loss
        ref = sens_base
        if phase == "after":
            ones = [a for v in curves[phase].values() for d, a in v if d == 1.0]
            ref = sum(ones) / len(ones) if ones else sens_base
        both = alloc_mod.allocate(pts, costs, budget, baseline=ref)
        for method, a in both.items():
            key = f"alloc-{label}-{method}"

            def point(a=a, key=key, i=len(allocations)):
                m = clone(dense)
                alloc_mod.apply_allocation(m, a)
                before = evaluate(m, x_test, y_test)
                _retrain(m, train, cfg.alloc_retrain_epochs, cfg, seed + 200 + i)
                ev = evaluate(m, x_test, y_test)
                rep = sparsity_report(m, INPUT_SHAPE[model])
                nn.save(m, store.model_path(key), metadata={"study": "prune-study", "model": model,
                                                            "allocation": a.to_dict(), "accuracy": float(ev["accuracy"])})
                kept, tot = _kept_total(m)
                return {"densities": dict(a.densities), "accuracy_before_retraining": float(before["accuracy"]), "accuracy": float(ev["accuracy"]),
                        "loss": float(ev["loss"]), "epochs": cfg.alloc_retrain_epochs, "keep": kept / tot,
                        "measured_gain": rep.gain, "sparsity": rep.to_dict(),
                        "model_file": str(store.model_path(key).relative_to(out))}
            found = store.get(key)
            if found is not None and store.model_path(key).exists() and "densities" not in found:
                meta = nn.serialization.read_metadata(store.model_path(key)).get("allocation", {})
                found["densities"] = {r["layer"]: r["density"] for r in meta.get("layers", [])}
            if found is not None and (not store.model_path(key).exists() or found.get("densities") != a.densities):
                store.path(key).unlink()   # its model went missing, or the allocation is another one now
            measured = store.run(key, point)
            allocations.append({"label": label, "budget": budget, "curves": phase, "method": method,
                                "allocation": a.to_dict(), "text": str(a), **measured})
    timing["allocation_seconds"] = time.perf_counter() - t1
    return {"figure5": {"test_images": int(len(ys)), "dense_accuracy": sens_base,
                        "retrain": {"epochs": cfg.sens_retrain_epochs, "images": int(len(sens_train[1]))},
                        "curves": {k: {layer: [list(p) for p in pts] for layer, pts in v.items()} for k, v in curves.items()},
                        "csv": [f"sensitivity-{p}.csv" for p in curves]},
            "allocations": allocations}

