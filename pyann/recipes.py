"""Training recipes: the optimiser, schedule and data preparation that reproduce a paper's model.

A recipe is a plain function from (dataset arrays, seed, epochs, ...) to a trained model and its
History, so the CLI, the benchmarks and the studies all train the same way. `trained_model`
adds a cache: a model trained once with a given recipe and seed is saved under the cache folder
and reused, keyed by everything that determines its weights.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from . import nn
from .optim import SGD, CosineLR
from .train import Callback, History, fit


def mlp_recipe(model_name: str, data, epochs: int = 20, seed: int = 0, batch_size: int = 128,
               lr: float = 0.05, weight_decay: float = 5e-4, activity_l1: float = 0.0,
               callbacks: Sequence[Callback] = (), checkpoint_dir=None, resume: bool = False,
               progress=None, config: dict | None = None):
    """Train a zoo MLP (mlp5, fcn1, fcn2) on `data` (a pyann.data.Dataset).

    SGD with nesterov momentum 0.9, weight decay 5e-4 on weights, cosine learning rate from
    0.05 to 0 over `epochs`, batch 128, inputs scaled to [0, 1]. Returns (model, History);
    the History's val_acc is test accuracy (the papers report test accuracy per epoch).
    activity_l1 > 0: the sparse-activation variant, an L1 penalty of that strength on every
    hidden ReLU's output (nn.ReLU); the History's loss is the data loss without it.
    The run configuration fit() records in checkpoints (and checks on resume) is this recipe's
    every argument that shapes the weights plus the dataset's name and origin; `config` adds
    the caller's own fields to it.
    """
    from .data import to_float
    x_train, x_test = to_float(data.x_train), to_float(data.x_test)
    extra = {"activity_l1": activity_l1} if activity_l1 else {}
    model = nn.build(model_name, rng=seed, **extra)
    opt = SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    run = {"recipe": "mlp_recipe/1", "model": model_name, "dataset": getattr(data, "name", None),
           "official_data": getattr(data, "official", None), "epochs": epochs, "seed": seed,
           "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "activity_l1": activity_l1,
           **(config or {})}
    history = fit(model, (x_train, data.y_train), epochs, opt, batch_size=batch_size,
                  validation=(x_test, data.y_test), callbacks=callbacks, seed=seed,
                  schedule=CosineLR(lr, epochs), checkpoint_dir=checkpoint_dir, resume=resume,
                  progress=progress, config=run)
    return model, history


def trained_model_path(model_name: str, dataset: str, seed: int = 0, epochs: int = 20,
                       cache: Path | None = None, activity_l1: float = 0.0, train_images: int | None = None) -> Path:
    """Where trained_model caches this training: models/<model>-<dataset>-e<epochs>-s<seed>[-l1<s>][-n<N>].npz
    under `cache` (default: the user cache, pyann.data.cache_dir())."""
    from .data import cache_dir
    variant = (f"-l1{activity_l1:g}" if activity_l1 else "") + (f"-n{train_images}" if train_images else "")
    return Path(cache or cache_dir()) / "models" / f"{model_name}-{dataset}-e{epochs}-s{seed}{variant}.npz"


def trained_model(model_name: str, dataset: str, seed: int = 0, epochs: int = 20,
                  root=None, cache: Path | None = None, progress=None, activity_l1: float = 0.0,
                  callbacks: Sequence[Callback] = (), train_images: int | None = None):
    """A model trained by `mlp_recipe`, from the cache when the same training was done before.

    Returns (model, history dict). The cache file is models/<model>-<dataset>-e<epochs>-s<seed>.npz
    (with -l1<activity_l1> for the sparse-activation variant) under `cache` (default: the user
    cache, pyann.data.cache_dir()); its metadata holds the History, and a file whose recipe
    metadata does not match is retrained rather than trusted. `progress` and `callbacks` go to
    fit() when it trains. `train_images`: train on the first N training images only (a quick
    check of the pipeline; cached apart, -n<N>).
    """
    from .data import load
    path = trained_model_path(model_name, dataset, seed, epochs, cache, activity_l1, train_images)
    key = {"recipe": "mlp_recipe/1", "model": model_name, "dataset": dataset, "epochs": epochs, "seed": seed}
    if activity_l1:
        key["activity_l1"] = activity_l1
    if train_images:
        key["train_images"] = train_images
    if path.exists():
        try:
            meta = nn.serialization.read_metadata(path)
            if meta.get("key") == key:
                return nn.load(path), meta["history"]
        except ValueError:
            pass  # a corrupt or foreign file: retrain and overwrite it
    data = load(dataset, root=root)
    if train_images:
        import dataclasses
        data = dataclasses.replace(data, x_train=data.x_train[:train_images], y_train=data.y_train[:train_images])
    model, history = mlp_recipe(model_name, data, epochs=epochs, seed=seed,
                                activity_l1=activity_l1, progress=progress, callbacks=callbacks)
    nn.save(model, path, metadata={"key": key, "history": history.to_dict()})
    return model, history.to_dict()
