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


def make_builder(absolute: bool = False) -> FFI:
    """The FFI builder; paths relative to the repository root for setup.py, absolute for a build
    elsewhere (cffi compiles inside the target folder)."""
    root = HERE.parent
    name = (lambda p: str(p)) if absolute else (lambda p: str(p.relative_to(root)))
    builder = FFI()
    builder.cdef(c_api(HEADER))
    builder.set_source(
        "pyann._kernels",
        '#include "pyann_kernels.h"',
        sources=[name(p) for p in sorted(HERE.glob("*.c"))],
        include_dirs=[name(HERE)],
        extra_compile_args=compile_flags() + openmp_flags(),
        extra_link_args=openmp_flags() + (SANITIZE if _on("PYANN_SANITIZE") else []),
    )
    return builder


ffibuilder = make_builder()

if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else HERE.parent).resolve()
    make_builder(absolute=True).compile(tmpdir=str(target), verbose=True)
