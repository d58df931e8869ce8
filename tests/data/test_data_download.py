"""Downloads through a fake opener: mirrors, md5 verification, atomic writes. No network."""

import dataclasses
import gzip
import hashlib
import io
import urllib.error

import numpy as np
import pytest

from pyann.data import DatasetNotFoundError, fetch, load_mnist, locate, read_located
from pyann.data.download import DownloadError, download_file
from pyann.data.registry import MNIST, FileSpec, Variant


class FakeOpener:
    """Serves bytes from a dict {url: bytes}; a missing URL is a 404. Records every request."""

    def __init__(self, content):
        self.content = dict(content)
        self.requests = []

    def __call__(self, url, timeout=None):
        self.requests.append(url)
        if url not in self.content:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        return io.BytesIO(self.content[url])


def _files_under(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture
def served(build):
    """A MNIST-like spec whose official md5s and mirror URLs match synthetic gz files."""
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    arrays = build.make_mnist_arrays(seed=7)
    blobs = {s + ".gz": gzip.compress(build.idx_bytes(a), mtime=0) for s, a in zip(stems, arrays)}
    mirrors = ("https://mirror-a.example/mnist/", "https://mirror-b.example/mnist/")
    files = tuple(
        FileSpec(f.role, f.path, hashlib.md5(blobs[f.path]).hexdigest(),
                 urls=tuple(m + f.path for m in mirrors))
        for f in MNIST.variants[0].files
    )
    spec = dataclasses.replace(MNIST, variants=(Variant("idx-gz", "idx", files),))
    return spec, blobs, arrays, mirrors


def test_download_into_cache_verifies_and_loads(served, isolated_env):
    spec, blobs, arrays, mirrors = served
    opener = FakeOpener({mirrors[0] + name: data for name, data in blobs.items()})
    found = locate(spec, download=True, opener=opener, progress=False)
    assert found.source == "download" and found.official
    assert found.folder == isolated_env.cache / "mnist"
    assert len(found.downloaded) == 4 and len(opener.requests) == 4
    assert [p.name for p in _files_under(found.folder)] == sorted(blobs)  # no .part left over
    ds = read_located(found)
    np.testing.assert_array_equal(ds.x_train[:, 0], arrays[0])
    # The second time the cache is found and nothing is downloaded.
    again = locate(spec, download=True, opener=opener)
    assert again.source == "user cache" and len(opener.requests) == 4


def test_next_mirror_is_tried_after_a_failure(served):
    spec, blobs, _, mirrors = served
    opener = FakeOpener({mirrors[1] + name: data for name, data in blobs.items()})
    found = locate(spec, download=True, opener=opener)
    assert found.official
    assert opener.requests[:2] == [mirrors[0] + "train-images-idx3-ubyte.gz",
                                   mirrors[1] + "train-images-idx3-ubyte.gz"]


def test_md5_mismatch_leaves_nothing_in_the_cache(served, isolated_env):
    spec, blobs, _, mirrors = served
    bad = {m + name: data + b"tampered" for m in mirrors for name, data in blobs.items()}
    with pytest.raises(DatasetNotFoundError) as err:
        locate(spec, download=True, opener=FakeOpener(bad))
    msg = str(err.value)
    assert "download: failed" in msg and "md5 mismatch" in msg
    assert mirrors[0] + "train-images-idx3-ubyte.gz" in msg and mirrors[1] in msg
    assert _files_under(isolated_env.cache) == []


def test_partial_download_keeps_verified_files_only(served, isolated_env):
    spec, blobs, _, mirrors = served
    content = {mirrors[0] + name: data for name, data in blobs.items()}
    content[mirrors[0] + "t10k-images-idx3-ubyte.gz"] += b"x"  # one bad file
    with pytest.raises(DatasetNotFoundError):
        locate(spec, download=True, opener=FakeOpener(content))
    names = [p.name for p in _files_under(isolated_env.cache)]
    assert names == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    # A retry fetches only the missing files.
    content[mirrors[0] + "t10k-images-idx3-ubyte.gz"] = blobs["t10k-images-idx3-ubyte.gz"]
    opener = FakeOpener(content)
    assert locate(spec, download=True, opener=opener).official
    assert len(opener.requests) == 2


def test_download_goes_to_root_when_given(served, tmp_path, isolated_env):
    spec, blobs, _, mirrors = served
    opener = FakeOpener({mirrors[0] + name: data for name, data in blobs.items()})
    found = fetch(spec, root=tmp_path / "mydata", opener=opener)
    assert found.folder == tmp_path / "mydata" / "mnist"
    assert _files_under(isolated_env.cache) == []


def test_fetch_real_registry_urls_with_fake_opener(build, isolated_env):
    """The real MNIST entry: the ossci mirror first, then LeCun's; wrong bytes are refused."""
    opener = FakeOpener({
        "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz": b"not mnist",
    })
    with pytest.raises(DatasetNotFoundError, match="md5 mismatch: expected f68b3c2dcbeaaa9f"):
        fetch("mnist", opener=opener)
    assert opener.requests == [
        "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
        "http://yann.lecun.com/exdb/mnist/train-images-idx3-ubyte.gz",
    ]
    assert _files_under(isolated_env.cache) == []


def test_download_false_never_opens_a_url(build):
    opener = FakeOpener({})
    with pytest.raises(DatasetNotFoundError, match="download: disabled"):
        load_mnist(download=False, opener=opener)
    assert opener.requests == []


def test_interrupted_stream_leaves_no_temp_file(tmp_path):
    class Broken(io.BytesIO):
        def read(self, n=-1):
            if self.tell() > 0:
                raise ConnectionResetError("connection reset")
            return super().read(4)

    dest = tmp_path / "cache" / "file.gz"
    with pytest.raises(DownloadError, match="ConnectionResetError") as err:
        download_file(["https://x.example/file.gz"], dest, None,
                      opener=lambda url, timeout: Broken(b"0123456789"))
    assert "file.gz" in str(err.value)
    assert not (tmp_path / "cache").exists()  # the folder we created is removed too


def test_download_file_without_md5_and_progress_on(tmp_path):
    dest = download_file(["u"], tmp_path / "f.bin", None, progress=True,
                         opener=lambda url, timeout: io.BytesIO(b"abc" * 100000))
    assert dest.read_bytes() == b"abc" * 100000
