"""`python -m bench prune`: pruned MLPs on 10,000 MNIST test images, sparse kernels against the
best dense code, in one run, rows timed round-robin.

Models (the trained-model cache; trained on first use): fcn2 (784-300-100-10) and mlp5
(784-512x4-10), magnitude-pruned layer by layer to --density of their weights, element by element
and in 4x1 blocks (4 outputs sharing an input; a layer whose outputs do not divide by 4 is pruned
element by element). Not retrained: the accuracy column says what that costs; the pruning study
(`pyann prune-study`) retrains. Rows per model, batched: NumPy/OpenBLAS dense, pyann dense, pyann
sparse, pyann 4x1 blocked (on the block-pruned model), pyann with each layer's kernel measured at
compile time, scipy.sparse CSR, PyTorch dense / sparse CSR and ONNX Runtime (CPU) as peers when
installed; one image
at a time (the loop in C): pyann dense and pyann sparse. Bytes: the weights dense (float32)
against their packed sparse form (values + int32 indices + row pointers).
"""
from __future__ import annotations

import warnings

import numpy as np

from pyann import infer, kernels, pruning
from pyann.argtypes import fraction, positive_int

from .common import format_table, machine_info, machine_line, save_results, time_round_robin

MODELS = ("fcn2", "mlp5")
QUICK = {"n": 300, "repeats": 1, "train_images": 3000, "epochs": 1, "models": "fcn2"}


def _model_name(text: str) -> str:
    import argparse
    if text not in MODELS:
        raise argparse.ArgumentTypeError(f"unknown model {text!r}; choose from {', '.join(MODELS)}")
    return text


def add_arguments(parser):
    from pyann.argtypes import comma_list
    from pyann.cli.common import add_data_arguments
    parser.add_argument("--models", type=comma_list(_model_name), default=",".join(MODELS),
                        help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--density", type=fraction, default=0.1, help="share of each layer's weights kept")
    parser.add_argument("--n", type=positive_int, default=10000, help="test images")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed rounds (round-robin)")
    parser.add_argument("--epochs", type=positive_int, default=20, help="training epochs of the cached dense models")
    parser.add_argument("--train-images", type=positive_int, default=None,
                        help="train on the first N training images only (cached apart)")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny run: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    parser.add_argument("--out", default="bench-results", metavar="DIR", help="folder for prune.json")
    add_data_arguments(parser)


def _pruned(model, density: float, block: bool):
    """A magnitude-pruned copy: every Linear keeps `density` of its weights (by 4x1 blocks where
    the outputs divide by 4 when block), its masks kept (they are what the compact file stores)."""
    model = pruning.clone(model)
    for name, layer in pruning.prunable_layers(model).items():
        blocked = block and layer.weight.data.shape[1] % kernels.SPARSE_BLOCK == 0
        pruning.prune(model, [name], fraction=1.0 - density, block=(kernels.SPARSE_BLOCK, 1) if blocked else None)
    return model.eval()


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


def _file_bytes(model, label: str) -> int:
    """The bytes of the model file the row's engine would load: the dense file for dense rows,
    the compact one (nn.save(compact=True): values plus 16-bit indices) for sparse rows."""
    dense, compact = pruning.report.file_bytes(model)
    return compact if any(k in label for k in ("sparse", "blocked", "measured")) else dense


def run(args) -> dict:
    from pyann.cli.common import prepare_data
    from pyann.data import load, to_float
    from pyann.recipes import trained_model
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v if k != "models" else [v])
    found = prepare_data("mnist", args)
    data = load("mnist", root=args.data_root)
    x = np.ascontiguousarray(to_float(data.x_test[:args.n]).reshape(min(args.n, len(data.x_test)), -1))
    y = data.y_test[:len(x)]
    info = machine_info()
    rows, notes = [], []
    for name in args.models:
        print(f"{name}: the trained dense model (cache), pruned to {100 * args.density:g} % of each layer's "
              f"weights, not retrained", flush=True)
        dense_model, _ = trained_model(name, "mnist", epochs=args.epochs, root=args.data_root,
                                       train_images=args.train_images)
        model, blocked = _pruned(dense_model, args.density, False), _pruned(dense_model, args.density, True)
        n_layers = len(pruning.prunable_layers(model))
        plans = [
            ("NumPy/OpenBLAS dense", "batched", model, infer.compile(model, "numpy")),
            ("pyann dense", "batched", model, infer.compile(model, "dense")),
            ("pyann sparse", "batched", model, infer.compile(model, "sparse", layer_kernels=["sparse"] * n_layers)),
            ("pyann 4x1 blocked", "batched", blocked, infer.compile(
                blocked, "sparse", layer_kernels=["blocked" if l.weight.data.shape[1] % 4 == 0 else "sparse"
                                                  for l in pruning.prunable_layers(blocked).values()])),
            ("pyann, kernel measured per layer", "batched", model, infer.compile(model, "sparse")),
            ("pyann dense", "one image at a time", model, infer.compile(model, "dense", mode="one_at_a_time")),
            ("pyann sparse", "one image at a time", model, infer.compile(
                model, "sparse", mode="one_at_a_time", layer_kernels=["sparse"] * n_layers)),
        ]
        peers, missing = _peers(model, x)
        notes += [f"{m} not installed: its rows are missing" for m in missing if f"{m} not installed: its rows are missing" not in notes]
        cases = [(label, mode, (lambda p=p: p.run(x)), m) for label, mode, m, p in plans] + \
                [(label, mode, fn, model) for label, mode, fn in peers]
        for label, mode, fn, m in cases:   # every row computes the model it names, before timing
            out = np.asarray(fn())
            np.testing.assert_allclose(out, m.forward(x[:len(out)]), rtol=1e-3, atol=1e-3, err_msg=label)
        timings = time_round_robin([fn for _, _, fn, _ in cases], repeats=args.repeats)
        dense_bytes, sparse_bytes = pruning.report.file_bytes(model)
        base = {}
        for (label, mode, fn, m), t in zip(cases, timings):
            acc = float(np.mean(np.argmax(np.asarray(fn()), axis=1) == y))
            row = {"model": name, "row": label, "mode": mode, "seconds": t["median"], "images_per_s": len(x) / t["median"],
                   "accuracy": acc, "weights": "4x1 blocks" if m is blocked else "elementwise", "timings": t,
                   "model_bytes": _file_bytes(m, label)}
            base.setdefault(mode, row["seconds"])   # the first row of each mode: the dense baseline
            row["speedup"] = base[mode] / row["seconds"]
            rows.append(row)
        rows.append({"model": name, "row": "model file bytes", "mode": "-", "dense_bytes": dense_bytes,
                     "sparse_bytes": sparse_bytes})
        print(f"  dense accuracy {100 * float(np.mean(dense_model.eval().forward(x).argmax(1) == y)):.2f} %; "
              f"model file {dense_bytes:,} bytes dense, {sparse_bytes:,} compact "
              f"({sparse_bytes / dense_bytes:.3f})", flush=True)
    print(f"pruned MLP inference, {len(x)} MNIST test images, density {args.density:g}, median of {args.repeats} "
          f"rounds, rows timed round-robin; speedup against the first row of the same mode")
    print(machine_line(info))
    timed = [r for r in rows if "seconds" in r]
    print(format_table(timed, [("model", "model", "s"), ("row", "row", "s"), ("mode", "mode", "s"),
                               ("weights", "pruned", "s"), ("seconds", "seconds", ".4f"),
                               ("images_per_s", "images/s", ",.0f"), ("accuracy", "accuracy", ".4f"),
                               ("speedup", "x vs dense", ".2f"), ("model_bytes", "file bytes", ",")]))
    for note in notes:
        print(note)
    from pathlib import Path
    path = save_results(Path(args.out) / "prune.json", "prune", info, rows,
                        {"workload": {"n": len(x), "density": args.density, "models": list(args.models)}, "notes": notes},
                        dataset=found)
    print(f"wrote {path}")
    return {"rows": rows, "path": str(path)}
