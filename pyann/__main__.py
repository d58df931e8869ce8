"""python -m pyann <command>: train models and run the papers' studies from the shell.

  python -m pyann train --model mlp5 --dataset mnist --epochs 20 --out runs/mlp5-mnist
  python -m pyann relu-study --dataset mnist --epochs 20 --out runs/relu-study-mnist
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import nn
from .argtypes import positive_float, positive_int, seed
from .outputs import OutputFolderError, writable_folder, write_model_and_results
from .train import PrintTable, ResumeMismatchError, TrainingDivergedError


def cmd_train(args) -> int:
    from .data import load
    from .recipes import mlp_recipe
    out = writable_folder(args.out)   # before loading or training: a bad --out must cost nothing
    data = load(args.dataset, root=args.data_root)
    print(f"training {args.model} on {args.dataset}: {len(data.x_train)} train / {len(data.x_test)} test images, "
          f"{args.epochs} epochs, seed {args.seed}; writing to {out}/")
    model, history = mlp_recipe(args.model, data, epochs=args.epochs, seed=args.seed, batch_size=args.batch_size,
                                lr=args.lr, callbacks=[PrintTable()],
                                checkpoint_dir=out if args.checkpoint else None, resume=args.resume)
    last = history.last()
    results = {"model": args.model, "dataset": args.dataset, "seed": args.seed, "epochs": args.epochs,
               "batch_size": args.batch_size, "lr": args.lr,
               "final_test_accuracy": last.get("val_acc"), "history": history.to_dict()}
    write_model_and_results(
        out / "model.npz", lambda path: nn.save(model, path, metadata={"dataset": args.dataset, "seed": args.seed}),
        out / "results.json", results)
    print(f"final test accuracy {100 * last['val_acc']:.2f}%; wrote {out / 'model.npz'} and {out / 'results.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pyann", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a zoo MLP with the project recipe, save model.npz and results.json")
    p.add_argument("--model", default="mlp5", choices=["mlp5", "fcn1", "fcn2"])
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    p.add_argument("--epochs", type=positive_int, default=20)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=positive_float, default=0.05, help="peak learning rate of the cosine schedule")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", default=None, help="output folder (default runs/<model>-<dataset>)")
    p.add_argument("--data-root", default=None, help="dataset folder (default: $PYANN_DATA, cache, ...)")
    p.add_argument("--checkpoint", action="store_true", help="write checkpoint.npz to --out after every epoch")
    p.add_argument("--resume", action="store_true",
                   help="continue from --out/checkpoint.npz if present (refused if it was written by a run "
                        "with another dataset, seed, learning rate, batch size, ...)")
    p.set_defaults(func=cmd_train)

    from .relu_prediction.cli import add_relu_study_parser
    add_relu_study_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "out", "") is None:
        args.out = f"runs/{args.model}-{args.dataset}"
    if getattr(args, "resume", False):
        args.checkpoint = True
    try:
        return args.func(args)
    except OutputFolderError as exc:
        parser.exit(2, f"{parser.prog} {args.command}: error: {exc}\n")
    except (TrainingDivergedError, ResumeMismatchError) as exc:
        parser.exit(1, f"{parser.prog} {args.command}: error: {exc}\n")


if __name__ == "__main__":
    sys.exit(main())
