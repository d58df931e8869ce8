"""The :class:`Dataset` value every loader returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Dataset"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split of an image classification dataset.

    Attributes:
        x_train: uint8 images, NCHW: (60000, 1, 28, 28) for MNIST-like, (50000, 3, 32, 32) CIFAR-10.
        y_train: int64 labels (N_train,), in 0..len(classes)-1.
        x_test:  uint8 images, NCHW, (N_test, C, H, W).
        y_test:  int64 labels (N_test,).
        name:    canonical dataset name ("mnist", "fashion-mnist", "cifar10").
        source_path: the folder or archive the arrays were read from.
        classes: class names, indexed by label.
        official: True when every file matched its official md5. False means the caller
            opted in with ``allow_unofficial=True`` and the files differ (or cannot be
            verified); ``notes`` says how. Report results on such data as such.
        notes:   one line per checksum problem (empty when official).

    The dataclass is frozen (fields cannot be reassigned); the arrays themselves are ordinary
    writable arrays owned by this object.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    source_path: Path
    classes: tuple[str, ...]
    official: bool
    notes: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one image."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:  # the default repr would print the arrays
        status = "official" if self.official else "UNOFFICIAL"
        return (f"Dataset(name={self.name!r}, train={self.x_train.shape}, "
                f"test={self.x_test.shape}, classes={len(self.classes)}, {status}, "
                f"source_path='{self.source_path}')")
