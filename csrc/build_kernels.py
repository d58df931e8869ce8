"""cffi build script for pyann._kernels (API / out-of-line mode).

The C API is read from the one header, csrc/pyann_kernels.h, between its BEGIN/END CFFI API
markers, so a kernel is declared in exactly one place. Set PYANN_PORTABLE=1 to build without
-march=native (a binary that runs on any x86-64, with the scalar/SSE2 fallback paths), and
PYANN_NO_OPENMP=1 to build single-threaded.
"""
import os
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
HEADER = HERE / "pyann_kernels.h"
SOURCES = sorted(str(p.relative_to(HERE.parent)) for p in HERE.glob("*.c"))


def c_api(header: Path) -> str:
    text = header.read_text()
    start = text.index("/* BEGIN CFFI API */") + len("/* BEGIN CFFI API */")
    return text[start:text.index("/* END CFFI API */")]


def compile_flags() -> list:
    flags = ["-O3", "-std=c11", "-fno-math-errno"]
    if os.environ.get("PYANN_PORTABLE", "") not in ("", "0"):
        flags.append("-mtune=generic")
    else:
        flags.append("-march=native")
    return flags


def openmp_flags() -> list:
    if os.environ.get("PYANN_NO_OPENMP", "") not in ("", "0") or sys.platform == "darwin":
        return []
    return ["-fopenmp"]


ffibuilder = FFI()
ffibuilder.cdef(c_api(HEADER))
ffibuilder.set_source(
    "pyann._kernels",
    '#include "pyann_kernels.h"',
    sources=SOURCES,
    include_dirs=[str(HERE.relative_to(HERE.parent))],
    extra_compile_args=compile_flags() + openmp_flags(),
    extra_link_args=openmp_flags(),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
