"""Shared test setup: the real-data location and a seeded generator."""
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "datasets"


def real_data_root():
    """$PYANN_DATA, else ../shared/datasets beside the checkout, else None."""
    env = os.environ.get("PYANN_DATA")
    if env and Path(env).is_dir():
        return Path(env)
    return SHARED_DATA if SHARED_DATA.is_dir() else None


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def data_root():
    root = real_data_root()
    if root is None:
        pytest.skip("real datasets not found: set PYANN_DATA to a folder holding mnist/ etc.")
    return root


@pytest.fixture
def data_stand_in(monkeypatch):
    """For tests that hand a command in-memory data (pyann.data.load replaced): the commands'
    dataset search (pyann.data.locate, which would download when nothing is found) and its header
    line are replaced too, so such a test runs the same with or without the real datasets."""
    import pyann.data
    monkeypatch.setattr(pyann.data, "locate", lambda name, *args, **kwargs: None)
    monkeypatch.setattr(pyann.data, "describe_source", lambda found: "data: in-memory stand-in (test)")
