"""Image layers (NCHW): Conv2d, BatchNorm2d, BatchNormReLU2d, MaxPool2d, AvgPool2d, GlobalAvgPool,
Dropout. Each holds its parameters/buffers and calls its op pair from pyann.ops."""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import ops
from . import init
from .module import Module, positive_int


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _check_image(layer, x, channels):
    if x.ndim != 4:
        raise ValueError(f"{layer} expects input of rank 4 (N, C, H, W), got shape {x.shape}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{layer} expects {channels} input channels, got {x.shape[1]} (shape {x.shape})")


class Conv2d(Module):
    """x (N, in_channels, H, W) -> y (N, out_channels, Ho, Wo); see pyann.ops.conv.

    weight (out_channels, in_channels / groups, k, k), He-initialised with
    fan_in = in_channels / groups * k * k. groups == in_channels == out_channels is depthwise.
    The weight is prunable (Module.set_mask); backward then returns zero gradient for its
    pruned entries.
    """

    prunable = ("weight",)

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, bias: bool = True,
                 init_name: str = "he_normal", rng=None):
        super().__init__()
        in_channels, out_channels, kernel_size, stride, dilation, groups = (
            positive_int("Conv2d", name, value) for name, value in (
                ("in_channels", in_channels), ("out_channels", out_channels),
                ("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation),
                ("groups", groups)))
        padding = positive_int("Conv2d", "padding", padding, minimum=0)
        if not isinstance(bias, (bool, np.bool_)):
            raise ValueError(f"Conv2d: bias must be True or False, got {bias!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels={in_channels} and out_channels={out_channels} "
                             f"must both be divisible by groups={groups}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.init_name = init_name
        rng = init.as_generator(rng)
        shape = (out_channels, in_channels // groups, kernel_size, kernel_size)
        fan_in = in_channels // groups * kernel_size ** 2
        fan_out = out_channels // groups * kernel_size ** 2
        self.weight = self.add_parameter("weight", init.get(init_name)(shape, fan_in, fan_out, rng))
        self.bias = self.add_parameter("bias", init.zeros(out_channels), decay=False) if bias else None
        self._workspace = {}   # the im2col buffer, reused across steps
        self._cache = None

    def forward(self, x):
        _check_image(f"Conv2d({self.in_channels}, {self.out_channels})", x, self.in_channels)
        y, self._cache = ops.conv2d_forward(x, self.weight.data, self.bias.data if self.bias else None,
                                            self.stride, self.padding, self.dilation, self.groups,
                                            workspace=self._workspace if self.training else None)
        return y

    def backward(self, dy):
        dx, dw, db = ops.conv2d_backward(dy, self._cache, self.input_grad)
        self._cache = None   # drop the columns: they are the largest array a step holds
        self.weight.grad = dw if self.weight.mask is None else np.where(self.weight.mask, dw, dw.dtype.type(0))
        if self.bias is not None:
            self.bias.grad = db
        return dx

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding,
                "dilation": self.dilation, "groups": self.groups, "bias": self.bias is not None,
                "init_name": self.init_name}


class BatchNorm2d(Module):
    """Per-channel batch normalisation of (N, C, H, W). gamma/beta are exempt from weight decay;
    running_mean/running_var are buffers (saved with the model, updated in train mode)."""

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        num_features = positive_int(type(self).__name__, "num_features", num_features)
        if not (_is_real(momentum) and 0.0 <= momentum <= 1.0 and _is_real(eps) and 0.0 < eps < math.inf):
            raise ValueError(f"{type(self).__name__}: momentum must be in [0, 1] and eps a positive "
                             f"number, got momentum={momentum!r}, eps={eps!r}")
        self.num_features, self.momentum, self.eps = num_features, momentum, eps
        self.gamma = self.add_parameter("gamma", init.ones(num_features), decay=False)
        self.beta = self.add_parameter("beta", init.zeros(num_features), decay=False)
        self.add_buffer("running_mean", init.zeros(num_features))
        self.add_buffer("running_var", init.ones(num_features))

    # the op pair; BatchNormReLU2d swaps in the fused one and keeps everything else
    forward_op = staticmethod(ops.batchnorm2d_forward)
    backward_op = staticmethod(ops.batchnorm2d_backward)

    def forward(self, x):
        _check_image(f"{type(self).__name__}({self.num_features})", x, self.num_features)
        y, self._cache = self.forward_op(
            x, self.gamma.data, self.beta.data, self._buffers["running_mean"],
            self._buffers["running_var"], self.training, self.momentum, self.eps)
        return y

    def backward(self, dy):
        dx, self.gamma.grad, self.beta.grad = self.backward_op(dy, self._cache)
        self._cache = None
        return dx

    def config(self):
        return {"num_features": self.num_features, "momentum": self.momentum, "eps": self.eps}


class BatchNormReLU2d(BatchNorm2d):
    """relu(BatchNorm2d(x)) as one layer (the fused op pair); same parameters and buffers."""

    forward_op = staticmethod(ops.batchnorm2d_relu_forward)
    backward_op = staticmethod(ops.batchnorm2d_relu_backward)


class MaxPool2d(Module):
    """(N, C, H, W) -> (N, C, Ho, Wo), max over kernel x kernel windows (stride defaults to kernel)."""

    def __init__(self, kernel_size: int = 2, stride: int | None = None, padding: int = 0):
        super().__init__()
        name = type(self).__name__
        kernel_size = positive_int(name, "kernel_size", kernel_size)
        stride = None if stride is None else positive_int(name, "stride", stride)
        padding = positive_int(name, "padding", padding, minimum=0)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        y, self._cache = ops.maxpool2d_forward(x, self.kernel_size, self.stride, self.padding)
        return y

    def backward(self, dy):
        return ops.maxpool2d_backward(dy, self._cache)

    def config(self):
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}


class AvgPool2d(MaxPool2d):
    """(N, C, H, W) -> (N, C, Ho, Wo), mean over kernel x kernel windows."""

    def forward(self, x):
        y, self._cache = ops.avgpool2d_forward(x, self.kernel_size, self.stride, self.padding)
        return y

    def backward(self, dy):
        return ops.avgpool2d_backward(dy, self._cache)


class GlobalAvgPool(Module):
    """(N, C, H, W) -> (N, C), mean over each channel's plane."""

    def forward(self, x):
        y, self._cache = ops.global_avgpool_forward(x)
        return y

    def backward(self, dy):
        return ops.global_avgpool_backward(dy, self._cache)


class Dropout(Module):
    """Inverted dropout with probability p in train mode; identity in eval mode.

    Masks come from a Generator seeded by `seed`, so the same seed gives the same masks;
    `reseed(rng_or_seed)` lets a training loop derive them from its own per-epoch generator.
    """

    def __init__(self, p: float = 0.5, seed: int = 0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout probability must be in [0, 1), got {p}")
        self.p, self.seed = p, seed
        self.rng = np.random.default_rng(seed)

    def reseed(self, rng) -> None:
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self._cache = None
            return x
        y, self._cache = ops.dropout_forward(x, self.p, self.rng)
        return y

    def backward(self, dy):
        return dy if self._cache is None else ops.dropout_backward(dy, self._cache)

    def config(self):
        return {"p": self.p, "seed": self.seed}
