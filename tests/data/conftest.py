"""Fixtures for the pyann.data tests: an isolated environment and small synthetic datasets.

Every test runs with ``$PYANN_DATA`` unset, ``$HOME`` and ``$XDG_CACHE_HOME`` inside tmp_path,
no system dataset folder, and the network blocked, so that nothing on the machine (or the
internet) can leak into a result. Real-data tests get the real location from
:func:`real_data` instead, captured before the environment is cleared.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
import types
from pathlib import Path

import numpy as np
import pytest

import pyann.data.download as download_mod
import pyann.data.resolution as resolution
from pyann.data import checksums

_REAL_PYANN_DATA = os.environ.get("PYANN_DATA")
_SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


# --------------------------------------------------------------------------- environment

@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No $PYANN_DATA, a private HOME and cache, no system folder, no network."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.delenv("PYANN_DATA", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(resolution, "SYSTEM_DIRS", (tmp_path / "system",))
    monkeypatch.setattr(resolution, "CHECKOUT_DIRS", ())   # ../shared/datasets beside the checkout
    monkeypatch.delenv("PYANN_OFFLINE", raising=False)

    def no_network(url, *args, **kwargs):
        raise AssertionError(f"a test tried to use the network: {url}")

    monkeypatch.setattr(download_mod, "default_opener", no_network)
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    checksums.clear_md5_cache()
    yield types.SimpleNamespace(home=home, cache=tmp_path / "xdg-cache" / "pyann",
                                system=tmp_path / "system")


@pytest.fixture
def real_data():
    """The real datasets folder ($PYANN_DATA, else ../shared/datasets); skip if absent."""
    for candidate in (_REAL_PYANN_DATA, _SHARED):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    pytest.skip("real datasets not available: set PYANN_DATA to the folder holding mnist/, "
                "fashion-mnist/ and cifar-10-jpeg/")


# --------------------------------------------------------------------------- IDX builders

def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """IDX encoding of ``array``: magic 0x0000<type><ndim>, big-endian dims, big-endian data."""
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[type_code]
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + np.asarray(array).astype(dtype).tobytes()


def make_mnist_arrays(n_train=12, n_test=5, seed=0):
    """Small random MNIST-like arrays: images uint8 (N, 28, 28), labels uint8 (N,)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, n_train, dtype=np.uint8),
            rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, n_test, dtype=np.uint8))


def write_mnist(folder: Path, gz: bool = True, seed=0, arrays=None) -> tuple:
    """Write the four MNIST files (gzipped or raw) into ``folder``; return the arrays."""
    arrays = arrays if arrays is not None else make_mnist_arrays(seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    for stem, arr in zip(stems, arrays):
        data = idx_bytes(arr)
        if gz:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(data, mtime=0))
        else:
            (folder / stem).write_bytes(data)
    return arrays


# --------------------------------------------------------------------------- CIFAR builders

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"]
BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
           "test_batch")


class Py2Pickler(pickle._Pickler):
    """Writes pickles the way Python 2 cPickle did for the official CIFAR files: str and
    bytes as 8-bit BINSTRINGs, numpy globals under their numpy-1 names (numpy.core...)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2str(self, obj):
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2str
    dispatch[bytes] = save_py2str

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        name = name or obj.__qualname__
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)

    dispatch[type] = save_global
    dispatch[types.FunctionType] = save_global
    dispatch[types.BuiltinFunctionType] = save_global


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def make_cifar_batches(records=4, seed=0):
    """{batch name: (images uint8 (records, 3, 32, 32), labels uint8 (records,))}."""
    rng = np.random.default_rng(seed)
    return {b: (rng.integers(0, 256, (records, 3, 32, 32), dtype=np.uint8),
                rng.integers(0, 10, records, dtype=np.uint8)) for b in BATCHES}


def cifar_binary_record_bytes(images, labels) -> bytes:
    records = np.concatenate([labels[:, None], images.reshape(len(images), -1)], axis=1)
    return records.astype(np.uint8).tobytes()


def cifar_files(batches, fmt: str) -> dict[str, bytes]:
    """Relative path -> bytes of a CIFAR-10 batch folder in the binary or python format."""
    if fmt == "binary":
        files = {f"cifar-10-batches-bin/{b}.bin": cifar_binary_record_bytes(*batches[b])
                 for b in BATCHES}
        files["cifar-10-batches-bin/batches.meta.txt"] = ("\n".join(CIFAR_CLASSES) + "\n\n").encode()
        return files
    files = {}
    for b in BATCHES:
        images, labels = batches[b]
        files[f"cifar-10-batches-py/{b}"] = py2_pickle({
            "batch_label": f"{b} of 6", "labels": [int(v) for v in labels],
            "data": images.reshape(len(images), -1),
            "filenames": [f"img_{i}.png" for i in range(len(images))],
        })
    files["cifar-10-batches-py/batches.meta"] = py2_pickle(
        {"label_names": CIFAR_CLASSES, "num_cases_per_batch": len(batches[BATCHES[0]][1]),
         "num_vis": 3072})
    return files


def write_cifar_folder(base: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)
    return base


def write_cifar_archive(path: Path, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        folders = sorted({rel.split("/")[0] for rel in files})
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for rel, data in files.items():
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def build():
    """The builders above, as one namespace (tests/data has no __init__.py to import from)."""
    return types.SimpleNamespace(
        idx_bytes=idx_bytes, make_mnist_arrays=make_mnist_arrays, write_mnist=write_mnist,
        make_cifar_batches=make_cifar_batches, cifar_files=cifar_files,
        cifar_binary_record_bytes=cifar_binary_record_bytes, py2_pickle=py2_pickle,
        write_cifar_folder=write_cifar_folder, write_cifar_archive=write_cifar_archive,
        CIFAR_CLASSES=CIFAR_CLASSES, BATCHES=BATCHES,
    )


@pytest.fixture
def small_cifar(monkeypatch):
    """Let the CIFAR loader accept 4-record batches, so loader tests stay small and fast."""
    import pyann.data.cifar as cifar

    monkeypatch.setattr(cifar, "RECORDS_PER_BATCH", 4)
    return 4
