"""The dataset loaders: locate the files, verify them, decode them into a :class:`Dataset`."""

from __future__ import annotations

import warnings

import numpy as np

from . import cifar
from .dataset import Dataset
from .download import Opener
from .errors import DatasetError, UnofficialDataWarning
from .idx import read_idx_images, read_idx_labels
from .resolution import Located, locate
from .registry import get_spec

__all__ = ["load_mnist", "load_fashion_mnist", "load_cifar10", "load", "fetch", "read_located"]


def _read_idx_pair(images_path, labels_path, num_classes: int):
    """Images uint8 (N, 1, H, W) and labels int64 (N,) from an IDX image/label file pair."""
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path)
    if len(images) != len(labels):
        raise DatasetError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                           f"{len(labels)} labels")
    if labels.size and labels.max() >= num_classes:
        bad = int(np.argmax(labels >= num_classes))
        raise DatasetError(f"{labels_path}: label out of range 0..{num_classes - 1}: record "
                           f"{bad} has label {labels[bad]}")
    return images[:, None, :, :], labels.astype(np.int64)


def read_located(found: Located) -> Dataset:
    """Decode the files of a :class:`Located` into a :class:`Dataset` (validating everything)."""
    spec = found.spec
    classes = spec.classes
    if found.variant.format == "idx":
        p = found.paths
        x_train, y_train = _read_idx_pair(p["train_images"], p["train_labels"], len(classes))
        x_test, y_test = _read_idx_pair(p["test_images"], p["test_labels"], len(classes))
        if x_train.shape[1:] != x_test.shape[1:]:
            raise DatasetError(f"{found.folder}: train images {x_train.shape[1:]} and test "
                               f"images {x_test.shape[1:]} differ in shape")
    elif found.variant.format == "cifar":
        # Looked up at call time so that tests can shrink the batch size.
        arrays = cifar.read_cifar10(found.source_path,
                                    records_per_batch=cifar.RECORDS_PER_BATCH)
        x_train, y_train, x_test, y_test = arrays.x_train, arrays.y_train, arrays.x_test, arrays.y_test
        classes = arrays.classes or classes
    else:  # a registry entry without a reader: a bug, not bad data
        raise NotImplementedError(f"no reader for format {found.variant.format!r}")
    return Dataset(x_train, y_train, x_test, y_test, name=spec.name,
                   source_path=found.source_path, classes=tuple(classes),
                   official=found.official, notes=found.notes)


def _load(name: str, root, download: bool, allow_unofficial: bool, opener, progress) -> Dataset:
    found = locate(name, root, download=download, allow_unofficial=allow_unofficial,
                   opener=opener, progress=progress)
    dataset = read_located(found)
    if not dataset.official:
        warnings.warn(
            f"{found.spec.title} loaded from UNOFFICIAL files at {found.source_path} "
            f"(allow_unofficial=True): " + "; ".join(found.notes)
            + ". Say so when reporting results on it.",
            UnofficialDataWarning, stacklevel=3,
        )
    return dataset


_COMMON_DOC = """
    Files are looked for in ``root``, ``$PYANN_DATA``, the user cache, the system dataset
    folder, and (with ``download=True``) fetched from the official mirrors; see
    :mod:`pyann.data.resolution`. Every file's md5 must be the official one: otherwise
    :class:`ChecksumError` is raised, unless ``allow_unofficial=True``, which loads the files
    anyway (their structure is still fully validated), sets ``Dataset.official = False`` and
    issues an :class:`UnofficialDataWarning`. ``opener`` and ``progress`` are passed to the
    downloader (a ``urlopen``-like callable; the progress bar on/off).

    Raises :class:`DatasetNotFoundError` (listing every location tried), :class:`ChecksumError`,
    or :class:`DatasetError` for a malformed file (naming it).
"""


def load_mnist(root=None, download: bool = False, *, allow_unofficial: bool = False,
               opener: Opener | None = None, progress: bool | None = None) -> Dataset:
    """MNIST: x_train uint8 (60000, 1, 28, 28), y_train int64 (60000,), x_test (10000, 1, 28, 28),
    y_test (10000,); classes "0".."9".
    """
    return _load("mnist", root, download, allow_unofficial, opener, progress)


def load_fashion_mnist(root=None, download: bool = False, *, allow_unofficial: bool = False,
                       opener: Opener | None = None, progress: bool | None = None) -> Dataset:
    """Fashion-MNIST: same shapes as MNIST; classes "T-shirt/top" .. "Ankle boot"."""
    return _load("fashion-mnist", root, download, allow_unofficial, opener, progress)


def load_cifar10(root=None, download: bool = False, allow_unofficial: bool = False, *,
                 opener: Opener | None = None, progress: bool | None = None) -> Dataset:
    """CIFAR-10: x_train uint8 (50000, 3, 32, 32), y_train int64 (50000,), x_test
    (10000, 3, 32, 32), y_test (10000,); classes "airplane" .. "truck".

    Reads the binary or the python version, from the ``.tar.gz`` or an extracted folder.
    ``allow_unofficial=True`` also searches the folders of known unofficial copies
    (``cifar-10-jpeg/``: the JPEG q75-derived stand-in), and accepts files whose md5 is not
    the official one.
    """
    return _load("cifar10", root, download, allow_unofficial, opener, progress)


for _f in (load_mnist, load_fashion_mnist, load_cifar10):
    _f.__doc__ += _COMMON_DOC


def load(name: str, **kwargs) -> Dataset:
    """Load a dataset by name (``"mnist"``, ``"fashion-mnist"``, ``"cifar10"`` or an alias);
    ``kwargs`` go to its loader."""
    loaders = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist, "cifar10": load_cifar10}
    return loaders[get_spec(name).name](**kwargs)


def fetch(name: str, root=None, *, allow_unofficial: bool = False,
          opener: Opener | None = None, progress: bool | None = None) -> Located:
    """Make sure a dataset is on disk: find it, or download it and verify its md5.

    Downloads go to ``root/<folder>`` when ``root`` is given (``root`` is created if missing:
    here it is the download's destination), else to the user cache. In offline mode
    (``$PYANN_OFFLINE``) nothing is downloaded or created. Returns the :class:`Located` files
    (nothing is decoded).
    """
    from pathlib import Path
    from .resolution import offline
    if root is not None and not offline():
        Path(root).expanduser().mkdir(parents=True, exist_ok=True)
    return locate(name, root, download=True, allow_unofficial=allow_unofficial,
                  opener=opener, progress=progress)
