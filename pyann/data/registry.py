"""The datasets pyann knows: official file names, md5 checksums, sizes and mirror URLs.

Everything here is plain data. The md5 values of the distributed files are the ones their
publishers give (see ``shared/datasets/README.md``). Two groups of values are derived rather
than published, and say so next to them:

- the md5 of the *decompressed* MNIST and Fashion-MNIST IDX files, computed by gunzipping the
  verified official ``.gz`` files, so that a folder of already-gunzipped files can be verified;
- the md5 of the files inside the extracted CIFAR-10 *python* archive, as listed by
  torchvision's ``CIFAR10`` dataset class. No such list exists for the extracted binary
  version, so an extracted ``cifar-10-batches-bin/`` folder cannot be verified (keep the
  ``.tar.gz`` next to it, or opt in with ``allow_unofficial=True``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FileSpec", "Variant", "DatasetSpec", "DATASETS", "get_spec", "dataset_names"]


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset variant.

    ``role`` is what the reader calls it (``"train_images"``, ``"archive"``, ...); ``path`` is
    relative to the dataset folder; ``md5`` is ``None`` when no official checksum is known;
    ``urls`` are full download URLs, tried in order; ``required=False`` marks metadata that
    may be absent (its checksum is still checked when present).
    """

    role: str
    path: str
    md5: str | None
    size: int | None = None
    urls: tuple[str, ...] = ()
    required: bool = True


@dataclass(frozen=True)
class Variant:
    """One on-disk form of a dataset (gzipped IDX files, an archive, an extracted folder).

    ``format`` tells the loader how to read it: ``"idx"`` or ``"cifar"``.
    """

    name: str
    format: str
    files: tuple[FileSpec, ...]

    @property
    def downloadable(self) -> bool:
        return all(f.urls for f in self.files if f.required)

    @property
    def required_files(self) -> tuple[FileSpec, ...]:
        return tuple(f for f in self.files if f.required)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its folder name under a data root, its variants in order of preference."""

    name: str                      # canonical name, as accepted by load() and the CLI
    title: str                     # for messages
    folder: str                    # subfolder under each data root
    variants: tuple[Variant, ...]
    classes: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    # Folders holding known *unofficial* copies, searched only with allow_unofficial=True.
    unofficial_folders: tuple[str, ...] = ()
    citation: str = ""

    @property
    def download_variant(self) -> Variant | None:
        """The variant that ``download=True`` fetches (the first downloadable one)."""
        return next((v for v in self.variants if v.downloadable), None)


# --------------------------------------------------------------------------- MNIST family

_IDX_ROLES = (
    ("train_images", "train-images-idx3-ubyte"),
    ("train_labels", "train-labels-idx1-ubyte"),
    ("test_images", "t10k-images-idx3-ubyte"),
    ("test_labels", "t10k-labels-idx1-ubyte"),
)


def _idx_variants(mirrors, gz_sums, raw_sums) -> tuple[Variant, ...]:
    """The gzipped variant (downloadable) and the gunzipped one, for MNIST-like datasets."""
    gz = tuple(
        FileSpec(role, stem + ".gz", gz_sums[stem][0], gz_sums[stem][1],
                 urls=tuple(m + stem + ".gz" for m in mirrors))
        for role, stem in _IDX_ROLES
    )
    raw = tuple(FileSpec(role, stem, raw_sums[stem][0], raw_sums[stem][1])
                for role, stem in _IDX_ROLES)
    return (Variant("idx-gz", "idx", gz), Variant("idx-raw", "idx", raw))


MNIST = DatasetSpec(
    name="mnist",
    title="MNIST",
    folder="mnist",
    variants=_idx_variants(
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"),
        gz_sums={  # publisher's md5, byte size
            "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
            "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432", 28881),
            "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3", 1648877),
            "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c", 4542),
        },
        raw_sums={  # derived: md5 of the gunzipped official files
            "train-images-idx3-ubyte": ("6bbc9ace898e44ae57da46a324031adb", 47040016),
            "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624", 60008),
            "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea", 7840016),
            "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637", 10008),
        },
    ),
    classes=tuple(str(d) for d in range(10)),
    citation=("Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, 'Gradient-based learning "
              "applied to document recognition', Proc. IEEE 86(11), 1998. CC BY-SA 3.0."),
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    title="Fashion-MNIST",
    folder="fashion-mnist",
    variants=_idx_variants(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        gz_sums={
            "train-images-idx3-ubyte": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880),
            "train-labels-idx1-ubyte": ("25c81989df183df01b3e8a0aad5dffbe", 29515),
            "t10k-images-idx3-ubyte": ("bef4ecab320f06d8554ea6380940ec79", 4422102),
            "t10k-labels-idx1-ubyte": ("bb300cfdad3c16e7a12a480ee83cd310", 5148),
        },
        raw_sums={  # derived: md5 of the gunzipped official files
            "train-images-idx3-ubyte": ("f4a8712d7a061bf5bd6d2ca38dc4d50a", 47040016),
            "train-labels-idx1-ubyte": ("9018921c3c673c538a1fc5bad174d6f9", 60008),
            "t10k-images-idx3-ubyte": ("8181f5470baa50b63fa0f6fddb340f0a", 7840016),
            "t10k-labels-idx1-ubyte": ("15d484375f8d13e6eb1aabb0c3f46965", 10008),
        },
    ),
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    aliases=("fashion_mnist", "fashionmnist", "fmnist"),
    citation=("H. Xiao, K. Rasul and R. Vollgraf, 'Fashion-MNIST: a Novel Image Dataset for "
              "Benchmarking Machine Learning Algorithms', arXiv:1708.07747, 2017. MIT licence."),
)

# --------------------------------------------------------------------------- CIFAR-10

_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"
_CIFAR_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                  "data_batch_5", "test_batch")

# md5 of the files inside the official python archive, as listed by torchvision's CIFAR10.
_CIFAR_PY_SUMS = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}

CIFAR10 = DatasetSpec(
    name="cifar10",
    title="CIFAR-10",
    folder="cifar-10",
    variants=(
        # The binary archive comes first: it is what download fetches, and reading it needs
        # no unpickling at all.
        Variant("binary-archive", "cifar", (
            FileSpec("archive", "cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
                     170052171, urls=(_CIFAR_URL + "cifar-10-binary.tar.gz",)),)),
        Variant("python-archive", "cifar", (
            FileSpec("archive", "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                     170498071, urls=(_CIFAR_URL + "cifar-10-python.tar.gz",)),)),
        Variant("binary-folder", "cifar", tuple(
            FileSpec(b, f"cifar-10-batches-bin/{b}.bin", None) for b in _CIFAR_BATCHES
        ) + (FileSpec("meta", "cifar-10-batches-bin/batches.meta.txt", None, required=False),)),
        Variant("python-folder", "cifar", tuple(
            FileSpec(b, f"cifar-10-batches-py/{b}", _CIFAR_PY_SUMS[b]) for b in _CIFAR_BATCHES
        ) + (FileSpec("meta", "cifar-10-batches-py/batches.meta", _CIFAR_PY_SUMS["batches.meta"],
                      required=False),)),
    ),
    classes=("airplane", "automobile", "bird", "cat", "deer",
             "dog", "frog", "horse", "ship", "truck"),
    aliases=("cifar-10", "cifar_10"),
    unofficial_folders=("cifar-10-jpeg",),
    citation=("A. Krizhevsky, 'Learning Multiple Layers of Features from Tiny Images', "
              "Technical Report, University of Toronto, 2009."),
)

DATASETS: dict[str, DatasetSpec] = {s.name: s for s in (MNIST, FASHION_MNIST, CIFAR10)}


def dataset_names() -> tuple[str, ...]:
    """The canonical dataset names, in a stable order."""
    return tuple(DATASETS)


def get_spec(name: str) -> DatasetSpec:
    """Look a dataset up by canonical name or alias (case-insensitive).

    Raises ``DatasetError`` listing the known names when ``name`` is unknown.
    """
    from .errors import DatasetError

    if isinstance(name, DatasetSpec):
        return name
    key = str(name).strip().lower()
    for spec in DATASETS.values():
        if key == spec.name or key in spec.aliases:
            return spec
    raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
