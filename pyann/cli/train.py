"""`pyann train`: a zoo MLP trained with the project recipe; model.npz and results.json."""
from __future__ import annotations

from .. import nn
from ..argtypes import positive_float, positive_int, seed
from ..outputs import writable_folder, write_model_and_results
from .common import HelpFormatter, add_data_arguments, prepare_data

MODELS = ("mlp5", "fcn1", "fcn2")
DATASETS = ("mnist", "fashion-mnist")


def cmd_train(args) -> int:
    from ..data import load
    from ..recipes import mlp_recipe
    from ..train import PrintTable
    out = writable_folder(args.out or f"runs/{args.model}-{args.dataset}")   # before any data or training
    prepare_data(args.dataset, args)
    data = load(args.dataset, root=args.data_root)
    print(f"training {args.model} on {args.dataset}: {len(data.x_train)} train / {len(data.x_test)} test images, "
          f"{args.epochs} epochs, seed {args.seed}; writing to {out}/", flush=True)
    model, history = mlp_recipe(args.model, data, epochs=args.epochs, seed=args.seed, batch_size=args.batch_size,
                                lr=args.lr, callbacks=[PrintTable()],
                                checkpoint_dir=out if args.checkpoint or args.resume else None, resume=args.resume)
    last = history.last()
    results = {"model": args.model, "dataset": args.dataset, "seed": args.seed, "epochs": args.epochs,
               "batch_size": args.batch_size, "lr": args.lr, "data_source": str(data.source_path),
               "official_data": data.official,
               "final_test_accuracy": last.get("val_acc"), "history": history.to_dict()}
    write_model_and_results(
        out / "model.npz", lambda path: nn.save(model, path, metadata={"dataset": args.dataset, "seed": args.seed}),
        out / "results.json", results)
    print(f"final test accuracy {100 * last['val_acc']:.2f}%; wrote {out / 'model.npz'} and {out / 'results.json'}")
    return 0


def add_parser(sub, parents) -> None:
    p = sub.add_parser("train", parents=parents, formatter_class=HelpFormatter,
                       help="train a zoo MLP (mlp5, fcn1, fcn2) with the project recipe",
                       description="Train a zoo MLP with the project recipe (SGD + Nesterov, cosine schedule) and "
                                   "write model.npz and results.json to --out.")
    p.add_argument("--model", default="mlp5", choices=MODELS)
    p.add_argument("--dataset", default="mnist", choices=DATASETS)
    p.add_argument("--epochs", type=positive_int, default=20)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=positive_float, default=0.05, help="peak learning rate of the cosine schedule")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: runs/<model>-<dataset>)")
    add_data_arguments(p)
    p.add_argument("--checkpoint", action="store_true", help="write checkpoint.npz to --out after every epoch")
    p.add_argument("--resume", action="store_true",
                   help="continue from --out/checkpoint.npz if present (refused if it was written by a run "
                        "with another dataset, seed, learning rate, batch size, ...); implies --checkpoint")
    p.set_defaults(func=cmd_train)
