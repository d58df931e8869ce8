"""`pyann cnn3-mnist`, `pyann wrn-cifar10` (the CNN recipes of pyann.cnn_recipes) and
`pyann report` (redraw a recipe run's report.md and training-curve.png from its results.json)."""
from __future__ import annotations

from pathlib import Path

from ..argtypes import fraction, positive_float, positive_int, seed
from .common import HelpFormatter, add_data_arguments, prepare_data


class CommandError(Exception):
    """A user error found by a command itself (the message is the whole story)."""


def cmd_cnn3(args) -> int:
    from ..cnn_recipes import cnn3_mnist
    from ..outputs import writable_folder
    writable_folder(args.out)   # before loading data or training
    prepare_data("mnist", args)
    print(f"training cnn3 on MNIST: {args.epochs} epochs, batch {args.batch_size}, seed {args.seed}; "
          f"writing to {args.out}/", flush=True)
    result = cnn3_mnist(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                        root=args.data_root, out=args.out, limit=args.limit)
    print(f"test accuracy {100 * result['test']['accuracy']:.2f}%; wrote the model, results.json, report.md and "
          f"training-curve.png to {args.out}/")
    return 0


def cmd_wrn(args) -> int:
    from ..cnn_recipes import wrn_cifar10
    from ..outputs import writable_folder
    out = args.out or f"runs/wrn{args.depth}-{args.width}-cifar10"
    writable_folder(out)
    prepare_data("cifar10", args, allow_unofficial=True)
    plan = f"{args.epochs} epochs" if args.epochs else f"a {args.minutes:g}-minute budget"
    print(f"training WRN-{args.depth}-{args.width} on CIFAR-10: {plan}, batch {args.batch_size}, seed {args.seed}; "
          f"writing to {out}/ (checkpoints there: a rerun resumes)", flush=True)
    kwargs = dict(depth=args.depth, width=args.width, dropout=args.dropout, epochs=args.epochs, minutes=args.minutes,
                  batch_size=args.batch_size, lr=args.lr, label_smoothing=args.label_smoothing,
                  progressive=args.progressive, workers=args.workers, seed=args.seed, root=args.data_root,
                  out=out, limit=args.limit)
    result = wrn_cifar10(**kwargs)
    print(f"test accuracy {100 * result['test']['accuracy']:.2f}%; wrote the model, results.json, report.md and "
          f"training-curve.png to {out}/")
    return 0


def cmd_report(args) -> int:
    from .. import io
    from ..cnn_recipes import write_report
    path = Path(args.out) / "results.json"
    if not path.is_file():
        raise CommandError(f"{path} does not exist: --out must be the folder of a cnn3-mnist or wrn-cifar10 run")
    write_report(args.out, io.read_json(path))
    print(f"wrote {Path(args.out) / 'report.md'} and {Path(args.out) / 'training-curve.png'}")
    return 0


def _common(p, epochs_default, batch_default, lr_default):
    p.add_argument("--batch-size", type=positive_int, default=batch_default)
    p.add_argument("--lr", type=positive_float, default=lr_default, help="peak learning rate (cosine schedule)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--limit", type=positive_int, default=None, help="train on the first N training images only")
    add_data_arguments(p)


def add_parsers(sub, parents) -> None:
    from ..cnn_recipes import _parse_stages
    p = sub.add_parser("cnn3-mnist", parents=parents, formatter_class=HelpFormatter,
                       help="CNN recipe: cnn3 on MNIST (target 99.0 %%)",
                       description="Train cnn3 (conv32-pool-conv64-pool-linear) on MNIST: SGD + Nesterov, cosine "
                                   "schedule with warm-up. Writes cnn3_mnist.npz, results.json, report.md and "
                                   "training-curve.png to --out.")
    p.add_argument("--epochs", type=positive_int, default=5)
    p.add_argument("--out", default="runs/cnn3-mnist", metavar="DIR", help="output folder")
    _common(p, 5, 128, 0.05)
    p.set_defaults(func=cmd_cnn3)

    p = sub.add_parser("wrn-cifar10", parents=parents, formatter_class=HelpFormatter,
                       help="CNN recipe: WideResNet on CIFAR-10 within a time budget (target 85 %%)",
                       description="Train a pre-activation WideResNet on CIFAR-10 (the JPEG-derived copy when the "
                                   "official files are absent; results say so): progressive resizing, crop + flip, "
                                   "label smoothing, data-parallel over the cores. Checkpoints to --out after every "
                                   "epoch; a rerun with the same configuration resumes, another one is refused.")
    p.add_argument("--model", default="wrn", choices=["wrn"], help="the architecture (sized by --depth, --width)")
    p.add_argument("--depth", type=positive_int, default=16)
    p.add_argument("--width", type=positive_int, default=2)
    p.add_argument("--dropout", type=fraction, default=0.0)
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="all epochs, progressive stages included (default: as many as fit --minutes)")
    p.add_argument("--minutes", type=positive_float, default=60.0, help="time budget when --epochs is not given")
    p.add_argument("--progressive", type=_parse_stages, default="16:3,24:4", metavar="SIZE:EPOCHS,...",
                   help="low-resolution stages trained first ('none': 32x32 throughout)")
    p.add_argument("--label-smoothing", type=fraction, default=0.1)
    p.add_argument("--workers", type=positive_int, default=None,
                   help="data-parallel threads (default: one per core, shards of >= 16 images)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: runs/wrn<depth>-<width>-cifar10)")
    _common(p, None, 64, 0.05)
    p.set_defaults(func=cmd_wrn)

    p = sub.add_parser("report", parents=parents, formatter_class=HelpFormatter,
                       help="redraw report.md and training-curve.png of a cnn3-mnist / wrn-cifar10 run",
                       description="Redraw report.md and training-curve.png in --out from its results.json "
                                   "(nothing is trained).")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder of a recipe run (holding results.json)")
    p.set_defaults(func=cmd_report)
