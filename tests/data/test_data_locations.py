"""The search locations added for the quickstart: ../shared/datasets beside the checkout, a
root that does not exist is an error (never a fall-back), offline mode, and the one-line
description of where a dataset came from that every command prints."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

import pyann
import pyann.data.resolution as resolution
from pyann.data import DatasetNotFoundError, describe_source, load_mnist, locate


def test_the_checkout_location_is_shared_datasets_beside_the_repository():
    repo = Path(pyann.__file__).resolve().parents[1]
    assert resolution._checkout_dirs() == (repo.parent / "shared" / "datasets",)


def test_data_beside_the_checkout_is_found_and_listed(tmp_path, monkeypatch, build):
    shared = tmp_path / "shared" / "datasets"
    monkeypatch.setattr(resolution, "CHECKOUT_DIRS", (shared,))
    with pytest.raises(DatasetNotFoundError) as err:
        locate("mnist", allow_unofficial=True)
    assert f"{resolution.CHECKOUT_LABEL}: {shared / 'mnist'}: no such folder" in str(err.value)
    build.write_mnist(shared / "mnist")
    found = locate("mnist", allow_unofficial=True)
    assert found.source == resolution.CHECKOUT_LABEL and found.folder == shared / "mnist"


def test_a_root_that_does_not_exist_is_an_error_not_a_fall_back(tmp_path, monkeypatch, build):
    build.write_mnist(tmp_path / "env" / "mnist")
    monkeypatch.setenv("PYANN_DATA", str(tmp_path / "env"))
    assert locate("mnist", allow_unofficial=True).source == "$PYANN_DATA"
    missing = tmp_path / "typo"
    with pytest.raises(DatasetNotFoundError, match="data root .*typo does not exist"):
        load_mnist(root=missing, allow_unofficial=True)
    assert not missing.exists()


def _serving(folder: Path, calls: list):
    def opener(url, timeout=60.0):
        calls.append(url)
        data = (folder / url.rsplit("/", 1)[1]).read_bytes()
        response = io.BytesIO(data)
        response.headers = {"Content-Length": str(len(data))}
        return response
    return opener


@pytest.mark.realdata
def test_download_fetches_into_root_and_checks_md5(tmp_path, real_data):
    calls = []
    target = tmp_path / "new-root"
    with pytest.raises(DatasetNotFoundError, match="does not exist"):   # not even with download=True
        locate("mnist", target, download=True, opener=_serving(real_data / "mnist", calls))
    target.mkdir()
    found = locate("mnist", target, download=True, opener=_serving(real_data / "mnist", calls), progress=False)
    assert found.official and found.source == "download" and len(calls) == 4
    assert found.folder == target / "mnist" and len(found.downloaded) == 4
    assert "downloaded, md5 checked" in describe_source(found)


def test_offline_mode_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("PYANN_OFFLINE", "1")
    calls = []
    with pytest.raises(DatasetNotFoundError) as err:
        locate("mnist", download=True, opener=_serving(tmp_path, calls))
    assert calls == [] and "download: off (offline mode: $PYANN_OFFLINE is set)" in str(err.value)
    monkeypatch.setenv("PYANN_OFFLINE", "0")
    assert not resolution.offline()


def test_describe_source_says_folder_and_official(tmp_path, build):
    build.write_mnist(tmp_path / "mnist")
    found = locate("mnist", tmp_path, allow_unofficial=True)
    line = describe_source(found)
    assert line.startswith("data: MNIST from ") and str(tmp_path / "mnist") in line
    assert "via root= argument" in line and "UNOFFICIAL" in line
