"""pyann.data: datasets (MNIST, Fashion-MNIST, CIFAR-10), their file formats, and batching.

Loading::

    from pyann.data import load_mnist, to_float, batches
    ds = load_mnist()                    # finds the files, checks their md5
    x = to_float(ds.x_train)             # float32 (60000, 1, 28, 28) in [0, 1]
    for xb, yb in batches(x, ds.y_train, 128, shuffle=True, rng=0):
        ...

Where the files are looked for, in order: ``root=``, ``$PYANN_DATA``, the user cache
(``~/.cache/pyann``), ``/usr/share/datasets``, then (``download=True``) the official mirrors;
and ``../shared/datasets`` beside the checkout; see :mod:`pyann.data.resolution`
(``$PYANN_OFFLINE=1``: never download). From the shell: ``pyann data fetch mnist`` and
``pyann data info``.

Errors: :class:`DatasetError` (a ``ValueError``) and its subclasses :class:`ChecksumError`,
:class:`DatasetTooLargeError` (a file past its read bound, e.g. a gzip bomb) and
:class:`DatasetNotFoundError` (also a ``FileNotFoundError``).
"""

from .augment import CropFlip, ProgressiveResize, normalize, random_crop, random_flip, resize
from .batching import batches, num_batches
from .dataset import Dataset
from .errors import (ChecksumError, DatasetError, DatasetNotFoundError, DatasetTooLargeError,
                     UnofficialDataWarning)
from .loaders import fetch, load, load_cifar10, load_fashion_mnist, load_mnist, read_located
from .resolution import Located, cache_dir, describe_source, locate, offline
from .registry import DATASETS, dataset_names, get_spec
from .transforms import channel_stats, to_float

__all__ = [
    "Dataset", "Located",
    "load", "load_mnist", "load_fashion_mnist", "load_cifar10", "fetch", "locate", "read_located",
    "to_float", "channel_stats", "batches", "num_batches",
    "random_crop", "random_flip", "normalize", "CropFlip", "ProgressiveResize", "resize",
    "DATASETS", "dataset_names", "get_spec", "cache_dir", "describe_source", "offline",
    "DatasetError", "DatasetNotFoundError", "ChecksumError", "DatasetTooLargeError",
    "UnofficialDataWarning",
]
