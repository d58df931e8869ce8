"""`python -m bench relu`: ReLU-prediction inference on 10,000 test images (paper 1, Table 2).

Two models, each trained with a fixed seed (or reused from the trained-model cache): mlp5 with
the project recipe, and its sparse-activation variant (the same recipe plus an L1 penalty on the
hidden activations, --activity-l1), whose neurons fire about as rarely as the paper's deep layers.
For each it fits the predictors on TRAINING images, then times inference on the whole test set
for each row, batched and one image at a time, in one process (median of repeats after a
warm-up); every speedup is against NumPy dense on the same model in the same mode. Columns: accuracy
(from the plan's own outputs), seconds, images/s, the share of dense multiply-adds executed
(predictor work included) and the speedup against NumPy dense in the same mode. Also writes a
per-layer time breakdown, the tau / margin sweeps with precision and recall of "inactive", and
the accuracy-vs-MACs figure. PyTorch's and ONNX Runtime's CPU engines, when installed, run the
same weights as peer rows, timed in the same rounds (a row says "not installed" otherwise).
"""
from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import numpy as np

from pyann import infer, kernels, plots
from pyann.argtypes import comma_list, non_negative_float, positive_int, seed
from pyann.relu_prediction import HistoryPredictor, LowRankPredictor, inactive_precision_recall
from pyann.relu_prediction import sweep as sw
from pyann.train import Callback

from .common import format_table, machine_info, machine_line, save_results, time_call, time_round_robin

PAPER_TAU = 0.5
SPARSE_L1 = 1e-3   # activity-L1 strength of the sparse-activation model variant (mlp_recipe)


def _layers(text: str) -> str:
    """A checked comma-separated list of hidden layers, kept as text (it labels the rows)."""
    return ",".join(str(k) for k in comma_list(positive_int)(text))


# --quick: a tiny run (the plain model only, one epoch on 5,000 training images, 300 test images,
# one repeat, no sweeps) that checks the whole pipeline in about a minute; explicit flags win
QUICK = {"epochs": 1, "train_images": 5000, "n": 300, "repeats": 1, "repeats_one": 1, "no_sweep": True,
         "activity_l1": [0.0]}


def add_arguments(parser):
    from pyann.cli.common import add_data_arguments
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--epochs", type=positive_int, default=20,
                        help="training epochs of each model (trained on the first run, then cached)")
    parser.add_argument("--layers", type=_layers, default="3,4", help="hidden layers the predictors act on")
    parser.add_argument("--sparse-layers", type=_layers, default="1,2,3,4",
                        help="hidden layers the predictors act on in the sparse-activation model")
    parser.add_argument("--paper-tau", type=non_negative_float, default=PAPER_TAU,
                        help="tau of the paper-configuration masked row")
    parser.add_argument("--max-loss", type=non_negative_float, default=0.25,
                        help="accuracy loss (points) allowed on a training subsample when choosing "
                             "the combined rows' tau / margin")
    parser.add_argument("--rank", type=positive_int, default=32, help="rank of the low-rank predictor")
    parser.add_argument("--repeats", type=positive_int, default=9, help="timed rounds of the batched rows")
    parser.add_argument("--repeats-one", type=positive_int, default=3, help="repeats of the one-image rows")
    parser.add_argument("--n", type=positive_int, default=10000, help="test images")
    parser.add_argument("--train-images", type=positive_int, default=None,
                        help="train the models and fit the predictors on the first N training images only "
                             "(default: all; such models are cached apart)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the sweeps and the figure")
    parser.add_argument("--latency-split", action="store_true",
                        help="add the optional rows with both cores on each image (a barrier per layer: "
                             "slow on a busy machine)")
    parser.add_argument("--no-latency-split", action="store_true", help=argparse.SUPPRESS)   # the old default
    parser.add_argument("--one-image-peers", action="store_true",
                        help="add the PyTorch and ONNX Runtime rows one image at a time (a Python loop over "
                             "the images: minutes per pass)")
    # the default is the paper's model alone: the sparse-activation variant doubles the first run's
    # training (two 20-epoch models, ~6 min on 2 cores) and every later run's rows
    parser.add_argument("--activity-l1", type=comma_list(non_negative_float), default="0",
                        help="the models to benchmark, by the activity-L1 strength they were trained "
                             f"with: 0 is the project recipe, {SPARSE_L1:g} its sparse-activation variant "
                             f"(add it with --activity-l1 0,{SPARSE_L1:g})")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny run to check the setup: " + ", ".join(
                            f"--{k.replace('_', '-')}" + ("" if v is True else " " + (
                                ",".join(f"{e:g}" for e in v) if isinstance(v, list) else str(v)))
                            for k, v in QUICK.items()))
    parser.add_argument("--out", default="bench-results", metavar="DIR",
                        help="folder for relu[-<dataset>].json and the figure")
    add_data_arguments(parser)


def _choose(model, make, knobs, x, y, base_acc, max_loss):
    """The knob with the least MACs whose accuracy on (x, y) loses at most max_loss points."""
    best = None
    for knob in knobs:
        plan = infer.compile(model, "combined", make(knob))
        acc = plan.accuracy(x, y)
        share = plan.last_macs + plan.last_predictor_macs
        if 100 * (base_acc - acc) <= max_loss and (best is None or share < best[1]):
            best = (knob, share)
    return best[0] if best else knobs[0]


def layer_times(plan, x, repeats=3) -> list:
    """Batched: seconds of each layer's call, timed on its real input. One image at a time: the
    layers run inside one C loop per image, so a layer cannot be timed alone; the list holds the
    seconds of the loop over the first l layers, l = 1..L (cumulative; differences of these
    medians would be noisier than the layers they try to measure, even negative)."""
    if plan.mode == "batched":
        from pyann.infer import InferencePlan
        times, h = [], x
        for i, l in enumerate(plan.layers):
            sub = InferencePlan([l], plan.kernel, plan.mode, plan.fingerprint, plan.predictor, plan.permuted, plan.split)
            t = time_call(lambda: sub.run_prepared(h), repeats=repeats)["median"]
            times.append(t)
            h = sub.run_prepared(h)
        return times
    from pyann.infer import InferencePlan
    cumulative = []
    for l in range(1, len(plan.layers) + 1):
        sub = InferencePlan(plan.layers[:l], plan.kernel, plan.mode, plan.fingerprint, plan.predictor, plan.permuted,
                            plan.split)
        cumulative.append(time_call(lambda: sub.run_prepared(x), repeats=repeats)["median"])
    return cumulative


def model_label(activity_l1: float) -> str:
    return "mlp5" if not activity_l1 else f"mlp5 + activity L1 {activity_l1:g}"


def run(args) -> dict:
    from pyann.data import load, to_float

    from pyann.cli.common import prepare_data
    prepare_data(args.dataset, args)   # found, or downloaded (md5-checked) unless --offline; says where from
    data = load(args.dataset, root=args.data_root)
    if args.train_images:
        import dataclasses
        data = dataclasses.replace(data, x_train=data.x_train[:args.train_images],
                                   y_train=data.y_train[:args.train_images])
    x_train = to_float(data.x_train).reshape(len(data.x_train), -1)
    x = np.ascontiguousarray(to_float(data.x_test).reshape(len(data.x_test), -1)[:args.n], np.float32)
    y = np.asarray(data.y_test[:args.n])
    strengths = list(args.activity_l1)
    rows = [
        {"model": "paper", "row": "paper dense (quoted, i7-7700)", "mode": "one image", "accuracy": sw.PAPER_DENSE_ACC,
         "seconds": 45.73, "images_per_s": 10000 / 45.73, "mac_share": 1.0, "quoted": True},
        {"model": "paper", "row": "paper ReLU prediction (quoted)", "mode": "one image", "accuracy": sw.PAPER_PRED_ACC,
         "seconds": 15.26, "images_per_s": 10000 / 15.26, "mac_share": sw.paper_point()["mac_share"], "quoted": True},
    ]
    extra = {"models": {}, "layer_seconds": {}, "paper_point": sw.paper_point(),
             "layer_seconds_note": "batched rows: seconds of each layer; one-image rows: cumulative seconds of layers 1..l"}
    curves, points = {}, {}
    for strength in strengths:
        model_rows, info, breakdown, sweeps = bench_model(strength, data, x_train, x, y, args)
        rows += model_rows
        extra["models"][model_label(strength)] = info
        extra["layer_seconds"].update(breakdown)
        if sweeps:
            extra.setdefault("sweeps", {})[model_label(strength)] = sweeps
            tag = "" if not strength else f"{model_label(strength)}: "
            curves.update({f"{tag}{k}": v for k, v in sweeps["curves"].items()})
            points.update({f"{tag}{k}": v for k, v in sweeps["points"].items()})
    for r in rows:
        if r.get("quoted") or r.get("seconds") is None:
            continue
        base_row = next(b for b in rows if b["mode"] == r["mode"] and b["model"] == r["model"]
                        and b["row"] == "NumPy dense")
        r["speedup_vs_numpy"] = base_row["seconds"] / r["seconds"]
        r["accuracy_loss_pt"] = 100 * (base_row["accuracy"] - r["accuracy"])

    machine = machine_info()
    print(f"\nmlp5 on {args.dataset}, {len(x)} test images, median of repeats after warm-up, one process")
    print(machine_line(machine))
    print(results_table(rows))
    print("\nseconds per layer 1..5 (batched); one image: seconds of the C loop over layers 1..l (cumulative)")
    print(layer_seconds_table(extra["layer_seconds"]))
    suffix = "" if args.dataset == "mnist" else f"-{args.dataset}"
    if curves:
        fig_path = Path(args.out) / f"relu-accuracy-vs-macs{suffix}.png"
        fig = plots.plot_accuracy_vs_macs(curves, points=points, paper=sw.paper_point(),
                                          title=f"mlp5 / {args.dataset}: accuracy vs executed multiply-adds")
        plots.save_figure(fig, fig_path)
        extra["figure"] = str(fig_path)
        print(f"wrote {fig_path}")
    path = save_results(Path(args.out) / f"relu{suffix}.json", "relu", machine, rows, extra, dataset=data)
    print(f"wrote {path}")
    return {"rows": rows, **extra}


RESULT_COLUMNS = [("row", "row", "s"), ("mode", "mode", "s"),
                  ("accuracy", "accuracy", lambda v: f"{100 * v:.2f}%"), ("seconds", "seconds", ".4f"),
                  ("images_per_s", "images/s", ",.0f"), ("mac_share", "MACs executed", lambda v: f"{100 * v:.1f}%"),
                  ("speedup_vs_numpy", "speedup vs NumPy", ".2f")]


def results_table(rows, max_width: int = 120) -> str:
    """One table per model (the model as its heading), fitted to max_width columns; the
    speedup is against NumPy dense on the same model in the same mode."""
    parts = []
    for model in dict.fromkeys(r["model"] for r in rows):
        group = [r for r in rows if r["model"] == model]
        heading = "the paper (quoted, not measured here)" if model == "paper" else model
        parts.append(f"\n{heading}\n" + format_table(group, RESULT_COLUMNS, max_width=max_width))
    parts.append("speedup vs NumPy: against the NumPy dense row of the same model in the same mode, same run")
    return "\n".join(parts)


def layer_seconds_table(layer_seconds: dict, max_width: int = 120) -> str:
    """The per-layer breakdown as a table: one row per plan, one column per layer."""
    n = max((len(v) for v in layer_seconds.values()), default=0)
    rows = [dict({"plan": k}, **{f"l{i}": t for i, t in enumerate(v, 1)}) for k, v in layer_seconds.items()]
    return format_table(rows, [("plan", "plan [mode]", "s")] + [(f"l{i}", f"layer {i}", ".4f") for i in range(1, n + 1)],
                        max_width=max_width)


def bench_model(strength, data, x_train, x, y, args):
    """Every row for one trained model: (rows, workload info, per-layer seconds, sweeps or None)."""
    from pyann.recipes import trained_model

    label = model_label(strength)
    layer_arg = args.sparse_layers if strength else args.layers
    layers = tuple(int(k) for k in layer_arg.split(","))
    t0 = time.perf_counter()
    cached = _announce_training(label, strength, args)
    with _training_threads() if not cached else contextlib.nullcontext():   # only a training needs it
        model, history = trained_model("mlp5", args.dataset, seed=args.seed, epochs=args.epochs, progress=None,
                                       activity_l1=strength, root=args.data_root, train_images=args.train_images,
                                       callbacks=[_EpochLog(label, args.epochs)])
    model.eval()
    print(f"{label}: model ready in {time.perf_counter() - t0:.1f} s; fitting predictors on {len(x_train)} "
          f"training images")

    history_pred = HistoryPredictor(args.paper_tau, layers).fit(model, x_train)
    lowrank = LowRankPredictor(args.rank, 1.0, layers).fit(model, x_train)
    # knobs for the combined rows: chosen on training images (never the test set)
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(x_train), min(10000, len(x_train)), replace=False)
    xs, ys = np.ascontiguousarray(x_train[pick], np.float32), np.asarray(data.y_train)[pick]
    base = infer.compile(model, "dense").accuracy(xs, ys)
    tau = _choose(model, lambda t: history_pred.copy(tau=t), sw.DEFAULT_TAUS, xs, ys, base, args.max_loss)
    margin = _choose(model, lambda m: lowrank.copy(margin=m), sw.DEFAULT_MARGINS[::-1], xs, ys, base, args.max_loss)
    hist_best, low_best = history_pred.copy(tau=tau), lowrank.copy(margin=margin)
    print(f"chosen on training images (loss <= {args.max_loss} pt): history tau={tau:g}, low-rank margin={margin:g}")

    # the paper's tau is a statement about the paper's model; a model whose neurons fire far less
    # often (the sparse variant) gets the masked row at the tau chosen on its training images
    masked = ((f"pyann masked (paper: history tau={args.paper_tau:g}, layers {layer_arg})", history_pred)
              if not strength else (f"pyann masked (history tau={tau:g}, layers {layer_arg})", hist_best))
    specs = [  # (row name, kernel, predictor)
        ("NumPy dense", "numpy", None),
        ("pyann C dense", "dense", None),
        (masked[0], "masked", masked[1]),
        ("pyann zero-skipping (exact)", "zeroskip", None),
        (f"pyann combined (history tau={tau:g}, layers {layer_arg})", "combined", hist_best),
        (f"pyann combined (low-rank r={args.rank}, margin={margin:g}, layers {layer_arg})", "combined", low_best),
    ]
    rows, plans = [], {}
    for mode, mode_label, reps in (("batched", "batched", args.repeats), ("one_at_a_time", "one image", args.repeats_one)):
        entries = []   # (row without timings, the function to time)
        for name, kernel, pred in specs:
            plan = infer.compile(model, kernel, pred, mode=mode)
            entries.append(_plan_row(plan, x, y, label, name, mode_label))
            plans[(kernel, mode_label, name)] = plan
        if mode == "one_at_a_time" and args.latency_split:   # the latency split: both cores on each image, a barrier per layer
            for name, kernel, pred in (specs[1], specs[4]):
                plan = infer.compile(model, kernel, pred, mode=mode, split="outputs")
                entries.append(_plan_row(plan, x, y, label, f"{name}, both cores per image", mode_label))
        # other engines on the same weights, timed with the rows; one image at a time they loop in
        # Python over 10,000 images (PyTorch ~70 s a pass here), so there they are opt-in
        if mode == "batched" or args.one_image_peers:
            for peer in (_torch_row, _onnxruntime_row):
                entries.append(peer(model, x, y, mode, mode_label))
                entries[-1][0]["model"] = label
        else:
            print("  one image: the PyTorch and ONNX Runtime rows are opt-in there (a Python loop over the "
                  "images, minutes per pass): add --one-image-peers", flush=True)
        timed = [(row, fn) for row, fn in entries if fn is not None]
        for (row, _), t in zip(timed, time_round_robin([fn for _, fn in timed], repeats=reps)):
            row.update({"seconds": t["median"], "images_per_s": len(x) / t["median"], "timings": t})
            print(f"  {mode_label}: {row['row']}: {t['median']:.4f} s, acc {100 * row['accuracy']:.2f}%", flush=True)
        rows += [row for row, _ in entries]

    # per-layer time breakdown of the main plans
    breakdown = {}
    for (kernel, mode_label, name), plan in plans.items():
        if kernel in ("numpy", "dense", "zeroskip") or name.startswith("pyann combined (history"):
            if kernel == "numpy" and mode_label == "one image":
                continue   # Python loop: per-layer splitting would time the loop, not the layers
            breakdown[f"{label}: {name} [{mode_label}]"] = layer_times(plan, x, repeats=3)
    info = {"model": "mlp5", "activity_l1": strength, "dataset": args.dataset, "n": len(x), "layers": list(layers),
            "paper_tau": args.paper_tau, "chosen_tau": tau, "chosen_margin": margin, "rank": args.rank,
            "max_loss_pt": args.max_loss, "trained_test_accuracy": history["epochs"][-1]["val_acc"]}
    sweeps = None if args.no_sweep else _sweeps(model, history_pred, lowrank, x, y, args)
    return rows, info, breakdown, sweeps


def _training_threads():
    """One BLAS thread for training when the machine is already busy (1-minute load average at
    least the usable cores): OpenBLAS's threads spin-wait for each other, and on a shared 2-core
    machine at load 12 an mlp5 training step took 0.87 s with two threads and 0.11 s with one.
    Otherwise (an idle machine) BLAS keeps its threads. Only the first run trains."""
    import contextlib
    import os
    from threadpoolctl import threadpool_limits
    from pyann.parallel import available_cores
    try:
        busy = os.getloadavg()[0] >= available_cores()
    except OSError:   # no load average on this system
        busy = False
    if not busy:
        return contextlib.nullcontext()
    print("  (the machine is busy: training with one BLAS thread, much faster here than two that wait "
          "for each other)", flush=True)
    return threadpool_limits(1, user_api="blas")


def _announce_training(label, strength, args) -> bool:
    """Say what the first run trains, where it is cached and about how long it takes; True when
    the model is cached already (nothing to train)."""
    from pyann.recipes import trained_model_path
    path = trained_model_path("mlp5", args.dataset, args.seed, args.epochs, activity_l1=strength,
                              train_images=args.train_images)
    if path.exists():
        print(f"{label}: using the cached model {path}", flush=True)
        return True
    recipe = "the project recipe" + (f" + activity L1 {strength:g}" if strength else "")
    images = f"the first {args.train_images} training images of {args.dataset}" if args.train_images else args.dataset
    print(f"{label}: not cached yet: training mlp5 ({recipe}) on {images} for {args.epochs} epochs, seed "
          f"{args.seed}, once (about {4 * args.epochs} s on 2 idle cores; the time left is printed after each "
          f"epoch); cached as {path}", flush=True)
    return False


class _EpochLog(Callback):
    """One line per training epoch: test accuracy, seconds, and the time left at that pace."""

    def __init__(self, label, epochs):
        self.label, self.epochs, self.t0 = label, epochs, None

    def on_train_begin(self, model, history):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, model, logs):
        spent = time.perf_counter() - self.t0
        left = spent / epoch * (self.epochs - epoch)
        acc = logs.get("val_acc")
        print(f"  {self.label}: epoch {epoch}/{self.epochs}" + (f", test acc {100 * acc:.2f}%" if acc is not None
                                                                  else "")
              + f", {logs['seconds']:.1f} s" + (f"; about {left:.0f} s left" if epoch < self.epochs else ""),
              flush=True)


def _plan_row(plan, x, y, model_name, name, mode_label):
    """(row with accuracy and MAC share, the call to time) for one compiled plan."""
    logits = plan.run_prepared(x)
    acc = float(np.mean(np.argmax(logits, 1) == y))
    share = (plan.last_macs + plan.last_predictor_macs) / plan.dense_macs(len(x))
    row = {"model": model_name, "row": name, "mode": mode_label, "kernel": plan.kernel, "accuracy": acc,
           "mac_share": share, "predictor_mac_share": plan.last_predictor_macs / plan.dense_macs(len(x)),
           "plan": plan.describe()}
    return row, lambda: plan.run_prepared(x)


def _sweeps(model, history, lowrank, x, y, args) -> dict:
    """The tau / margin sweeps on the test set: curves and reference points for the figure."""
    hist_masked = sw.sweep_history(model, history, x, y, kernel="masked")
    hist_comb = sw.sweep_history(model, history, x, y, kernel="combined")
    low = sw.sweep_lowrank(model, lowrank, x, y, kernel="combined")
    refs = sw.reference_points(model, x, y)
    print(f"\nsweeps (test set; precision / recall of 'inactive', pooled over layers {','.join(map(str, history.layers))}):")
    for name, pts, knob in (("history", hist_comb, "tau"), ("low-rank", low, "margin")):
        for p in pts:
            print(f"  {name:8s} {knob}={p[knob]:<5g} acc {100 * p['accuracy']:.2f}%  MACs {100 * p['mac_share']:.1f}%  "
                  f"precision {p['precision_inactive']:.3f}  recall {p['recall_inactive']:.3f}")
    return {"history_masked": hist_masked, "history_combined": hist_comb, "lowrank_combined": low,
            "references": refs,
            # the names the study's figure uses for the same series (sweep.series_name)
            "curves": {sw.series_name(history, "masked"): hist_masked,
                       sw.series_name(history, "combined"): hist_comb,
                       sw.series_name(lowrank, "combined"): low},
            "points": sw.named_points(refs)}


def _onnxruntime_row(model, x, y, mode, label):
    """(row, the call to time) for ONNX Runtime's CPU engine on the same weights, exported with
    pyann.interop.export_onnx; (row saying so, None) without onnxruntime (or onnx)."""
    row = {"row": "ONNX Runtime CPU dense", "mode": label}
    try:
        import onnxruntime as ort
        import onnx  # noqa: F401  (export_onnx needs it)
    except ImportError as exc:
        row["note"] = "not installed"
        row["row"] = f"ONNX Runtime CPU dense (not installed: {exc.name or 'onnxruntime'})"
        return row, None
    import tempfile
    from pyann.interop import export_onnx
    with tempfile.TemporaryDirectory(prefix="pyann-bench-onnx-") as tmp:
        path = export_onnx(model, Path(tmp) / "mlp5.onnx", (x.shape[1],))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, kernels.num_threads())   # the cores the C kernels use
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def batched():
        return sess.run(["output"], {"input": x})[0]

    width = int(sess.run(["output"], {"input": x[:1]})[0].shape[1])

    def one():
        out = np.empty((len(x), width), np.float32)
        for i in range(len(x)):
            out[i] = sess.run(["output"], {"input": x[i:i + 1]})[0][0]
        return out

    fn = batched if mode == "batched" else one
    acc = float((fn().argmax(1) == y).mean())
    row.update({"kernel": "onnxruntime", "accuracy": acc, "mac_share": 1.0, "onnxruntime": ort.__version__,
                "threads": opts.intra_op_num_threads})
    return row, fn


def _torch_row(model, x, y, mode, label):
    """(row, the call to time) for PyTorch CPU on the same weights; (row saying so, None) without torch."""
    row = {"row": "PyTorch CPU dense", "mode": label}
    try:
        import torch
    except ImportError:
        row["note"] = "not installed"
        row["row"] = "PyTorch CPU dense (not installed)"
        return row, None
    torch.set_num_threads(max(1, kernels.num_threads()))
    plan = infer.compile(model, "numpy")
    lin = [torch.nn.Linear(l.w.shape[0], l.w.shape[1]) for l in plan.layers]
    mods = []
    with torch.no_grad():
        for l, t in zip(plan.layers, lin):
            t.weight.copy_(torch.from_numpy(l.w.T.copy()))
            t.bias.copy_(torch.from_numpy(l.b))
            mods.append(t)
            if l.relu:
                mods.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*mods).eval()
    xt = torch.from_numpy(x)

    def batched():
        with torch.inference_mode():
            return net(xt)

    def one():
        with torch.inference_mode():
            out = torch.empty((len(x), plan.out_features))
            for i in range(len(x)):
                out[i] = net(xt[i:i + 1])[0]
            return out

    fn = batched if mode == "batched" else one
    acc = float((fn().argmax(1).numpy() == y).mean())
    row.update({"kernel": "torch", "accuracy": acc, "mac_share": 1.0, "torch": torch.__version__})
    return row, fn
