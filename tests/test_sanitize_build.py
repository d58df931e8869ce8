"""Under `make sanitize`: the kernels loaded are the sanitizer build, not the installed ones (a
clean run of the other tests would otherwise prove nothing)."""
import os
from pathlib import Path

import pytest

from pyann import kernels


@pytest.mark.skipif("PYANN_KERNELS_DIR" not in os.environ, reason="only under make sanitize")
def test_the_sanitizer_build_is_loaded():
    folder = Path(os.environ["PYANN_KERNELS_DIR"]).resolve()
    assert Path(kernels.extension_file()).resolve().parent == folder / "pyann"
    assert "asan" in Path("/proc/self/maps").read_text()
