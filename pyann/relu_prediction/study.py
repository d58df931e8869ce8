"""The activation study of the ReLU-prediction paper: Table 1, Figure 2, Table 3, firing rates.

    results = run_study("mnist", epochs=20, seed=0, out_dir="runs/relu-study-mnist")

trains mlp5 with the project recipe (`pyann.recipes.mlp_recipe`) with an `ActivationRecorder`
on a fixed probe set, then computes

- Table 1: test accuracy (full test set) at epochs 4, 8, 12, 16, 20, beside the paper's;
- Figure 2: for each hidden layer and epoch e >= 2, the probability that a neuron's state
  (ReLU output > 0) at the end of epoch e equals its state at the end of epoch e-1, averaged
  over the probe samples and the layer's neurons (and, for the predictor's point of view,
  P(off at e | off at e-1));
- Table 3: each hidden layer's share of active (image, neuron) states on the full test set with
  the final model, beside the paper's (MNIST only in the paper);
- firing-rate distributions: per neuron, the share of images that activate it, on the full
  training set (what a history predictor is built from) and the full test set; counts of dead
  (0 %), rarely on (< 5 %) and always on (> 95 %) neurons and a histogram per layer;

and writes results.json (every number the report prints), report.md and the PNG figures to
`out_dir`, all atomically. Which probe set and why: see `PROBE_RATIONALE`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ..io import save_arrays, write_json, write_text
from ..provenance import stamp
from ..train import PrintTable
from . import paper
from .activations import firing_rates
from .recorder import ActivationRecorder, agreement_by_epoch, firing_rate_summary

DEFAULT_PROBE_SIZE = 2000

PROBE_RATIONALE = (
    "The paper does not say on which images Figure 2 was measured. Its states serve one purpose: "
    "predicting, at inference time, the states of inputs the network has not been trained on "
    "(Table 2 runs the 10,000 test images), and its Tables 1 and 3 are test-set numbers. So the "
    "probe is a fixed subset of the TEST set, drawn once from the seed and the same at every "
    "epoch; the states are those of unseen images, without the fit-to-the-sample effect a "
    "training subset would add. With 2,000 images the standard error of a Figure 2 value (over "
    "images) is under 0.1 points (0.04-0.08 measured on MNIST and Fashion-MNIST at epoch 2, where "
    "states change most), and all 20 epochs x 4 layers take 10 MB packed.")

FIGURES = {
    "accuracy": "accuracy.png",
    "figure2": "figure2_agreement.png",
    "active_share": "active_share.png",
    "firing_rates": "firing_rates.png",
}

DATASET_LABELS = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


def _label(name: str) -> str:
    return DATASET_LABELS.get(name, name)


def as_dataset(data, root=None):
    """A pyann.data.Dataset from a dataset name, a Dataset, or ((x_train, y_train), (x_test, y_test))
    of uint8 NCHW images and int labels (for tests and custom data)."""
    from ..data import Dataset, load
    if isinstance(data, str):
        return load(data, root=root)
    if all(hasattr(data, a) for a in ("x_train", "y_train", "x_test", "y_test")):
        return data
    try:
        (x_train, y_train), (x_test, y_test) = data
    except (TypeError, ValueError):
        raise ValueError("dataset must be a name, a pyann.data.Dataset or ((x_train, y_train), "
                         "(x_test, y_test))") from None
    classes = tuple(str(c) for c in range(int(max(np.max(y_train), np.max(y_test))) + 1))
    return Dataset(x_train=np.asarray(x_train), y_train=np.asarray(y_train), x_test=np.asarray(x_test),
                   y_test=np.asarray(y_test), name="custom", source_path=Path("."), classes=classes,
                   official=False, notes=("arrays passed in by the caller",))


def choose_probe(data, probe: str = "test", size: Optional[int] = DEFAULT_PROBE_SIZE, seed: int = 0):
    """(probe name, sorted indices, float32 images): a seeded subset of the test or training set.

    probe: "test" or "train". size None (or >= the set's size) takes the whole set. The subset
    depends only on (seed, probe set, size), not on training."""
    from ..data import to_float
    if probe not in ("test", "train"):
        raise ValueError(f"probe must be 'test' or 'train', got {probe!r}")
    x = data.x_test if probe == "test" else data.x_train
    n = len(x)
    if size is not None and size <= 0:
        raise ValueError(f"probe size must be positive, got {size}")
    if size is None or size >= n:
        idx = np.arange(n)
    else:
        idx = np.sort(np.random.default_rng([seed, 20180, 1 if probe == "test" else 2]).choice(n, size, replace=False))
    return probe, idx, to_float(x[idx])


def _rates_on(model, x_uint8: np.ndarray, chunk: int = 10000):
    """Per-neuron firing rates over uint8 images, converting to float one chunk at a time."""
    from ..data import to_float
    total, counts = 0, None
    for s in range(0, len(x_uint8), chunk):
        xb = to_float(x_uint8[s:s + chunk])
        rates = firing_rates(model, xb)
        part = [r * len(xb) for r in rates]
        counts = part if counts is None else [c + p for c, p in zip(counts, part)]
        total += len(xb)
    return [c / total for c in counts]


def _pct(x):
    return None if x is None else 100.0 * x


def _diff(ours, theirs):
    """ours - paper, element-wise (percentage points); None when the paper has no values."""
    if theirs is None:
        return None
    return [None if a is None or b is None else a - b for a, b in zip(ours, theirs)]


SWEEP_FIGURE = "accuracy_vs_macs.png"


def sweep_hook(model, data, out_dir: Optional[Path], seed: int = 0) -> dict:
    """The third figure, accuracy vs executed multiply-adds per predictor, on the study's model:
    a HistoryPredictor (training firing rates, the paper's mask; tau swept) and a
    LowRankPredictor (margin swept), both on hidden layers 3 and 4, the dense and zero-skipping
    reference points and the paper's point, on the full test set; the figure is saved as
    accuracy_vs_macs.png. A failure returns {"status": "failed: ..."} so the study's own results
    are still written (the report shows the failure)."""
    from . import sweep as sw
    try:
        from ..data import to_float
        from .predictors import HistoryPredictor, LowRankPredictor
        x_train, x_test, y_test = to_float(data.x_train), to_float(data.x_test), np.asarray(data.y_test)
        t0 = time.perf_counter()
        history_pred = HistoryPredictor().fit(model, x_train)
        lowrank_pred = LowRankPredictor(seed=seed).fit(model, x_train)
        del x_train
        curves = {sw.series_name(history_pred, "combined"): sw.sweep_history(model, history_pred, x_test, y_test),
                  sw.series_name(lowrank_pred, "combined"): sw.sweep_lowrank(model, lowrank_pred, x_test, y_test)}
        points = sw.named_points(sw.reference_points(model, x_test, y_test))
        paper_pt = sw.paper_point() if getattr(data, "name", None) == "mnist" else None   # Table 2 is MNIST
        result = {"status": "ok", "curves": curves, "points": points, "paper": paper_pt,
                  "test_images": int(len(x_test)), "seconds": time.perf_counter() - t0}
        if out_dir is not None:
            from .. import plots
            fig = plots.plot_accuracy_vs_macs(
                curves, points=points, paper=paper_pt,
                title=f"{_label(getattr(data, 'name', ''))} mlp5: accuracy vs executed multiply-adds")
            plots.save_figure(fig, Path(out_dir) / SWEEP_FIGURE)
            result["figure"] = SWEEP_FIGURE
        result["markdown"] = _sweep_markdown(result)
        return result
    except Exception as exc:  # the sweep is optional here; the study's own outputs must still be written
        return {"status": f"failed: {type(exc).__name__}: {exc}"}


def _sweep_markdown(result: dict) -> str:
    rows = ["| predictor | setting | multiply-adds executed (% of dense) | test accuracy (%) |",
            "| :--- | :--- | ---: | ---: |"]
    for name, p in result["points"].items():
        rows.append(f"| {name} | – | {100 * p['mac_share']:.2f} | {100 * p['accuracy']:.2f} |")
    for name, pts in result["curves"].items():
        for p in pts:
            knob = "tau" if "tau" in p else "margin"
            rows.append(f"| {name} | {knob} {p.get(knob):g} | {100 * p['mac_share']:.2f} | {100 * p['accuracy']:.2f} |")
    pp = result.get("paper")
    if pp:
        rows.append(f"| {pp['name']} | (derived from Table 3) | {100 * pp['mac_share']:.2f} | {100 * pp['accuracy']:.2f} |")
    return (f"On the full test set ({result['test_images']} images), with the final model; from "
            "`pyann.relu_prediction.sweep` (numbers under `sweep` in results.json).\n\n" + "\n".join(rows))


def run_study(dataset: Union[str, object] = "mnist", epochs: int = 20, seed: int = 0,
              out_dir=None, probe: str = "test", probe_size: Optional[int] = DEFAULT_PROBE_SIZE,
              root=None, model_name: str = "mlp5", batch_size: int = 128, lr: float = 0.05,
              verbose: bool = True, progress: Optional[bool] = None, save_states: bool = True,
              sweep: bool = True, activity_l1: float = 0.0) -> dict:
    """Train `model_name` on `dataset` for `epochs` with the activation recorder and compute the
    study (see the module docstring). Returns the results dict; with `out_dir`, also writes
    results.json, report.md, the figures (PNG) and, with save_states, states.npz (the probe
    indices and the packed per-epoch states).

    dataset: a name for pyann.data.load (with `root`), a Dataset, or ((x_train, y_train),
    (x_test, y_test)) uint8 arrays. probe: "test" (default) or "train", `probe_size` images.
    verbose: print the per-epoch table; progress: tqdm bar (None = only on a terminal).
    sweep: call `sweep_hook` (accuracy vs multiply-adds per predictor) when it is available.
    """
    from ..recipes import mlp_recipe
    t_start = time.perf_counter()
    data = as_dataset(dataset, root)
    name = getattr(data, "name", "custom")
    probe_name, probe_idx, probe_x = choose_probe(data, probe, probe_size, seed)
    recorder = ActivationRecorder(probe_x)
    callbacks = ([PrintTable()] if verbose else []) + [recorder]
    if verbose:
        print(f"relu-study: {model_name} on {name} ({len(data.x_train)} train / {len(data.x_test)} test images), "
              f"{epochs} epochs, seed {seed}; probe: {len(probe_idx)} {probe_name} images"
              + (f"; writing to {out_dir}/" if out_dir is not None else ""), flush=True)
    model, history = mlp_recipe(model_name, data, epochs=epochs, seed=seed, batch_size=batch_size, lr=lr,
                                activity_l1=activity_l1, callbacks=callbacks, progress=progress)
    t_train = time.perf_counter() - t_start

    # Table 1 -----------------------------------------------------------------------------------
    acc_by_epoch = {r["epoch"]: r.get("val_acc") for r in history.epochs}
    paper_t1 = paper.table1(name)
    t1_epochs = [e for e in paper.TABLE1_EPOCHS if e in acc_by_epoch]
    table1 = {"epochs": t1_epochs,
              "accuracy_pct": [_pct(acc_by_epoch[e]) for e in t1_epochs],
              "paper_pct": [paper_t1[e] for e in t1_epochs] if paper_t1 else None,
              "diff_pct": _diff([_pct(acc_by_epoch[e]) for e in t1_epochs],
                                [paper_t1[e] for e in t1_epochs] if paper_t1 else None),
              "all_epochs": sorted(acc_by_epoch),
              "all_accuracy_pct": [_pct(acc_by_epoch[e]) for e in sorted(acc_by_epoch)]}

    # Figure 2 ------------------------------------------------------------------------------------
    states = {e: recorder.states(e) for e in recorder.epochs}
    agree = agreement_by_epoch(states)
    agreement_pct = [[100.0 * p for p in layer] for layer in agree["agreement"]]
    stay_off_pct = [[_pct(p) for p in layer] for layer in agree["stay_off"]]
    shares = recorder.active_share()
    lr_by_epoch = {r["epoch"]: r.get("lr") for r in history.epochs}
    figure2 = {"epochs": agree["epochs"], "agreement_pct": agreement_pct, "stay_off_pct": stay_off_pct,
               "lr": [lr_by_epoch.get(e) for e in agree["epochs"]],
               "paper_shape": paper.FIGURE2_SHAPE.get(name),
               "checks": _figure2_checks(agreement_pct)}
    probe_active = {"epochs": shares["epochs"], "active_pct": [[100.0 * s for s in layer] for layer in shares["share"]]}
    del states

    # Table 3 and firing rates -----------------------------------------------------------------
    test_rates = _rates_on(model, data.x_test)
    train_rates = _rates_on(model, data.x_train)
    paper_t3 = paper.table3(name)
    table3 = {"set": "test", "images": int(len(data.x_test)),
              "active_pct": [100.0 * float(r.mean()) for r in test_rates],
              "train_active_pct": [100.0 * float(r.mean()) for r in train_rates],
              "paper_pct": list(paper_t3) if paper_t3 else None}
    table3["diff_pct"] = _diff(table3["active_pct"], table3["paper_pct"])
    table3["checks"] = _table3_checks(table3)
    rates = {"train": [firing_rate_summary(r) for r in train_rates],
             "test": [firing_rate_summary(r) for r in test_rates],
             "train_images": int(len(data.x_train)), "test_images": int(len(data.x_test))}

    last = history.last()
    results = {
        "study": "relu-prediction activation study (paper 1: Table 1, Figure 2, Table 3, firing rates)",
        "paper": paper.PAPER_TITLE,
        "dataset": name, "official_data": bool(getattr(data, "official", False)),
        "model": model_name, "hidden_widths": recorder.widths,
        "recipe": {"name": "pyann.recipes.mlp_recipe", "epochs": epochs, "seed": seed, "batch_size": batch_size,
                   "lr": lr, "optimizer": "SGD nesterov momentum 0.9, weight decay 5e-4, cosine lr to 0"
                   + (f", L1 penalty {activity_l1:g} on the hidden activations" if activity_l1 else ""),
                   "activity_l1": activity_l1},
        "probe": {"set": probe_name, "images": int(len(probe_idx)), "seed": seed,
                  "why": PROBE_RATIONALE if probe_name == "test" else "chosen by the caller (probe='train')"},
        "final_test_accuracy_pct": _pct(last.get("val_acc")),
        "table1": table1,
        "figure2": figure2,
        "probe_active_share": probe_active,
        "table3": table3,
        "firing_rates": rates,
        "history": history.to_dict(),
        "seconds": {"train_and_record": t_train},
        "files": {},
    }
    stamp(results, dataset=data)   # version, commit, command line, machine, dataset identity

    sweep_result = sweep_hook(model, data, Path(out_dir) if out_dir is not None else None, seed) if sweep else None
    results["sweep"] = sweep_result if sweep_result is not None else {
        "status": "not available: pyann.relu_prediction.sweep was not found"} if sweep else {
        "status": "skipped: the run was started without it (--no-sweep / sweep=False)"}
    results["seconds"]["total"] = time.perf_counter() - t_start

    if out_dir is not None:
        from .. import nn
        nn.save(model, Path(out_dir) / "model.npz",
                metadata={"dataset": name, "seed": seed, "epochs": epochs, "recipe": "mlp_recipe"})
        results["files"]["model"] = "model.npz"
        write_outputs(results, out_dir, recorder=recorder if save_states else None, probe_idx=probe_idx)
    return results


def rerender(out_dir, sweep: bool = False, root=None) -> dict:
    """Redraw the figures and rewrite report.md and results.json of a finished study from its
    results.json (no training). sweep=True also reruns `sweep_hook` on the saved model.npz (the
    dataset is loaded by name, with `root`). Returns the results dict."""
    import json
    out = Path(out_dir)
    results = json.loads((out / "results.json").read_text())
    if sweep:
        from .. import nn
        model = nn.load(out / "model.npz")
        got = sweep_hook(model, as_dataset(results["dataset"], root), out, results["recipe"]["seed"])
        results["sweep"] = got if got is not None else {"status": "not available: pyann.relu_prediction.sweep was not found"}
    results["figure2"]["checks"] = _figure2_checks(results["figure2"]["agreement_pct"])
    results["table3"]["checks"] = _table3_checks(results["table3"])
    results["probe"]["why"] = PROBE_RATIONALE if results["probe"]["set"] == "test" else results["probe"]["why"]
    lr = {r["epoch"]: r.get("lr") for r in results["history"]["epochs"]}
    results["figure2"]["lr"] = [lr.get(e) for e in results["figure2"]["epochs"]]
    write_outputs(results, out, keep_states=(out / "states.npz").exists())
    return results


def _table3_checks(table3: dict) -> dict:
    """Does the active share fall with depth, as in the paper's Table 3 (67 -> 45 -> 16 -> 10 %)?"""
    def falls(v):
        return None if not v or len(v) < 2 else all(b < a for a, b in zip(v, v[1:]))
    return {"decreases_with_depth": falls(table3["active_pct"]),
            "paper_decreases_with_depth": falls(table3.get("paper_pct"))}


def _figure2_checks(agreement_pct) -> dict:
    """The paper's two statements about Figure 2, tested on our curves.

    rises_with_training: the last epoch's value is above epoch 2's, in every layer.
    deeper_is_higher: the layer means over all epochs increase strictly with depth (the last
    epoch alone says little once the learning rate has decayed and every layer is near 100 %).
    layer_spread_pct: max - min of those means. None where there are fewer than two epochs."""
    if not agreement_pct or len(agreement_pct[0]) < 2:
        return {"rises_with_training": None, "rises_by_layer": [], "mean_by_layer_pct": [],
                "final_by_layer_pct": [], "deeper_is_higher": None, "layer_spread_pct": None}
    rises = [layer[-1] > layer[0] for layer in agreement_pct]
    means = [float(np.mean(layer)) for layer in agreement_pct]
    return {"rises_with_training": all(rises), "rises_by_layer": rises,
            "mean_by_layer_pct": means,
            "final_by_layer_pct": [layer[-1] for layer in agreement_pct],
            "deeper_is_higher": all(b > a for a, b in zip(means, means[1:])),
            "layer_spread_pct": max(means) - min(means)}


def write_outputs(results: dict, out_dir, recorder: Optional[ActivationRecorder] = None,
                  probe_idx: Optional[np.ndarray] = None, keep_states: bool = False) -> dict:
    """Draw the figures and write them, report.md and results.json into out_dir (atomically).
    With `recorder`, also states.npz; keep_states lists an existing states.npz (rerender).
    Returns results["files"]."""
    from .. import plots
    from .report import render_report
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    label = _label(results["dataset"])
    t1, f2, t3 = results["table1"], results["figure2"], results["table3"]
    paper_t1 = paper.table1(results["dataset"])
    files = {k: v for k, v in results.get("files", {}).items() if k == "model" and (out / v).exists()}

    figs = {
        "accuracy": plots.plot_accuracy(t1["all_epochs"], t1["all_accuracy_pct"], paper=paper_t1,
                                        title=f"{label}: test accuracy while training ({results['model']})"),
        "figure2": plots.plot_agreement({label: f2}, notes={label: f2.get("paper_shape")},
                                        highlight=paper.PREDICTED_LAYERS,
                                        title=f"Figure 2: activation-state predictability "
                                              f"({results['probe']['images']} {results['probe']['set']} images)"),
        "active_share": plots.plot_active_share(t3["active_pct"], t3["paper_pct"], by_epoch=results["probe_active_share"],
                                                set_label=f"{t3['images']} test images",
                                                title=f"{label}: share of active neurons per hidden layer (Table 3)"),
        "firing_rates": plots.plot_firing_rates(
            {f"train ({results['firing_rates']['train_images']})": results["firing_rates"]["train"],
             f"test ({results['firing_rates']['test_images']})": results["firing_rates"]["test"]},
            title=f"{label}: per-neuron firing rates, final model"),
    }
    if not f2["epochs"]:   # a 1-epoch run has no epoch pair to compare: no empty figure (the report says why)
        del figs["figure2"]
        (out / FIGURES["figure2"]).unlink(missing_ok=True)
    for key, fig in figs.items():
        plots.save_figure(fig, out / FIGURES[key])
        files[key] = FIGURES[key]
    if recorder is not None:
        arrays = recorder.packed()
        if probe_idx is not None:
            arrays["probe_indices"] = np.asarray(probe_idx, np.int64)
        save_arrays(out / "states.npz", arrays,
                    {"format": "pyann-relu-states/1", "dataset": results["dataset"], "probe": results["probe"]["set"],
                     "layout": "layer{k}: uint8 (epochs, probe images, ceil(width/8)), np.packbits along axis 2; "
                               "np.unpackbits(a, axis=2, count=width) restores bool states"})
        files["states"] = "states.npz"
    elif keep_states:
        files["states"] = "states.npz"
    if (results.get("sweep") or {}).get("figure"):
        files["sweep"] = results["sweep"]["figure"]
    files["report"] = "report.md"
    files["results"] = "results.json"
    results["files"] = files
    write_text(out / "report.md", render_report(results))
    write_json(out / "results.json", results)
    return files


def combine_studies(studies: Sequence, out_dir) -> dict:
    """Both datasets side by side, as the paper shows them: Table 1 with one row per dataset,
    Figure 2 with one panel per dataset, Table 3 per dataset.

    studies: results dicts (from run_study) or folders holding a study's results.json.
    Writes results.json, report.md and figure2_both.png into out_dir; returns the combined dict."""
    import json
    from .. import plots
    from .report import render_combined_report
    loaded = []
    for s in studies:
        if isinstance(s, (str, Path)):
            r = json.loads((Path(s) / "results.json").read_text())
            r["_folder"] = str(s)
            loaded.append(r)
        else:
            loaded.append(s)
    out = Path(out_dir)
    combined = {
        "study": "relu-prediction activation study, datasets side by side",
        "paper": paper.PAPER_TITLE,
        "datasets": [r["dataset"] for r in loaded],
        "folders": [r.get("_folder") for r in loaded],
        "probe": [r["probe"] for r in loaded],
        "table1": {r["dataset"]: r["table1"] for r in loaded},
        "figure2": {r["dataset"]: r["figure2"] for r in loaded},
        "table3": {r["dataset"]: r["table3"] for r in loaded},
        "final_test_accuracy_pct": {r["dataset"]: r["final_test_accuracy_pct"] for r in loaded},
        "files": {"figure2": "figure2_both.png", "report": "report.md", "results": "results.json"},
        "studies_provenance": [r.get("provenance") for r in loaded],
    }
    stamp(combined, dataset=[((r.get("provenance") or {}).get("dataset") or {}).get("name") or r["dataset"]
                             for r in loaded])
    probe = loaded[0]["probe"]
    fig = plots.plot_agreement({_label(r["dataset"]): r["figure2"] for r in loaded},
                               notes={_label(r["dataset"]): r["figure2"].get("paper_shape") for r in loaded},
                               highlight=paper.PREDICTED_LAYERS,
                               title=f"Figure 2: activation-state predictability ({probe['images']} {probe['set']} images)")
    plots.save_figure(fig, out / combined["files"]["figure2"])
    write_text(out / "report.md", render_combined_report(combined))
    write_json(out / "results.json", combined)
    return combined
