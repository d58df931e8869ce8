"""Residual building blocks.

Residual(body, shortcut): y = body(x) + shortcut(x), the shortcut being the identity when None.
PreActBlock: the pre-activation basic block of a WideResNet (He et al. 2016; Zagoruyko &
Komodakis 2016):

    o = relu(bn1(x))
    y = conv2(dropout(relu(bn2(conv1(o))))) + (x            if the shape is kept
                                                proj(o)      otherwise: 1x1 conv, stride s)

The projection reads the pre-activated o, as in the authors' code, so both branches see a
normalised input. Each relu(bn(.)) is one BatchNormReLU2d layer (the fused op pair).

The candidate operations of the substitution study (pyann.substitution), each able to replace a
WRN block of any stride and channel change: InvertedResidual (MobileNetV2), ConvBNBlock (conv +
BN, expand 1 or more), BasicBlock (ResNet, widened middle) and Bottleneck (ResNet). Their
docstrings say exactly what "expand" means in each.
"""
from __future__ import annotations

from .. import ops
from . import init
from .container import Sequential
from .conv_layers import BatchNorm2d, BatchNormReLU2d, Conv2d, Dropout
from .layers import ReLU, ReLU6
from .module import Module, positive_int


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


# ---- candidate operations of the substitution study (issue 14) -----------------------------------
#
# Four post-activation blocks that can stand in for a WRN block (pyann.substitution.candidates).
# Each maps x (N, in_channels, H, W) -> (N, out_channels, Ho, Wo), Ho = (H - 1) // stride + 1,
# the shape of a WRN block with that stride. "expand" means something different in each; every
# class docstring says exactly what.

def _checked_sizes(owner: str, in_channels, out_channels, stride, expand) -> tuple:
    """The four constructor sizes as ints, else ValueError (they also come from model files)."""
    return tuple(positive_int(owner, name, value) for name, value in (
        ("in_channels", in_channels), ("out_channels", out_channels), ("stride", stride),
        ("expand", expand)))


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int, rng,
             groups: int = 1) -> list:
    """[conv (no bias: the BN after it has one), BN]: 'same' padding for odd kernels."""
    return [Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups,
                   bias=False, rng=rng),
            BatchNorm2d(out_channels)]


def _projection(in_channels: int, out_channels: int, stride: int, rng) -> Module | None:
    """ResNet's shortcut: None (identity) when the shape is kept, else 1x1 conv(stride) + BN."""
    if in_channels == out_channels and stride == 1:
        return None
    return Sequential(*_conv_bn(in_channels, out_channels, 1, stride, rng))


class _ChainBlock:
    """y = post(body(x) + skip(x)) for the candidate blocks below (a mixin before Module, so
    that it is not itself a registered module type).

    body: child layers run in order; skip: "identity", a child module (projection shortcut) or
    None (no residual sum at all); post: a last activation after the sum, or None. Subclasses
    build their layers with _set_layers and keep their constructor arguments for config().
    """

    def _set_layers(self, body: list, skip, post: Module | None = None) -> None:
        for name, layer in body:
            setattr(self, name, self.add_module(name, layer))   # block.conv1, as in PreActBlock
        self._body = [layer for _, layer in body]
        self._skip = skip if skip in (None, "identity") else self.add_module("shortcut", skip)
        self.shortcut = skip if isinstance(skip, Module) else None
        self._post = None if post is None else self.add_module("out_relu", post)

    def set_input_grad(self, enabled):
        # LANA trains a candidate on activations, whose gradient nobody reads: the first
        # convolutions may then skip computing it
        super().set_input_grad(enabled)
        self._body[0].set_input_grad(enabled)
        if isinstance(self._skip, Module):
            self._skip.set_input_grad(enabled)
        return self

    def forward(self, x):
        h = x
        for layer in self._body:
            h = layer.forward(h)
        if self._skip is not None:
            skip = x if self._skip == "identity" else self._skip.forward(x)
            h, _ = ops.add_forward(h, skip)
        return h if self._post is None else self._post.forward(h)

    def backward(self, dy):
        if self._post is not None:
            dy = self._post.backward(dy)
        dh = dy
        for layer in reversed(self._body):
            dh = layer.backward(dh)
        if self._skip is None:
            return dh
        d_skip = dy if self._skip == "identity" else self._skip.backward(dy)
        if not self.input_grad:
            return None
        return dh + d_skip

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "stride": self.stride, "expand": self.expand}


class InvertedResidual(_ChainBlock, Module):
    """MobileNetV2's inverted residual (Sandler et al. 2018). x (N, in_channels, H, W) ->
    (N, out_channels, Ho, Wo).

        expand_conv: 1x1 conv in_channels -> hidden = expand * in_channels, BN, ReLU6
                     (left out when expand == 1, as in MobileNetV2)
        dw:          3x3 depthwise conv (stride, groups = hidden), BN, ReLU6
        project:     1x1 conv hidden -> out_channels, BN, no activation (the "linear bottleneck")
        y = project(...) + x   only when in_channels == out_channels and stride == 1

    expand: MobileNetV2's expansion factor t, relative to the INPUT channels (default 6).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expand: int = 6, rng=None):
        super().__init__()
        self.in_channels, self.out_channels, self.stride, self.expand = _checked_sizes(
            "InvertedResidual", in_channels, out_channels, stride, expand)
        rng = init.as_generator(rng)
        hidden = self.expand * self.in_channels
        body = []
        if self.expand != 1:
            body += zip(("expand_conv", "bn1", "relu1"),
                        _conv_bn(self.in_channels, hidden, 1, 1, rng) + [ReLU6()])
        body += zip(("dw", "bn2", "relu2"),
                    _conv_bn(hidden, hidden, 3, self.stride, rng, groups=hidden) + [ReLU6()])
        body += zip(("project", "bn3"), _conv_bn(hidden, self.out_channels, 1, 1, rng))
        keeps_shape = self.in_channels == self.out_channels and self.stride == 1
        self._set_layers(body, "identity" if keeps_shape else None)


class ConvBNBlock(_ChainBlock, Module):
    """The paper's "convolution block: simple convolution and BatchNorm, expand none / 2x",
    defined as the fused conv block of LANA / EfficientNetV2 (Fused-MBConv) without its skip
    connection. x (N, in_channels, H, W) -> (N, out_channels, Ho, Wo).

        expand == 1:  3x3 conv(stride) in_channels -> out_channels, BN, ReLU
        expand == e > 1:  3x3 conv(stride) in_channels -> e * out_channels, BN, ReLU,
                          1x1 conv e * out_channels -> out_channels, BN   (no activation)

    expand: the width of the 3x3 convolution's output relative to the OUTPUT channels. There is
    no residual sum (a "simple" block); the residual candidates are BasicBlock and Bottleneck.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expand: int = 1, rng=None):
        super().__init__()
        self.in_channels, self.out_channels, self.stride, self.expand = _checked_sizes(
            "ConvBNBlock", in_channels, out_channels, stride, expand)
        rng = init.as_generator(rng)
        wide = self.expand * self.out_channels
        body = list(zip(("conv1", "bn1", "relu1"),
                        _conv_bn(self.in_channels, wide, 3, self.stride, rng) + [ReLU()]))
        if self.expand != 1:
            body += zip(("conv2", "bn2"), _conv_bn(wide, self.out_channels, 1, 1, rng))
        self._set_layers(body, None)


class BasicBlock(_ChainBlock, Module):
    """ResNet's basic block (He et al. 2016, post-activation) with a widened middle.
    x (N, in_channels, H, W) -> (N, out_channels, Ho, Wo).

        body:     3x3 conv(stride) in_channels -> expand * out_channels, BN, ReLU,
                  3x3 conv expand * out_channels -> out_channels, BN
        shortcut: identity when in_channels == out_channels and stride == 1,
                  else 1x1 conv(stride) in_channels -> out_channels, BN
        y = relu(body(x) + shortcut(x))

    expand: the width of the middle (between the two 3x3 convs) relative to the OUTPUT channels
    (default 2; expand 1 is the plain ResNet basic block).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expand: int = 2, rng=None):
        super().__init__()
        self.in_channels, self.out_channels, self.stride, self.expand = _checked_sizes(
            "BasicBlock", in_channels, out_channels, stride, expand)
        rng = init.as_generator(rng)
        mid = self.expand * self.out_channels
        body = list(zip(("conv1", "bn1", "relu1", "conv2", "bn2"),
                        _conv_bn(self.in_channels, mid, 3, self.stride, rng) + [ReLU()]
                        + _conv_bn(mid, self.out_channels, 3, 1, rng)))
        skip = _projection(self.in_channels, self.out_channels, self.stride, rng)
        self._set_layers(body, "identity" if skip is None else skip, ReLU())


class Bottleneck(_ChainBlock, Module):
    """ResNet's bottleneck block (He et al. 2016, post-activation; stride on the 3x3 conv).
    x (N, in_channels, H, W) -> (N, out_channels, Ho, Wo).

        mid = max(1, out_channels // expand)
        body:     1x1 conv in_channels -> mid, BN, ReLU,
                  3x3 conv(stride) mid -> mid, BN, ReLU,
                  1x1 conv mid -> out_channels, BN
        shortcut: as in BasicBlock (identity, or 1x1 conv(stride) + BN)
        y = relu(body(x) + shortcut(x))

    expand: ResNet's "expansion", output channels = expand x the inner width (default 2; ResNet-50
    uses 4). A larger expand makes the block narrower inside, unlike the other three blocks.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expand: int = 2, rng=None):
        super().__init__()
        self.in_channels, self.out_channels, self.stride, self.expand = _checked_sizes(
            "Bottleneck", in_channels, out_channels, stride, expand)
        rng = init.as_generator(rng)
        mid = max(1, self.out_channels // self.expand)
        body = list(zip(("conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "conv3", "bn3"),
                        _conv_bn(self.in_channels, mid, 1, 1, rng) + [ReLU()]
                        + _conv_bn(mid, mid, 3, self.stride, rng) + [ReLU()]
                        + _conv_bn(mid, self.out_channels, 1, 1, rng)))
        skip = _projection(self.in_channels, self.out_channels, self.stride, rng)
        self._set_layers(body, "identity" if skip is None else skip, ReLU())
