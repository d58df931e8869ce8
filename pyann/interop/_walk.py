"""The module tree as (dotted name, module) pairs, parents before children."""
from __future__ import annotations

from typing import Iterator, Tuple

from ..nn.module import Module


def named_modules(module: Module, prefix: str = "") -> Iterator[Tuple[str, Module]]:
    yield prefix, module
    for name, child in module.children():
        yield from named_modules(child, f"{prefix}.{name}" if prefix else name)


def require(package: str):
    """Import an optional dependency or say how to install it."""
    import importlib
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ImportError(f"pyann.interop needs {package}: pip install -e \".[interop]\" "
                          f"(or pip install {package})") from None
