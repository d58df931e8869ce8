"""cffi build script for pyann._kernels (API / out-of-line mode).

The C API is read from the one header, csrc/pyann_kernels.h, between its BEGIN/END CFFI API
markers, so a kernel is declared in exactly one place. Set PYANN_PORTABLE=1 to build without
-march=native (a binary that runs on any x86-64, with the scalar/SSE2 fallback paths),
PYANN_NO_OPENMP=1 to build single-threaded, and PYANN_SANITIZE=1 for AddressSanitizer and
UndefinedBehaviorSanitizer (any report aborts).

`python csrc/build_kernels.py DIR` builds the extension into DIR/pyann/ instead of in place: `make
sanitize` builds there and points PYANN_KERNELS_DIR at it (see pyann/kernels.py).
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


def _on(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"]


def compile_flags() -> list:
    flags = ["-O3", "-std=c11", "-fno-math-errno"]
    if _on("PYANN_SANITIZE"):
        flags = ["-O1", "-std=c11", "-fno-math-errno"] + SANITIZE
    if _on("PYANN_PORTABLE"):
        flags.append("-mtune=generic")
    else:
        flags.append("-march=native")
    return flags


def openmp_flags() -> list:
    if _on("PYANN_NO_OPENMP") or sys.platform == "darwin":
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
    extra_link_args=openmp_flags() + (SANITIZE if _on("PYANN_SANITIZE") else []),
)

if __name__ == "__main__":
    os.chdir(HERE.parent)   # the sources are named relative to the repository root
    ffibuilder.compile(tmpdir=sys.argv[1] if len(sys.argv) > 1 else ".", verbose=True)
