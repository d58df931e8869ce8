"""`python -m pyann relu-study`: the ReLU-prediction activation study from the shell.

    pyann relu-study --dataset mnist --epochs 20 --out runs/relu-study-mnist
    pyann relu-study --dataset all --epochs 20 --out 'runs/relu-study-{dataset}'
        (mnist and fashion-mnist, then both side by side in runs/relu-study-both)

`add_relu_study_parser(subparsers, **parser_kwargs)` adds the subcommand to pyann's argparse
subcommands (pyann.cli) and sets `func=cmd_relu_study`, which returns the exit code.
"""
from __future__ import annotations

import argparse

from ..argtypes import non_negative_float, non_negative_int, positive_float, positive_int, seed
from ..outputs import run_folder, writable_folder

DEFAULT_OUT = "runs/relu-study-{dataset}"
DATASETS = ("mnist", "fashion-mnist")


def _out(args, dataset: str) -> str:
    return run_folder(args.out, DEFAULT_OUT, "dataset", dataset, args.dataset == "all")


def cmd_relu_study(args) -> int:
    """Run the study for one dataset, or for both (`--dataset all`) plus the side-by-side folder."""
    from . import study
    # every folder this command will write, proved writable before any training
    datasets = DATASETS if args.dataset == "all" else (args.dataset,)
    for folder in [_out(args, ds) for ds in datasets] + ([_out(args, "both")] if args.dataset == "all" else []):
        writable_folder(folder)
    from ..cli.common import prepare_data
    for ds in datasets:   # each dataset found (or downloaded) before any training; the header says where
        prepare_data(ds, args)
    if args.dataset != "all":
        _run_one(args, args.dataset)
        return 0
    folders = []
    for ds in DATASETS:
        _run_one(args, ds)
        folders.append(_out(args, ds))
    both = _out(args, "both")
    study.combine_studies(folders, both)
    print(f"wrote the side-by-side report (Table 1, Figure 2 for both datasets, Table 3) to {both}/")
    return 0


def _run_one(args, dataset: str) -> dict:
    from . import study
    out = _out(args, dataset)
    results = study.run_study(dataset, epochs=args.epochs, seed=args.seed, out_dir=out, probe=args.probe,
                              probe_size=None if args.probe_size == 0 else args.probe_size, root=args.data_root,
                              batch_size=args.batch_size, lr=args.lr, save_states=not args.no_states,
                              sweep=not args.no_sweep, activity_l1=args.activity_l1)
    from .report import terminal_summary
    print("\n" + terminal_summary(results))   # says what could not be computed on a short run, and why
    print(f"wrote {', '.join(results['files'].values())} to {out}/")
    return results


def add_relu_study_parser(subparsers, **parser_kwargs) -> argparse.ArgumentParser:
    """Add `relu-study` to an argparse subparsers object (parser_kwargs: parents,
    formatter_class, ...); returns its parser."""
    from ..cli.common import add_data_arguments
    p = subparsers.add_parser(
        "relu-study", **parser_kwargs, help="ReLU-prediction activation study: Table 1, Figure 2, Table 3, firing rates",
        description="Train mlp5 with the project recipe, record every hidden layer's activation states on a "
                    "fixed probe set after each epoch, and write results.json, report.md (paper's numbers side "
                    "by side) and PNG figures.")
    p.add_argument("--dataset", default="mnist", choices=[*DATASETS, "all"],
                   help="'all': both datasets, each in its own folder, then side by side in the folder "
                        "--out names with {dataset}=both")
    p.add_argument("--epochs", type=positive_int, default=20)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", default=DEFAULT_OUT,
                   metavar="DIR", help="output folder; '{dataset}' is replaced by the dataset name")
    p.add_argument("--probe", default="test", choices=["test", "train"],
                   help="set the probe images are drawn from (test: unseen images, as at inference)")
    p.add_argument("--probe-size", type=non_negative_int, default=2000, help="probe images, 0 = the whole set")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=positive_float, default=0.05, help="peak learning rate of the cosine schedule")
    p.add_argument("--activity-l1", type=non_negative_float, default=0.0,
                   help="L1 penalty on the hidden activations while training (the sparse-activation "
                        "variant; 0 = the project recipe)")
    add_data_arguments(p)
    p.add_argument("--no-states", action="store_true", help="do not write states.npz (the packed per-epoch states)")
    p.add_argument("--no-sweep", action="store_true", help="skip the predictor sweep even if it is available")
    p.set_defaults(func=cmd_relu_study)
    return p
