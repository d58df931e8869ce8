"""Model zoo: the papers' networks by name. `build(name, **kwargs)` returns a fresh model."""
from __future__ import annotations

from typing import Callable, Dict

from . import init
from .container import Sequential
from .layers import Flatten, Linear, ReLU

MODELS: Dict[str, Callable] = {}


def register(name: str):
    def wrap(fn):
        MODELS[name] = fn
        return fn
    return wrap


def mlp(sizes, rng=None) -> Sequential:
    """Flatten, then Linear+ReLU for each hidden size, and a final Linear (logits).
    sizes = [in, hidden..., out]. He init for ReLU layers, Glorot for the logits."""
    rng = init.as_generator(rng)
    layers = [Flatten()]
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        layers.append(Linear(d_in, d_out, init_name="glorot_uniform" if last else "he_normal", rng=rng))
        if not last:
            layers.append(ReLU())
    return Sequential(*layers)


@register("mlp5")
def mlp5(rng=None, in_features: int = 784, classes: int = 10) -> Sequential:
    """ReLU-prediction paper: 784-512-512-512-512-10."""
    return mlp([in_features, 512, 512, 512, 512, classes], rng)


@register("fcn1")
def fcn1(rng=None, in_features: int = 784, classes: int = 10) -> Sequential:
    """Connection-pruning paper FCN-1: 784-10 (softmax regression)."""
    return mlp([in_features, classes], rng)


@register("fcn2")
def fcn2(rng=None, in_features: int = 784, classes: int = 10) -> Sequential:
    """Connection-pruning paper FCN-2: 784-300-100-10."""
    return mlp([in_features, 300, 100, classes], rng)


def build(name: str, **kwargs):
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; the zoo has {sorted(MODELS)}") from None
    return factory(**kwargs)
