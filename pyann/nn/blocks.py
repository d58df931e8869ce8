"""Residual building blocks.

Residual(body, shortcut): y = body(x) + shortcut(x), the shortcut being the identity when None.
PreActBlock: the pre-activation basic block of a WideResNet (He et al. 2016; Zagoruyko &
Komodakis 2016):

    o = relu(bn1(x))
    y = conv2(dropout(relu(bn2(conv1(o))))) + (x            if the shape is kept
                                                proj(o)      otherwise: 1x1 conv, stride s)

The projection reads the pre-activated o, as in the authors' code, so both branches see a
normalised input. Each relu(bn(.)) is one BatchNormReLU2d layer (the fused op pair).
"""
from __future__ import annotations

from .. import ops
from .container import Sequential
from .conv_layers import BatchNorm2d, BatchNormReLU2d, Conv2d, Dropout
from .layers import ReLU
from .module import Module


class Residual(Module):
    """y = body(x) + shortcut(x); shortcut None is the identity. Shapes must agree."""

    def __init__(self, body: Module, shortcut: Module | None = None):
        super().__init__()
        self.body = self.add_module("body", body)
        self.shortcut = self.add_module("shortcut", shortcut) if shortcut is not None else None

    def forward(self, x):
        skip = x if self.shortcut is None else self.shortcut.forward(x)
        y, _ = ops.add_forward(self.body.forward(x), skip)
        return y

    def backward(self, dy):
        d_body, d_skip = ops.add_backward(dy, None)
        dx = self.body.backward(d_body)
        return dx + (d_skip if self.shortcut is None else self.shortcut.backward(d_skip))

    def config(self):
        return {"body": self.body.spec(),
                "shortcut": None if self.shortcut is None else self.shortcut.spec()}

    @classmethod
    def from_config(cls, config):
        sc = config.get("shortcut")
        return cls(Module.from_spec(config["body"]), None if sc is None else Module.from_spec(sc))


class PreActBlock(Module):
    """x (N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride).

    Children: bn1 (BN + ReLU), conv1 (3x3, stride), bn2 (BN + ReLU), [dropout], conv2 (3x3), and
    shortcut (1x1 conv, stride, no bias) when in_channels != out_channels or stride != 1.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dropout: float = 0.0,
                 rng=None, seed: int = 0):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.dropout, self.seed = dropout, seed
        self.bn1 = self.add_module("bn1", BatchNormReLU2d(in_channels))
        self.conv1 = self.add_module("conv1", Conv2d(in_channels, out_channels, 3, stride, 1, bias=False, rng=rng))
        self.bn2 = self.add_module("bn2", BatchNormReLU2d(out_channels))
        self.drop = self.add_module("dropout", Dropout(dropout, seed)) if dropout > 0 else None
        self.conv2 = self.add_module("conv2", Conv2d(out_channels, out_channels, 3, 1, 1, bias=False, rng=rng))
        self.shortcut = None
        if in_channels != out_channels or stride != 1:
            self.shortcut = self.add_module("shortcut", Conv2d(in_channels, out_channels, 1, stride, 0,
                                                               bias=False, rng=rng))

    def forward(self, x):
        o = self.bn1.forward(x)
        h = self.bn2.forward(self.conv1.forward(o))
        if self.drop is not None:
            h = self.drop.forward(h)
        skip = x if self.shortcut is None else self.shortcut.forward(o)
        y, _ = ops.add_forward(self.conv2.forward(h), skip)
        return y

    def backward(self, dy):
        d_body, d_skip = ops.add_backward(dy, None)
        dh = self.conv2.backward(d_body)
        if self.drop is not None:
            dh = self.drop.backward(dh)
        do = self.conv1.backward(self.bn2.backward(dh))
        if self.shortcut is not None:
            do += self.shortcut.backward(d_skip)
        dx = self.bn1.backward(do)
        if self.shortcut is None:
            dx += d_skip
        return dx

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "stride": self.stride, "dropout": self.dropout, "seed": self.seed}


def basic_residual(in_channels: int, out_channels: int, stride: int = 1, rng=None) -> Residual:
    """A post-activation style residual made from containers, for custom architectures:
    body = conv3x3(stride)-BN-ReLU-conv3x3-BN, shortcut = 1x1 conv + BN where the shape changes."""
    body = Sequential(Conv2d(in_channels, out_channels, 3, stride, 1, bias=False, rng=rng),
                      BatchNorm2d(out_channels), ReLU(),
                      Conv2d(out_channels, out_channels, 3, 1, 1, bias=False, rng=rng),
                      BatchNorm2d(out_channels))
    shortcut = None
    if in_channels != out_channels or stride != 1:
        shortcut = Sequential(Conv2d(in_channels, out_channels, 1, stride, 0, bias=False, rng=rng),
                              BatchNorm2d(out_channels))
    return Residual(body, shortcut)
