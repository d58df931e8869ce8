"""python -m pyann <command>: train models and run the papers' studies from the shell.

  python -m pyann train --model mlp5 --dataset mnist --epochs 20 --out runs/mlp5-mnist
  python -m pyann relu-study --dataset mnist --epochs 20 --out runs/relu-study-mnist
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import nn
from .io import write_json
from .train import PrintTable


def cmd_train(args) -> int:
    from .data import load
    from .recipes import mlp_recipe
    data = load(args.dataset, root=args.data_root)
    out = Path(args.out)
    print(f"training {args.model} on {args.dataset}: {len(data.x_train)} train / {len(data.x_test)} test images, "
          f"{args.epochs} epochs, seed {args.seed}; writing to {out}/")
    model, history = mlp_recipe(args.model, data, epochs=args.epochs, seed=args.seed, batch_size=args.batch_size,
                                lr=args.lr, callbacks=[PrintTable()],
                                checkpoint_dir=out if args.checkpoint else None, resume=args.resume)
    nn.save(model, out / "model.npz", metadata={"dataset": args.dataset, "seed": args.seed})
    last = history.last()
    results = {"model": args.model, "dataset": args.dataset, "seed": args.seed, "epochs": args.epochs,
               "batch_size": args.batch_size, "lr": args.lr,
               "final_test_accuracy": last.get("val_acc"), "history": history.to_dict()}
    write_json(out / "results.json", results)
    print(f"final test accuracy {100 * last['val_acc']:.2f}%; wrote {out / 'model.npz'} and {out / 'results.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pyann", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a zoo MLP with the project recipe, save model.npz and results.json")
    p.add_argument("--model", default="mlp5", choices=["mlp5", "fcn1", "fcn2"])
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05, help="peak learning rate of the cosine schedule")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output folder (default runs/<model>-<dataset>)")
    p.add_argument("--data-root", default=None, help="dataset folder (default: $PYANN_DATA, cache, ...)")
    p.add_argument("--checkpoint", action="store_true", help="write checkpoint.npz to --out after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.npz if present")
    p.set_defaults(func=cmd_train)

    from .relu_prediction.cli import add_relu_study_parser
    add_relu_study_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "out", "") is None:
        args.out = f"runs/{args.model}-{args.dataset}"
    if getattr(args, "resume", False):
        args.checkpoint = True
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
