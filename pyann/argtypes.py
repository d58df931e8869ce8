"""argparse `type=` functions shared by every command line (python -m pyann, python -m
pyann.cnn_recipes, python -m bench): a bad value becomes argparse's one-line usage error and
exit status 2 where it is parsed, instead of a traceback, a partial output or a value silently
read as something else (`--limit -5` as "all but 5", `--lr nan` as a NaN model)."""
from __future__ import annotations

import argparse
import math
from typing import Callable, List


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


# numpy.random.default_rng refuses negative seeds; say so at parse time
seed = non_negative_int


def positive_float(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A probability-like value in [0, 1): dropout, label smoothing."""
    value = _finite(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def comma_list(item: Callable[[str], object]) -> Callable[[str], List]:
    """"1,2,3" -> [item("1"), item("2"), item("3")]; each item checked by `item`."""
    def parse(text: str) -> List:
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or any(not p for p in parts):
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        return [item(p) for p in parts]
    parse.__name__ = f"comma-separated {getattr(item, '__name__', 'value')}"
    return parse
