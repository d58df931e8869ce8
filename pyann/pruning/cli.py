"""`python -m pyann prune-study`: the connection-pruning paper's experiments from the shell.

    pyann prune-study --model fcn2 --out runs/prune-study-fcn2
    pyann prune-study --model all --out 'runs/prune-study-{model}'     (fcn1, fcn2, then cnn3)
    pyann prune-study --model fcn1 --quick --out /tmp/prune-quick      (a tiny run, seconds to minutes)

An interrupted study resumes where it stopped when run again with the same options and --out.
`add_prune_study_parser(subparsers, **parser_kwargs)` adds the subcommand to pyann's argparse
subcommands (pyann.cli) and sets `func=cmd_prune_study`, which returns the exit code.
"""
from __future__ import annotations

import argparse

from ..argtypes import seed

DEFAULT_OUT = "runs/prune-study-{model}"


def _out(args, model: str) -> str:
    from ..outputs import run_folder
    return run_folder(args.out, DEFAULT_OUT, "model", model, args.model == "all")


def cmd_prune_study(args) -> int:
    from ..cli.common import offline_mode, prepare_data
    from ..outputs import writable_folder
    from .study import MODELS, run_study
    models = MODELS if args.model == "all" else (args.model,)
    for m in models:
        writable_folder(_out(args, m))          # every folder proved writable before any work
    prepare_data("mnist", args)
    for m in models:
        out = _out(args, m)
        print(f"prune-study {m}{' (quick)' if args.quick else ''}: writing to {out}/ (a rerun resumes)", flush=True)
        with offline_mode(args):
            r = run_study(m, out, quick=args.quick, seed=args.seed, root=args.data_root)
        t = r["target_result"]
        best = t["best"]
        line = (f"  dense {100 * r['dense']['accuracy']:.2f}%; target keep <= {100 * t['keep_at_most']:g}% at <= "
                f"{100 * t['loss_at_most']:.1f} point loss: "
                + ("no retrained point within the loss" if best is None else
                   f"{100 * best['keep']:.2f}% kept at {100 * best['accuracy']:.2f}%")
                + f" ({'met' if t['met'] else 'missed'})")
        print(line)
        for a in r.get("allocations", []):
            print(f"  {a['label']} budget {100 * a['budget']:g} pt, {a['method']}: c'/c {a['allocation']['gain']:.3f}, "
                  f"after retraining {100 * a['accuracy']:.2f}%")
        print(f"  {r['resume']['computed']} points computed, {r['resume']['reused']} reused; "
              f"{r['timing']['this_run_seconds'] / 60:.1f} min; wrote results.json, report.md and "
              f"{len(r['files']) - 1} figure/CSV files to {out}/", flush=True)
    return 0


def add_prune_study_parser(subparsers, **parser_kwargs) -> argparse.ArgumentParser:
    """Add `prune-study` to an argparse subparsers object; returns its parser."""
    from ..cli.common import add_data_arguments
    from .study import MODELS
    p = subparsers.add_parser(
        "prune-study", **parser_kwargs,
        help="connection-pruning study: Figures 2-6, error model, uniform vs optimal allocation",
        description="Prune the dense model (trained-model cache) by |w| threshold with and without masked "
                    "retraining, fit the error model, measure per-layer sensitivity and allocate per-layer keep "
                    "ratios (uniform, eq. 4, and rate-distortion optimal), retrain each allocation. Writes "
                    "results.json, report.md (paper's numbers side by side), PNG figures, sensitivity CSVs and "
                    "the pruned models (with masks) to --out; every finished point is kept, so a rerun resumes.")
    p.add_argument("--model", required=True, choices=[*MODELS, "all"], help="'all': fcn1, fcn2, cnn3 in turn")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help="output folder; '{model}' is replaced by the model")
    p.add_argument("--quick", action="store_true",
                   help="a tiny run (600 training images, 1-epoch dense model, few points): for tests, not results")
    p.add_argument("--seed", type=seed, default=0)
    add_data_arguments(p)
    p.set_defaults(func=cmd_prune_study)
    return p
