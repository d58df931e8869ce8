"""The teacher of a substitution study: a WRN trained once on CIFAR-10 by the existing recipe
(`pyann.cnn_recipes.wrn_cifar10`) and kept in the trained-model cache.

The cache folder is <cache>/models/wrn<depth>_<width>-cifar10-e<epochs>-s<seed>/ and holds what
the recipe writes to its `out` (the model, results.json, report.md, training-curve.png) and,
while it trains, its per-epoch checkpoint: an interrupted teacher training resumes. A fixed
number of epochs (not a time budget) keys it, so the same key always means the same weights.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Tuple

from .. import nn
from ..io import read_json


@dataclass(frozen=True)
class TeacherConfig:
    depth: int = 16
    width: int = 2
    epochs: int = 8
    progressive: Tuple[Tuple[int, int], ...] = ((16, 2), (24, 2))
    workers: int = 2
    seed: int = 0

    def folder(self, cache=None) -> Path:
        from ..data import cache_dir
        return (Path(cache or cache_dir()) / "models"
                / f"wrn{self.depth}_{self.width}-cifar10-e{self.epochs}-s{self.seed}")

    def model_file(self, cache=None) -> Path:
        return self.folder(cache) / f"wrn{self.depth}_{self.width}_cifar10.npz"


def cached_teacher(config: TeacherConfig, cache=None) -> Optional[Tuple[nn.Module, dict]]:
    """(model, the recipe's results.json) when this teacher was trained before, else None."""
    path, results = config.model_file(cache), config.folder(cache) / "results.json"
    if not (path.exists() and results.exists()):
        return None
    return nn.load(path), read_json(results)


def trained_teacher(config: TeacherConfig, cache=None, root=None, progress=None) -> Tuple[nn.Module, dict, str]:
    """(model, results, source): from the cache, or trained now by wrn_cifar10 into the cache.
    results is the recipe's results.json (test accuracy, wall minutes, the dataset's identity)."""
    found = cached_teacher(config, cache)
    if found is not None:
        return found[0], found[1], f"trained-model cache: {config.folder(cache)}"
    from ..cnn_recipes import wrn_cifar10
    folder = config.folder(cache)
    result = wrn_cifar10(depth=config.depth, width=config.width, epochs=config.epochs,
                         progressive=config.progressive, workers=config.workers, seed=config.seed,
                         root=root, out=folder, progress=progress)
    model = result.pop("model")
    return model, read_json(folder / "results.json"), f"trained now into the trained-model cache: {folder}"


def describe(config: TeacherConfig) -> dict:
    return asdict(config)
