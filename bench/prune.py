"""`python -m bench prune`: pruned models on MNIST test images, sparse kernels against the best
dense code, in one run, rows timed round-robin; and a density sweep on single layers.

Models (the trained-model cache; trained on first use), magnitude-pruned and retrained with their
masks held by the pruning study's procedure, --retrain-epochs (MLPs, default 8) and
--cnn3-retrain-epochs (default 2) epochs, the retrained models kept in the cache (0: not retrained,
the accuracy column says what that costs; `pyann prune-study` is the full study):
- fcn2 (784-300-100-10) and mlp5 (784-512x4-10): every Linear keeps --density of its weights,
  element by element and in 4x1 blocks (4 outputs sharing an input; a layer whose outputs do not
  divide by 4 is pruned element by element). Rows, batched: NumPy/OpenBLAS dense, pyann dense,
  pyann sparse, pyann 4x1 blocked (on the block-pruned model), pyann with each layer's kernel
  measured at compile time (on training images: dense, sparse, blocked, zero-skipping or sparse x
  sparse), pyann exact zero-skipping on the pruned weights (stored dense: the kernel skips the
  zero inputs - the image's blank pixels, the ReLUs' zeros - not the pruned weights), pyann
  sparse + zero-skipping (the sparse x sparse kernel on every layer: pruned weights and zero
  inputs both skipped), scipy.sparse CSR, PyTorch dense / sparse CSR and ONNX Runtime (CPU) as
  peers when installed; one image at a time (the loop in C): pyann dense, pyann sparse, pyann with
  each layer's kernel measured, pyann zero-skipping, pyann sparse + zero-skipping.
- cnn3 (the pruning study's dense model, pyann.pruning.study.dense_model): each layer pruned to
  its own density, the paper's CNN-3 allocation 0.285 / 0.154 / 0.112 by default
  (--cnn3-densities). Rows, batched and one image at a time (a Python loop over the images, each
  through the plan's C kernels): NumPy/OpenBLAS dense im2col, pyann sparse (kernel measured per
  layer), pyann sparse on every layer, pyann 4x1 blocked (block-pruned model); batched, PyTorch dense
  conv as a peer when installed.
Columns: accuracy, seconds, images/s, weight density, multiply-adds executed (share of the dense
model's), speedup against the NumPy dense row of the same model and mode, model file bytes (the
dense file for dense rows, nn.save(compact=True) for sparse ones).

The density sweep (--sweep runs it alone, --no-sweep skips it): random layers 784x300 and
512x512 (He-normal weights, bias and ReLU), magnitude-pruned by pyann.pruning to 1..60 % of their
weights, unstructured and in 4x1 blocks, on random inputs, batched and one image at a time; per
layer shape and mode every row is timed round-robin: NumPy/OpenBLAS dense, pyann dense (batched:
the packed kernel, kernels.pack_dense once per layer outside the timing, as plans pack at compile), pyann
sparse, pyann 4x1 blocked (batched: x in rows, y left in tiles, kernels.sparse_tiled_gather, as a plan's
first sparse layer) and scipy.sparse CSR (batched, when installed); 10,000 samples batched
(--sweep-n, default --n), the first 500 of them one at a time (--sweep-n-one). The break-even
density is where sparse is as fast as OpenBLAS dense (interpolated); a table, a PNG and the JSON.
"""
from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import numpy as np

from pyann import infer, kernels, pruning
from pyann.argtypes import fraction, non_negative_int, positive_int

from pyann.infer.choice import SPARSE_CALIBRATION

from .common import format_table, machine_info, machine_line, save_results, time_round_robin

MODELS = ("fcn2", "mlp5", "cnn3")
MLP_MODELS = ("fcn2", "mlp5")
SWEEP_SHAPES = ((784, 300), (512, 512))
SWEEP_DENSITIES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6)
SWEEP_MODES = ("batched", "one image at a time")
# a tiny run: explicit flags win (bench.__main__ applies these where an option is at its default)
QUICK = {"n": 300, "repeats": 1, "train_images": 3000, "epochs": 1, "models": ["fcn2"], "sweep_n": 512,
         "retrain_epochs": 0, "cnn3_retrain_epochs": 0,
         "sweep_n_one": 128, "sweep_repeats": 1}


def _model_name(text: str) -> str:
    if text not in MODELS:
        raise argparse.ArgumentTypeError(f"unknown model {text!r}; choose from {', '.join(MODELS)}")
    return text


def _cnn3_layers() -> list:
    """The names of cnn3's prunable layers, in order ("0", "3", "7")."""
    from pyann import nn
    return list(pruning.prunable_layers(nn.build("cnn3", rng=0)))


def cnn3_densities(text: str) -> list:
    """"0.285,0.154,0.112": one density in (0, 1] per cnn3 layer (conv1, conv2, linear)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError(f"expected 3 comma-separated densities (conv1, conv2, linear), got {text!r}")
    out = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{p!r} is not a number (in {text!r})") from None
        if not (math.isfinite(v) and 0 < v <= 1):
            raise argparse.ArgumentTypeError(f"a density must lie in (0, 1], got {p!r} (in {text!r})")
        out.append(v)
    return out


def _densities(text: str) -> list:
    """Sweep densities: comma-separated, each in (0, 1), ascending after sorting, no repeats."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated densities such as 0.01,0.1,0.5, got {text!r}") from None
    if not values or not all(math.isfinite(v) and 0 < v < 1 for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"densities must be distinct numbers in (0, 1), got {text!r}")
    return sorted(values)


def _paper_cnn3() -> str:
    from pyann.pruning.study import PAPER
    return ",".join(f"{v:g}" for v in PAPER["cnn3"]["ratios"].values())


def add_arguments(parser):
    from pyann.argtypes import comma_list
    from pyann.cli.common import add_data_arguments
    parser.add_argument("--models", type=comma_list(_model_name), default=",".join(MODELS),
                        help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--density", type=fraction, default=0.1,
                        help="share of each layer's weights kept (fcn2, mlp5)")
    parser.add_argument("--cnn3-densities", type=cnn3_densities, default=_paper_cnn3(),
                        help="cnn3's densities per layer (conv1, conv2, linear); the default is the paper's "
                             "CNN-3 allocation")
    parser.add_argument("--retrain-epochs", type=non_negative_int, default=8,
                        help="retrain each pruned MLP this many epochs with its masks held (the pruning "
                             "study's procedure: SGD, Nesterov, cosine lr, every training image; kept in the "
                             "trained-model cache, so a second run loads them); 0: not retrained, the accuracy "
                             "column says what that costs")
    parser.add_argument("--cnn3-retrain-epochs", type=non_negative_int, default=2,
                        help="the same for cnn3 (on its first 20,000 training images; ~45 s an epoch on 2 cores)")
    parser.add_argument("--n", type=positive_int, default=10000, help="test images")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed rounds (round-robin)")
    parser.add_argument("--epochs", type=positive_int, default=20, help="training epochs of the cached dense MLPs")
    parser.add_argument("--train-images", type=positive_int, default=None,
                        help="train the MLPs on the first N training images only (cached apart)")
    sweep = parser.add_mutually_exclusive_group()
    sweep.add_argument("--sweep", action="store_true", help="run the density sweep only (no models)")
    sweep.add_argument("--no-sweep", action="store_true", help="skip the density sweep")
    parser.add_argument("--sweep-n", type=positive_int, default=None,
                        help="random samples of the sweep (default: --n, 10,000)")
    parser.add_argument("--sweep-n-one", type=positive_int, default=500,
                        help="of those, the samples run one at a time (a per-image time; the sparse loop over "
                             "the sweep's 16 pruned layers one image at a time is its longest part)")
    parser.add_argument("--sweep-repeats", type=positive_int, default=None,
                        help="timed rounds of the sweep (default: --repeats, at most 3)")
    parser.add_argument("--cnn3-repeats", type=positive_int, default=None,
                        help="timed rounds of the cnn3 rows (default: --repeats, at most 3: a pass over "
                             "10,000 images takes seconds)")
    parser.add_argument("--sweep-densities", type=_densities, default=",".join(f"{d:g}" for d in SWEEP_DENSITIES),
                        help="weight densities of the sweep")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny run: " + ", ".join(
                            f"--{k.replace('_', '-')} {','.join(v) if isinstance(v, list) else v}"
                            for k, v in QUICK.items()))
    parser.add_argument("--out", default="bench-results", metavar="DIR", help="folder for prune.json and the figure")
    add_data_arguments(parser)


def _pruned(model, density: float, block: bool):
    """A magnitude-pruned copy: every Linear keeps `density` of its weights (by 4x1 blocks where
    the outputs divide by 4 when block), its masks kept (they are what the compact file stores)."""
    model = pruning.clone(model)
    for name, layer in pruning.prunable_layers(model).items():
        blocked = block and layer.weight.data.shape[1] % kernels.SPARSE_BLOCK == 0
        pruning.prune(model, [name], fraction=1.0 - density, block=(kernels.SPARSE_BLOCK, 1) if blocked else None)
    return model.eval()


def retrain(models, name: str, data, epochs: int, log=print, cache: bool = True) -> str:
    """Retrain the pruned models in place, `epochs` epochs each, masks held (pyann.optim keeps the
    pruned weights at 0), by the pruning study's procedure and configuration (pruning.study:
    SGD with Nesterov momentum, weight decay, cosine lr; cnn3 on its first 20,000 training
    images, an MLP with fcn2's settings on all of them). Returns the phrase for the headings.
    cache: each retrained model is kept in the trained-model cache (models/bench-prune-*.npz,
    compact), keyed by the pruned model's fingerprint, the epochs and the configuration, so a
    second run loads it instead of retraining."""
    if not epochs:
        return "not retrained"
    from pyann import nn
    from pyann.data import cache_dir, to_float
    from pyann.nn.module import fingerprint
    from pyann.pruning import study
    cfg = study.config_for("cnn3" if name == "cnn3" else "fcn2")
    limit = len(data.x_train) if cfg.train_limit is None else min(cfg.train_limit, len(data.x_train))
    xy = None
    for m in models:
        fp = fingerprint(m)
        key = {"bench": "prune-retrain/1", "model": name, "pruned": fp, "epochs": epochs, "config": repr(cfg)}
        path = Path(cache_dir()) / "models" / f"bench-prune-{name}-{fp[:16]}-r{epochs}.npz"
        if cache and path.exists():
            try:
                if nn.serialization.read_metadata(path).get("key") == key:
                    nn.load_into(m, path)
                    m.eval()
                    log(f"  retrained {epochs} epoch(s), masks held: from the cache ({path})", flush=True)
                    continue
            except ValueError:
                pass   # a corrupt or foreign file: retrain and overwrite it
        if xy is None:
            x = to_float(data.x_train[:limit], study.CNN3_MEAN, study.CNN3_STD) if name == "cnn3" \
                else to_float(data.x_train[:limit]).reshape(limit, -1)
            xy = (x, np.asarray(data.y_train[:limit]))
        t0 = time.perf_counter()
        study._retrain(m, xy, epochs, cfg, 0)
        m.eval()
        log(f"  retrained {epochs} epoch(s) on {limit:,} training images, masks held: {time.perf_counter() - t0:.0f} s",
            flush=True)
        if cache:
            nn.save(m, path, metadata={"key": key}, compact=True)
    return f"retrained {epochs} epoch{'s' if epochs > 1 else ''} with the masks held"


def weight_density(model) -> float:
    """Nonzero weights over weights, every prunable layer together."""
    ws = [l.weight.data for l in pruning.prunable_layers(model).values()]
    return sum(int(np.count_nonzero(w)) for w in ws) / max(sum(w.size for w in ws), 1)


def _nnz(model) -> int:
    return sum(int(np.count_nonzero(l.weight.data)) for l in pruning.prunable_layers(model).values())


def _peers(model, x):
    """Peer rows (name, mode, fn) for what is installed; names of the missing ones."""
    linears = [(l.weight.data, l.bias.data) for l in model.layers if hasattr(l, "weight")]
    rows, missing = [], []
    try:
        import scipy.sparse as sp
        mats = [(sp.csr_matrix(w.T), b) for w, b in linears]   # y^T = W^T x^T: CSR by output neuron

        def scipy_run():
            h = x.T
            for i, (m, b) in enumerate(mats):
                h = m @ h + b[:, None]
                if i < len(mats) - 1:
                    h = np.maximum(h, 0)
            return h.T
        rows.append(("scipy.sparse CSR", "batched", scipy_run))
    except ImportError:
        missing.append("scipy")
    try:
        import torch
        xt = torch.from_numpy(x)
        dense = [(torch.from_numpy(np.ascontiguousarray(w.T)), torch.from_numpy(b)) for w, b in linears]
        with warnings.catch_warnings():   # "sparse CSR support is in beta": said once here, not per run
            warnings.simplefilter("ignore", UserWarning)
            csr = [(w.to_sparse_csr(), b) for w, b in dense]

        def torch_run(layers, sparse):
            def run():
                with torch.no_grad():
                    h = xt.T.contiguous() if sparse else xt
                    for i, (w, b) in enumerate(layers):
                        h = (w @ h + b[:, None]) if sparse else torch.addmm(b, h, w.T)
                        if i < len(layers) - 1:
                            h = torch.relu(h)
                    return h.T if sparse else h
            return run
        rows += [(f"PyTorch {torch.__version__} dense", "batched", torch_run(dense, False)),
                 (f"PyTorch {torch.__version__} sparse CSR", "batched", torch_run(csr, True))]
    except ImportError:
        missing.append("torch")
    try:   # ONNX Runtime's CPU engine on the same (pruned, dense-stored) weights, via pyann.interop
        import tempfile
        from pathlib import Path
        import onnxruntime as ort
        from pyann.interop import export_onnx
        with tempfile.TemporaryDirectory(prefix="pyann-bench-onnx-") as tmp:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = max(1, kernels.num_threads()), 1
            sess = ort.InferenceSession(str(export_onnx(model, Path(tmp) / "m.onnx", (x.shape[1],))), opts,
                                        providers=["CPUExecutionProvider"])
        rows.append((f"ONNX Runtime {ort.__version__} dense", "batched",
                     lambda: sess.run(["output"], {"input": x})[0]))
    except ImportError:
        missing.append("onnxruntime")
    return rows, missing


# ---- the density sweep ---------------------------------------------------------------------------

STRUCTURES = ("unstructured", "4x1 blocks")


def _pct(d: float) -> str:
    return f"{100 * d:g} %"


def break_even(densities, speedups) -> dict:
    """Where a speedup curve comes down to 1 (sparse as fast as the reference) for the last time:
    between the last measured density whose speedup is at least 1 and the next one (every denser
    point is slower), interpolated linearly in log density and log speedup. The last crossing,
    not the first: the sparsest points take the least time and are the noisiest, and a dip there
    says less than the trend above it. Returns {"density": the density (None outside the
    measured range), "text": "23.4 %", "below 1 %" (slower at every point) or "above 60 %"
    (faster at the densest point), "crossings": how often the curve crosses 1 downwards (more
    than one: a noisy curve)}."""
    pts = sorted(zip((float(d) for d in densities), (float(s) for s in speedups)))
    if not pts:
        raise ValueError("break_even needs at least one point")
    if any(d <= 0 or s <= 0 or not (math.isfinite(d) and math.isfinite(s)) for d, s in pts):
        raise ValueError("densities and speedups must be positive and finite")
    crossings = [(a, b) for a, b in zip(pts, pts[1:]) if a[1] >= 1 > b[1]]
    if pts[-1][1] >= 1:
        return {"density": None, "text": f"above {_pct(pts[-1][0])}", "crossings": len(crossings)}
    if not crossings:
        return {"density": None, "text": f"below {_pct(pts[0][0])}", "crossings": 0}
    (d0, s0), (d1, s1) = crossings[-1]
    t = math.log(s0) / (math.log(s0) - math.log(s1))
    d = math.exp(math.log(d0) + t * (math.log(d1) - math.log(d0)))
    return {"density": d, "text": f"{100 * d:.3g} %", "crossings": len(crossings)}


def sweep_layer(d_in: int, d_out: int, density: float | None, structure: str, seed: int = 0):
    """A random layer (nn.Linear's He-normal weights, the same for every density of a shape)
    magnitude-pruned by pyann.pruning to `density` (None: dense), element by element or in 4x1
    blocks: w (d_in, d_out) float32."""
    from pyann import nn
    m = nn.Sequential(nn.Linear(d_in, d_out, rng=seed))
    if density is not None:
        pruning.prune_to_density(m, density, block=(kernels.SPARSE_BLOCK, 1) if structure != "unstructured" else None)
    return np.ascontiguousarray(m.layers[0].weight.data, np.float32)


def _relu_layer(x, w, b):
    y = x @ w
    y += b
    return np.maximum(y, 0, out=y)


def _sweep_entries(x, w, b, pruned, mode, sp):
    """[(entry without timings, function, its output as rows (n, out) from the function's result,
    the weights it computes)] for one layer shape in one mode."""
    n, d_in = x.shape
    entries = []

    def add(row, structure, density, macs, fn, rows, weights):
        entries.append(({"row": row, "structure": structure, "density": density, "macs_per_sample": int(macs)},
                        fn, rows, weights))
    same = lambda y: y
    if mode == "batched":
        # the sparse rows take x in rows and leave y in tiles, as a plan's first sparse layer does
        # (kernels.sparse_tiled_gather: each tile gathered as it is used); y back to rows untimed
        from_tiles = lambda yt: kernels.from_tiles(yt, n)
        add("NumPy/OpenBLAS dense", "dense", 1.0, w.size, lambda: _relu_layer(x, w, b), same, w)
        pw = kernels.pack_dense(w)   # packed once, outside the timed region, as a plan does at compile
        add("pyann dense", "dense", 1.0, w.size, lambda: kernels.dense(x, pw, b, relu=True), same, w)
        add("tile conversion (in and out)", "-", None, 0,
            lambda: kernels.from_tiles(kernels.to_tiles(x), n), None, None)
        xT = np.ascontiguousarray(x.T) if sp is not None else None
        for (d, structure), wd in pruned.items():
            if structure == "unstructured":
                sw = kernels.pack_sparse(wd)
                add("pyann sparse", structure, d, sw.nnz, lambda sw=sw: kernels.sparse_tiled_gather(x, sw, b, True),
                    from_tiles, wd)
                if sp is not None:   # y^T = W^T x^T: CSR by output neuron, the inputs by samples
                    csr = sp.csr_matrix(wd.T)
                    add("scipy.sparse CSR", structure, d, csr.nnz,
                        lambda csr=csr: np.maximum(csr @ xT + b[:, None], 0), lambda y: np.ascontiguousarray(y.T), wd)
            else:
                bw = kernels.pack_blocked(wd)
                add("pyann 4x1 blocked", structure, d, bw.nnz,
                    lambda bw=bw: kernels.sparse_tiled_gather(x, bw, b, True), from_tiles, wd)
        return entries

    def numpy_one():
        out = np.empty((n, w.shape[1]), np.float32)
        for i in range(n):
            h = x[i] @ w
            h += b
            np.maximum(h, 0, out=out[i])
        return out
    add("NumPy/OpenBLAS dense", "dense", 1.0, w.size, numpy_one, same, w)
    add("pyann dense", "dense", 1.0, w.size, lambda: kernels.dense_per_sample(x, w, b, relu=True), same, w)
    for (d, structure), wd in pruned.items():   # no blocked kernel one image at a time: the unstructured one
        sw = kernels.pack_sparse(wd)
        add("pyann sparse", structure, d, sw.nnz, lambda sw=sw: kernels.sparse_linear_per_sample(x, sw, b, True),
            same, wd)
    return entries


def run_sweep(shapes=SWEEP_SHAPES, densities=SWEEP_DENSITIES, n: int = 10000, repeats: int = 3, seed: int = 0,
              log=print, n_one: int | None = None) -> dict:
    """Time every row of the sweep (see the module docstring): per layer shape and mode, the rows
    round-robin, each row's output checked against NumPy on its weights first (that call is the
    warm-up). n samples batched; n_one (default n) of them one at a time: a per-image time needs
    fewer images, and the one-image sparse loop over 16 pruned layers is the sweep's longest part. Returns {"points": one dict per row, "break_even": per shape, mode and sparse
    series, against "NumPy/OpenBLAS dense" and "pyann dense", and the workload}."""
    try:
        import scipy
        import scipy.sparse as sp
    except ImportError:
        scipy = sp = None
    rng = np.random.default_rng(seed)
    points, breaks = [], []
    for d_in, d_out in shapes:
        shape = f"{d_in}x{d_out}"
        w = sweep_layer(d_in, d_out, None, "unstructured", seed)
        b = (0.1 * rng.standard_normal(d_out)).astype(np.float32)
        pruned = {(d, s): sweep_layer(d_in, d_out, d, s, seed) for s in STRUCTURES for d in densities}
        x_all = rng.standard_normal((n, d_in), dtype=np.float32)
        for mode in SWEEP_MODES:
            t0 = time.perf_counter()
            x = x_all if mode == "batched" else np.ascontiguousarray(x_all[:n_one or n])
            entries = _sweep_entries(x, w, b, pruned, mode, sp)
            refs = {}
            for row, fn, as_rows, wd in entries:   # every row computes its layer (and is warmed up)
                out = fn()
                if as_rows is None:
                    continue
                key = id(wd)
                if key not in refs:
                    refs[key] = _relu_layer(x, wd, b)
                np.testing.assert_allclose(as_rows(np.asarray(out)), refs[key], rtol=1e-3, atol=1e-3,
                                           err_msg=f"sweep {shape} {mode}: {row['row']} at {row['density']}")
            timings = time_round_robin([fn for _, fn, _, _ in entries], repeats=repeats, warmup=0)
            group = []
            for (row, *_), t in zip(entries, timings):
                row.update({"shape": shape, "mode": mode, "n": len(x), "seconds": t["median"],
                            "images_per_s": len(x) / t["median"], "timings": t})
                group.append(row)
            base = {r["row"]: r["seconds"] for r in group if r["structure"] == "dense"}
            for r in group:
                r["speedup_vs_numpy"] = base["NumPy/OpenBLAS dense"] / r["seconds"]
                r["speedup_vs_pyann_dense"] = base["pyann dense"] / r["seconds"]
            points += group
            for (row, structure) in dict.fromkeys((r["row"], r["structure"]) for r in group
                                                  if r["structure"] in STRUCTURES):
                series = sorted((r for r in group if r["row"] == row and r["structure"] == structure),
                                key=lambda r: r["density"])
                entry = {"shape": shape, "mode": mode, "row": row, "structure": structure}
                for vs, key in (("NumPy/OpenBLAS dense", "speedup_vs_numpy"), ("pyann dense", "speedup_vs_pyann_dense")):
                    entry["vs " + vs] = break_even([r["density"] for r in series], [r[key] for r in series])
                breaks.append(entry)
            log(f"  sweep {shape}, {mode}: {len(entries)} rows, {repeats} round(s), {time.perf_counter() - t0:.1f} s",
                flush=True)
    return {"shapes": [f"{i}x{o}" for i, o in shapes], "densities": list(densities), "n": n,
            "n_one_at_a_time": min(n_one or n, n), "repeats": repeats,
            "seed": seed, "scipy": None if sp is None else scipy.__version__,
            "points": points, "break_even": breaks}


def _series_label(row: str, structure: str) -> str:
    return f"{row}, {'4x1-pruned weights' if structure != 'unstructured' else 'unstructured'}"


def _speedup_text(v: float) -> str:
    """At most 4 characters below 1000x: 0.05, 1.34, 12.1, 221."""
    return f"{v:.0f}" if v >= 99.5 else f"{v:.1f}" if v >= 9.995 else f"{v:.2f}"


def sweep_table(sweep: dict, max_width: int = 120) -> str:
    """Speedup against OpenBLAS dense per density, one line per shape, mode and sparse series,
    with the break-even density; above it, each group's dense seconds."""
    dens = sweep["densities"]
    lines, rows = [], []
    for shape in sweep["shapes"]:
        for mode in SWEEP_MODES:
            group = [p for p in sweep["points"] if p["shape"] == shape and p["mode"] == mode]
            if not group:
                continue
            by = {p["row"]: p for p in group if p["structure"] in ("dense", "-")}
            conv = by.get("tile conversion (in and out)")
            lines.append(f"{shape}, {mode}: NumPy/OpenBLAS dense {by['NumPy/OpenBLAS dense']['seconds']:.4f} s, "
                         f"pyann dense {by['pyann dense']['seconds']:.4f} s "
                         f"({by['pyann dense']['speedup_vs_numpy']:.2f}x)"
                         + (f"; to_tiles + from_tiles {conv['seconds']:.4f} s (the sparse rows gather tiles "
                            f"from rows, leave y in tiles)" if conv else ""))
            for be in (b for b in sweep["break_even"] if b["shape"] == shape and b["mode"] == mode):
                row = {"group": f"{shape} {'batched' if mode == 'batched' else 'one image'}",
                       "kernel": be["row"].replace("scipy.sparse CSR", "scipy CSR"),
                       "blocks": "4x1" if be["structure"] != "unstructured" else "1x1",
                       "be": be["vs NumPy/OpenBLAS dense"]["text"],
                       "be_pyann": be["vs pyann dense"]["text"] if be["row"].startswith("pyann") else "-"}
                for p in group:
                    if p["row"] == be["row"] and p["structure"] == be["structure"]:
                        row[f"d{dens.index(p['density'])}"] = p["speedup_vs_numpy"]
                rows.append(row)
    cols = ([("group", "layer, mode", "s"), ("kernel", "kernel", "s"), ("blocks", "pruned in", "s")]
            + [(f"d{i}", f"{100 * d:g}%", _speedup_text) for i, d in enumerate(dens)]
            + [("be", "break-even vs OpenBLAS", "s"), ("be_pyann", "vs pyann dense", "s")])
    head = (f"density sweep: speedup against NumPy/OpenBLAS dense (same layer, same mode) at each weight density; "
            f"{sweep['n']} random samples batched, {sweep['n_one_at_a_time']} one at a time, median of "
            f"{sweep['repeats']} rounds, rows timed round-robin; batched sparse "
            f"rows on the tiled layout (conversion apart); pruned in 1x1 (unstructured) or 4x1 blocks; one image at a "
            f"time there is no blocked kernel: pyann sparse runs the 4x1-pruned weights")
    return "\n".join([head] + lines + [format_table(rows, cols, max_width=max_width)])


def sweep_figure(sweep: dict, path) -> str:
    """The sweep's PNG (pyann.plots.plot_sparse_speedup): one panel per layer shape and mode."""
    from pyann import plots
    panels = []
    for shape in sweep["shapes"]:
        for mode in SWEEP_MODES:
            group = [p for p in sweep["points"] if p["shape"] == shape and p["mode"] == mode]
            if not group:
                continue
            series = []
            for be in (b for b in sweep["break_even"] if b["shape"] == shape and b["mode"] == mode):
                pts = sorted((p for p in group if p["row"] == be["row"] and p["structure"] == be["structure"]),
                             key=lambda p: p["density"])
                series.append({"label": _series_label(be["row"], be["structure"]),
                               "densities": [p["density"] for p in pts], "speedups": [p["speedup_vs_numpy"] for p in pts],
                               "break_even": be["vs NumPy/OpenBLAS dense"]["density"],
                               "break_even_text": be["vs NumPy/OpenBLAS dense"]["text"]})
            dense = next(p for p in group if p["row"] == "pyann dense")
            panels.append({"title": f"{shape} layer, {mode}", "series": series,
                           "references": {"pyann dense": dense["speedup_vs_numpy"]}})
    fig = plots.plot_sparse_speedup(
        panels, reference="NumPy/OpenBLAS dense",
        title=f"Sparse layer speedup against OpenBLAS dense ({sweep['n']:,} random samples batched, "
              f"{sweep['n_one_at_a_time']:,} one at a time); break-even marked")
    return str(plots.save_figure(fig, path))


# ---- the models ------------------------------------------------------------------------------------

_FILE_BYTES = {}   # id(model) -> (dense, compact): each model's files written to memory once, not per row


def _file_bytes(model, label: str) -> int:
    """The bytes of the model file the row's engine would load: the dense file for dense rows,
    the compact one (nn.save(compact=True): values plus 16-bit indices) for sparse rows."""
    key = id(model)
    if key not in _FILE_BYTES or _FILE_BYTES[key][0] is not model:
        _FILE_BYTES[key] = (model, pruning.report.file_bytes(model))
    dense, compact = _FILE_BYTES[key][1]
    return compact if any(k in label for k in ("sparse", "blocked", "measured")) else dense


def _timed_rows(cases, x, y, repeats, name, check_n=None):
    """cases: [(row dict, fn, model it computes)]. Each fn runs once (its output checked against
    the model's forward on the first check_n images, and scored: that call is the warm-up), then
    all are timed round-robin. Returns the rows with accuracy, seconds, images/s, timings."""
    refs = {}   # the model's own outputs, once per model
    for row, fn, m in cases:
        out = np.asarray(fn())
        k = len(out) if check_n is None else min(check_n, len(out))
        if (id(m), k) not in refs:
            refs[(id(m), k)] = m.forward(x[:k])
        np.testing.assert_allclose(out[:k], refs[(id(m), k)], rtol=1e-3, atol=1e-3,
                                   err_msg=f"{name}: {row['row']} ({row['mode']})")
        row["accuracy"] = float(np.mean(np.argmax(out, axis=1) == y))
    timings = time_round_robin([fn for _, fn, _ in cases], repeats=repeats, warmup=0)
    for (row, _, _), t in zip(cases, timings):
        row.update({"seconds": t["median"], "images_per_s": len(x) / t["median"], "timings": t})
    return [row for row, _, _ in cases]


def _timed_rows_by_mode(cases, x, y, repeats, name, check_n=None):
    """_timed_rows for the batched cases, then for the one-image ones: round-robin within a mode
    (their times differ 10x)."""
    rows = []
    for mode in ("batched", "one image at a time"):
        rows += _timed_rows([c for c in cases if c[0]["mode"] == mode], x, y, repeats, name, check_n)
    return rows


def _finish_rows(rows, dense_macs_per_image: int, n: int):
    """Speedup against the first row of each mode (NumPy dense), MAC share."""
    base = {}
    for r in rows:
        base.setdefault(r["mode"], r["seconds"])
        r["speedup"] = base[r["mode"]] / r["seconds"]
        r["mac_share"] = r["macs"] / (dense_macs_per_image * n) if r.get("macs") is not None else None
    return rows


def _plan_case(label, mode, model, plan, x, blocked_model, name, kind):
    row = {"model": name, "row": label, "mode": mode, "weights": "4x1 blocks" if model is blocked_model else "elementwise",
           "weight_density": weight_density(model), "model_bytes": _file_bytes(model, label),
           "plan": plan.describe() if hasattr(plan, "describe") else None, "kind": kind}

    def fn():
        out = plan.run(x)
        row["macs"] = int(plan.last_macs)
        return out
    return row, fn, model


def _measured(model, calibration, mode="batched"):
    """plan "sparse" with each layer's kernel measured at compile time, on training images where
    pyann.infer takes them (the zero-skipping kernels' speed depends on the input's zeros)."""
    return infer.compile(model, "sparse", mode=mode, calibration=calibration)


def bench_mlp(name, args, x, y, log=print, calibration=None, data=None):
    """Every row of one pruned MLP (fcn2 or mlp5); (rows, notes, info)."""
    from pyann.recipes import trained_model
    log(f"{name}: the trained dense model (cache), pruned to {100 * args.density:g} % of each layer's "
        f"weights, " + (f"retrained {args.retrain_epochs} epoch(s)" if args.retrain_epochs else "not retrained"),
        flush=True)
    dense_model, _ = trained_model(name, "mnist", epochs=args.epochs, root=args.data_root,
                                   train_images=args.train_images)
    model, blocked = _pruned(dense_model, args.density, False), _pruned(dense_model, args.density, True)
    retrained = retrain([model, blocked], name, data, args.retrain_epochs, log)
    n_layers = len(pruning.prunable_layers(model))
    blocked_kernels = ["blocked" if l.weight.data.shape[1] % kernels.SPARSE_BLOCK == 0 else "sparse"
                       for l in pruning.prunable_layers(blocked).values()]
    specs = [
        ("NumPy/OpenBLAS dense", "batched", model, infer.compile(model, "numpy"), "dense"),
        ("pyann dense", "batched", model, infer.compile(model, "dense"), "dense"),
        ("pyann sparse", "batched", model, infer.compile(model, "sparse", layer_kernels=["sparse"] * n_layers), "sparse"),
        ("pyann 4x1 blocked", "batched", blocked, infer.compile(blocked, "sparse", layer_kernels=blocked_kernels), "sparse"),
        ("pyann, kernel measured per layer", "batched", model, _measured(model, calibration), "sparse"),
        ("pyann zero-skipping (dense-stored weights)", "batched", model,
         infer.compile(model, "zeroskip"), "zeroskip"),
        ("NumPy/OpenBLAS dense", "one image at a time", model, infer.compile(model, "numpy", mode="one_at_a_time"), "dense"),
        ("pyann dense", "one image at a time", model, infer.compile(model, "dense", mode="one_at_a_time"), "dense"),
        ("pyann sparse", "one image at a time", model, infer.compile(
            model, "sparse", mode="one_at_a_time", layer_kernels=["sparse"] * n_layers), "sparse"),
        ("pyann, kernel measured per layer", "one image at a time", model,
         _measured(model, calibration, "one_at_a_time"), "sparse"),
        ("pyann zero-skipping (dense-stored weights)", "one image at a time", model,
         infer.compile(model, "zeroskip", mode="one_at_a_time"), "zeroskip"),
    ]
    specs += _sparse_zeroskip_specs(model)
    cases = [_plan_case(label, mode, m, plan, x, blocked, name, kind) for label, mode, m, plan, kind in specs]
    peers, missing = _peers(model, x)
    nnz, dense_per_image = _nnz(model), sum(l.weight.data.size for l in pruning.prunable_layers(model).values())
    for label, mode, fn in peers:
        row = {"model": name, "row": label, "mode": mode, "weights": "elementwise",
               "weight_density": weight_density(model), "model_bytes": _file_bytes(model, label),
               "macs": len(x) * (nnz if "sparse" in label else dense_per_image), "kind": "peer"}
        cases.append((row, fn, model))
    rows = _timed_rows_by_mode(cases, x, y, args.repeats, name)
    _finish_rows(rows, dense_per_image, len(x))
    dense_bytes, sparse_bytes = _file_bytes(model, "dense"), _file_bytes(model, "sparse")
    dense_acc = float(np.mean(dense_model.eval().forward(x).argmax(1) == y))
    log(f"  dense accuracy {100 * dense_acc:.2f} %; model file {dense_bytes:,} bytes dense, {sparse_bytes:,} compact "
        f"({sparse_bytes / dense_bytes:.3f})", flush=True)
    rows.append({"model": name, "row": "model file bytes", "mode": "-", "dense_bytes": dense_bytes,
                 "sparse_bytes": sparse_bytes})
    notes = [f"{m} not installed: its rows are missing" for m in missing]
    info = {"density": args.density, "dense_accuracy": dense_acc, "retrained": retrained,
            "weight_density": weight_density(model),
            "weight_density_blocked": weight_density(blocked)}
    return rows, notes, info


def _sparse_zeroskip_specs(model) -> list:
    """pyann sparse + zero-skipping: the sparse x sparse kernel ("sparse_zeroskip": pruned weights
    by input, the zero inputs skipped - the image's blank pixels on the first layer, the ReLUs'
    zeros after it) on every layer; batched and one image at a time."""
    n_layers = len(pruning.prunable_layers(model))
    forced = ["sparse_zeroskip"] * n_layers
    label = "pyann sparse + zero-skipping"
    return [(label, "batched", model, infer.compile(model, "sparse", layer_kernels=forced), "sparse"),
            (label, "one image at a time", model,
             infer.compile(model, "sparse", mode="one_at_a_time", layer_kernels=forced), "sparse")]


def cnn3_dense_model(args, data):
    """(cnn3, where it came from): the pruning study's dense cnn3 (pyann.pruning.study.dense_model,
    the trained-model cache: trained there on first use); --quick: the quick study's tiny model,
    trained once into DIR/prune-cnn3-quick."""
    from pyann.pruning import study
    cfg = study.config_for("cnn3", quick=bool(getattr(args, "quick", False)))
    store = study.Store(Path(args.out) / "prune-cnn3-quick") if cfg.name == "quick" else None
    return study.dense_model("cnn3", cfg, data, 0, store, root=args.data_root)


def _torch_cnn(model, x, chunk):
    """PyTorch's dense conv on the same weights, in chunks of `chunk` images like the plans;
    None without torch."""
    try:
        import torch
    except ImportError:
        return None
    from pyann import nn
    torch.set_num_threads(max(1, kernels.num_threads()))
    mods = []
    with torch.no_grad():
        for m in model.layers:
            if isinstance(m, nn.Conv2d):
                t = torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                    dilation=m.dilation, groups=m.groups, bias=m.bias is not None)
                t.weight.copy_(torch.from_numpy(np.ascontiguousarray(m.weight.data)))
            elif isinstance(m, nn.Linear):
                t = torch.nn.Linear(*m.weight.data.shape, bias=m.bias is not None)
                t.weight.copy_(torch.from_numpy(np.ascontiguousarray(m.weight.data.T)))
            elif isinstance(m, nn.ReLU):
                t = torch.nn.ReLU()
            elif isinstance(m, nn.MaxPool2d):
                t = torch.nn.MaxPool2d(m.kernel_size, m.stride, m.padding)
            elif isinstance(m, nn.Flatten):
                t = torch.nn.Flatten()
            else:
                return None
            if getattr(m, "bias", None) is not None and hasattr(t, "bias"):
                t.bias.copy_(torch.from_numpy(m.bias.data))
            mods.append(t)
    net = torch.nn.Sequential(*mods).eval()
    xt = torch.from_numpy(x)

    def run():
        with torch.inference_mode():
            return torch.cat([net(xt[i:i + chunk]) for i in range(0, len(xt), chunk)]).numpy()
    return f"PyTorch {torch.__version__} dense conv", run


def bench_cnn3(args, data, log=print):
    """cnn3's rows (batched): (rows, notes, info)."""
    from pyann import nn
    from pyann.data import to_float
    from pyann.infer.sequential import CHUNK
    from pyann.pruning.study import CNN3_MEAN, CNN3_STD
    dense, source = cnn3_dense_model(args, data)
    names = list(pruning.prunable_layers(dense))
    dens = dict(zip(names, args.cnn3_densities))
    log(f"cnn3: {source}; each layer pruned by magnitude to " + ", ".join(f"{_pct(d)} (layer {k})" for k, d in dens.items())
        + " of its weights, " + (f"retrained {args.cnn3_retrain_epochs} epoch(s)" if args.cnn3_retrain_epochs
                                 else "not retrained"),
        flush=True)
    model = pruning.clone(dense)
    pruning.prune_to_density(model, dens)
    # 4x1 blocks (4 outputs sharing an input) where a layer's outputs divide by 4: both convolutions
    blocked, plan_blocked_kernels = pruning.clone(dense), []
    for k, layer in pruning.prunable_layers(blocked).items():
        outs = layer.weight.data.shape[1] if isinstance(layer, nn.Linear) else layer.weight.data.shape[0]
        fits = outs % kernels.SPARSE_BLOCK == 0
        pruning.prune_to_density(blocked, {k: dens[k]}, block=(kernels.SPARSE_BLOCK, 1) if fits else None)
        plan_blocked_kernels.append("blocked" if fits else "sparse")
    model.eval(), blocked.eval()
    retrained = retrain([model, blocked], "cnn3", data, args.cnn3_retrain_epochs, log)
    n = min(args.n, len(data.x_test))
    x = np.ascontiguousarray(to_float(data.x_test[:n], CNN3_MEAN, CNN3_STD), np.float32)
    y = np.asarray(data.y_test[:n])
    # the kernel choice measured on one chunk of training images' columns (pyann.infer.sequential;
    # one image at a time: on one image)
    calibration = np.ascontiguousarray(to_float(data.x_train[:CHUNK], CNN3_MEAN, CNN3_STD), np.float32)
    specs = []
    for plan_mode, label_mode in (("batched", "batched"), ("one_at_a_time", "one image at a time")):
        specs += [
            ("NumPy/OpenBLAS dense im2col", label_mode, model, infer.compile(model, "numpy", mode=plan_mode), "dense"),
            ("pyann sparse, kernel measured per layer", label_mode, model,
             infer.compile(model, "sparse", calibration=calibration, mode=plan_mode), "sparse"),
            ("pyann sparse, every layer", label_mode, model,
             infer.compile(model, "sparse", layer_kernels=["sparse"] * len(names), mode=plan_mode), "sparse"),
            ("pyann 4x1 blocked", label_mode, blocked,
             infer.compile(blocked, "sparse", layer_kernels=plan_blocked_kernels, mode=plan_mode), "sparse"),
        ]
    cases = [_plan_case(label, row_mode, m, plan, x, blocked, "cnn3", kind) for label, row_mode, m, plan, kind in specs]
    report = pruning.sparsity_report(model, (1, 28, 28))
    notes = []
    torch_row = _torch_cnn(model, x, CHUNK)
    if torch_row is None:
        notes.append("torch not installed: the PyTorch dense conv row is missing")
    else:
        label, fn = torch_row
        cases.append(({"model": "cnn3", "row": label, "mode": "batched", "weights": "elementwise",
                       "weight_density": weight_density(model), "model_bytes": report.dense_file_bytes,
                       "macs": n * report.dense_macs, "kind": "peer"}, fn, model))
    repeats = args.cnn3_repeats or min(args.repeats, 3)
    rows = _timed_rows_by_mode(cases, x, y, repeats, "cnn3", check_n=64)
    _finish_rows(rows, report.dense_macs, n)
    dense_acc = float(np.mean(infer.compile(dense, "numpy").predict(x) == y))
    log(f"  dense accuracy {100 * dense_acc:.2f} %; model file {report.dense_file_bytes:,} bytes dense, "
        f"{report.compact_file_bytes:,} compact ({report.compact_file_bytes / report.dense_file_bytes:.3f})", flush=True)
    rows.append({"model": "cnn3", "row": "model file bytes", "mode": "-", "dense_bytes": report.dense_file_bytes,
                 "sparse_bytes": report.compact_file_bytes})
    info = {"densities": dens, "source": source, "dense_accuracy": dense_acc, "n": n, "repeats": repeats,
            "retrained": retrained,
            "weight_density": weight_density(model), "weight_density_blocked": weight_density(blocked),
            "dense_macs_per_image": report.dense_macs, "pruned_macs_per_image": report.pruned_macs}
    return rows, notes, info


# ---- the command ------------------------------------------------------------------------------------

COLUMNS = [("row", "row", "s"), ("mode", "mode", "s"),
           ("accuracy", "accuracy", lambda v: f"{100 * v:.2f}%"), ("seconds", "seconds", ".4f"),
           ("images_per_s", "images/s", ",.0f"), ("weight_density", "weight density", lambda v: f"{100 * v:.1f}%"),
           ("mac_share", "MACs executed", lambda v: f"{100 * v:.1f}%"), ("speedup", "x vs NumPy dense", ".2f"),
           ("model_bytes", "file bytes", ",")]


def results_table(rows, models: dict, max_width: int = 120) -> str:
    """One table per model, its heading the pruning, the unpruned model's accuracy and its files."""
    parts = []
    for name in dict.fromkeys(r["model"] for r in rows):
        group = [dict(r, mode="one image" if r["mode"] == "one image at a time" else r["mode"])
                 for r in rows if r["model"] == name and "seconds" in r]
        size = next((r for r in rows if r["model"] == name and r["row"] == "model file bytes"), None)
        info = models.get(name, {})
        pruned = (", ".join(f"{100 * d:g} %" for d in info["densities"].values()) + " per layer" if "densities" in info
                  else f"{100 * info.get('density', 0):g} % of each layer")
        head = f"\n{name}, pruned to {pruned} (magnitude, {info.get('retrained', 'not retrained')})"
        if "dense_accuracy" in info:
            head += f"; unpruned accuracy {100 * info['dense_accuracy']:.2f} %"
        if size:
            head += (f"; model file {size['dense_bytes']:,} bytes dense, {size['sparse_bytes']:,} compact "
                     f"({size['sparse_bytes'] / size['dense_bytes']:.3f})")
        parts.append(head + "\n" + format_table(group, COLUMNS, max_width=max_width))
    return "\n".join(parts)


def run(args) -> dict:
    from pyann.cli.common import prepare_data
    from pyann.data import load, to_float
    t0 = time.perf_counter()
    info = machine_info()
    rows, notes, extra = [], [], {"models": {}}
    models = [] if args.sweep else list(args.models)
    found, n = None, None
    if models:
        found = prepare_data("mnist", args)
        data = load("mnist", root=args.data_root)
        n = min(args.n, len(data.x_test))
        x = np.ascontiguousarray(to_float(data.x_test[:n]).reshape(n, -1))
        y = np.asarray(data.y_test[:n])
        # the per-layer measurement's inputs: training images (never the test images timed)
        calibration = np.ascontiguousarray(to_float(data.x_train[:SPARSE_CALIBRATION]).reshape(
            min(SPARSE_CALIBRATION, len(data.x_train)), -1))
        for name in models:
            if name == "cnn3":
                model_rows, model_notes, model_info = bench_cnn3(args, data)
            else:
                model_rows, model_notes, model_info = bench_mlp(name, args, x, y, calibration=calibration, data=data)
            rows += model_rows
            notes += [m for m in model_notes if m not in notes]
            extra["models"][name] = model_info
        cnn3_info = extra["models"].get("cnn3")
        print(f"\npruned models on MNIST test images ({n}); median of {args.repeats} rounds"
              + (f" ({cnn3_info['repeats']} for cnn3)" if cnn3_info else "")
              + " after a checked warm-up, rows timed round-robin per model and mode")
        print(machine_line(info))
        print(results_table(rows, extra["models"]))
        print("x vs NumPy dense: against the NumPy/OpenBLAS dense row of the same model and mode, same run; MACs "
              "executed: share of the dense model's multiply-adds; file bytes: dense file for dense rows, "
              "nn.save(compact=True) for sparse ones")
        for note in notes:
            print(note)
        for r in rows:   # what the measurement chose, per layer
            if "measured" in r["row"] and r.get("plan"):
                print(f"\n{r['model']}, {r['row']} ({r['mode']}): plan.describe()\n{r['plan']}")
    if args.sweep or not args.no_sweep:
        sweep_n = args.sweep_n or args.n
        sweep_repeats = args.sweep_repeats or min(args.repeats, 3)
        print(f"\ndensity sweep: layers {', '.join(f'{i}x{o}' for i, o in SWEEP_SHAPES)}, densities "
              f"{', '.join(_pct(d) for d in args.sweep_densities)}, {sweep_n} random samples batched, "
              f"{min(args.sweep_n_one, sweep_n)} one at a time", flush=True)
        sweep = run_sweep(SWEEP_SHAPES, args.sweep_densities, sweep_n, sweep_repeats, n_one=min(args.sweep_n_one, sweep_n))
        if sweep["scipy"] is None:
            notes.append("scipy not installed: the sweep's scipy.sparse CSR rows are missing")
        print(machine_line(info))
        print(sweep_table(sweep))
        sweep["figure"] = sweep_figure(sweep, Path(args.out) / "prune-sweep.png")
        print(f"wrote {sweep['figure']}")
        extra["sweep"] = sweep
    workload = {"n": n if models else None, "density": args.density, "models": models,
                "cnn3_densities": list(args.cnn3_densities) if "cnn3" in models else None}
    path = save_results(Path(args.out) / "prune.json", "prune", info, rows,
                        {"workload": workload, "notes": notes, **extra}, dataset=found)
    print(f"wrote {path}; bench prune took {time.perf_counter() - t0:.0f} s")
    return {"rows": rows, "path": str(path), **extra}
