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


def mlp(sizes, rng=None, activity_l1: float = 0.0) -> Sequential:
    """Flatten, then Linear+ReLU for each hidden size, and a final Linear (logits).
    sizes = [in, hidden..., out]. He init for ReLU layers, Glorot for the logits.
    activity_l1: the training-time activity penalty of every hidden ReLU (see nn.ReLU)."""
    rng = init.as_generator(rng)
    layers = [Flatten()]
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        layers.append(Linear(d_in, d_out, init_name="glorot_uniform" if last else "he_normal", rng=rng))
        if not last:
            layers.append(ReLU(activity_l1))
    return Sequential(*layers)


@register("mlp5")
def mlp5(rng=None, in_features: int = 784, classes: int = 10, activity_l1: float = 0.0) -> Sequential:
    """ReLU-prediction paper: 784-512-512-512-512-10."""
    return mlp([in_features, 512, 512, 512, 512, classes], rng, activity_l1)


@register("fcn1")
def fcn1(rng=None, in_features: int = 784, classes: int = 10) -> Sequential:
    """Connection-pruning paper FCN-1: 784-10 (softmax regression)."""
    return mlp([in_features, classes], rng)


@register("fcn2")
def fcn2(rng=None, in_features: int = 784, classes: int = 10, activity_l1: float = 0.0) -> Sequential:
    """Connection-pruning paper FCN-2: 784-300-100-10."""
    return mlp([in_features, 300, 100, classes], rng, activity_l1)


def build(name: str, **kwargs):
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; the zoo has {sorted(MODELS)}") from None
    return factory(**kwargs)


# ---- convolutional models (issue 4) -------------------------------------------------------------
from .conv_layers import Conv2d, MaxPool2d  # noqa: E402  (appended section, kept self-contained)
from .wrn import WideResNet  # noqa: E402


@register("cnn3")
def cnn3(rng=None, in_channels: int = 1, input_size: int = 28, classes: int = 10) -> Sequential:
    """Connection-pruning paper CNN: conv3x3x32 (same) - ReLU - maxpool2 - conv3x3x64 (same) -
    ReLU - maxpool2 - flatten - linear 3136 -> 10 (for 28x28 inputs)."""
    rng = init.as_generator(rng)
    flat = 64 * (input_size // 4) ** 2
    return Sequential(Conv2d(in_channels, 32, 3, 1, 1, rng=rng), ReLU(), MaxPool2d(2),
                      Conv2d(32, 64, 3, 1, 1, rng=rng), ReLU(), MaxPool2d(2),
                      Flatten(), Linear(flat, classes, init_name="glorot_uniform", rng=rng))


@register("wrn")
def wrn(depth: int = 16, width: int = 2, dropout: float = 0.0, rng=None, classes: int = 10,
        in_channels: int = 3, input_size: int = 32) -> WideResNet:
    """Pre-activation WideResNet-depth-width (operation-substitution paper); see pyann.nn.wrn."""
    return WideResNet(depth, width, dropout, classes, in_channels, input_size, rng=rng)
