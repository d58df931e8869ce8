"""Basic layers: Linear, ReLU, ReLU6, Flatten, Identity. Each calls its op pair from pyann.ops."""
from __future__ import annotations

import numpy as np

from .. import ops
from . import init
from .module import Module, positive_int


class Linear(Module):
    """y = x @ weight + bias. x (N, in_features) -> y (N, out_features).

    weight (in_features, out_features) is stored the way the C kernels read it. The weight is
    prunable (Module.set_mask); backward then returns zero gradient for its pruned entries.
    """

    prunable = ("weight",)

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 init_name: str = "he_normal", rng=None):
        super().__init__()
        in_features = positive_int("Linear", "in_features", in_features)
        out_features = positive_int("Linear", "out_features", out_features)
        if not isinstance(bias, (bool, np.bool_)):
            raise ValueError(f"Linear: bias must be True or False, got {bias!r}")
        self.in_features, self.out_features, self.init_name = in_features, out_features, init_name
        rng = init.as_generator(rng)
        w = init.get(init_name)((in_features, out_features), in_features, out_features, rng)
        self.weight = self.add_parameter("weight", w)
        self.bias = self.add_parameter("bias", init.zeros(out_features), decay=False) if bias else None
        self._cache = None

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}) expects input (N, "
                             f"{self.in_features}), got {x.shape}")
        y, self._cache = ops.linear_forward(x, self.weight.data, self.bias.data if self.bias else None)
        return y

    def backward(self, dy):
        dx, dw, db = ops.linear_backward(dy, self._cache, self.input_grad)
        self.weight.grad = dw if self.weight.mask is None else np.where(self.weight.mask, dw, dw.dtype.type(0))
        if self.bias is not None:
            self.bias.grad = db
        return dx

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "init_name": self.init_name}


class ReLU(Module):
    """y = max(x, 0), any shape.

    activity_l1 > 0 adds an activity penalty on y while training (ops.activity_l1_backward):
    its gradient joins dy in backward, and the batch's penalty value is kept in
    self.last_penalty. Eval mode and inference are plain ReLU.
    """

    def __init__(self, activity_l1: float = 0.0):
        super().__init__()
        if not activity_l1 >= 0:
            raise ValueError(f"ReLU: activity_l1 must be >= 0, got {activity_l1}")
        self.activity_l1 = float(activity_l1)
        self.last_penalty = 0.0

    def forward(self, x):
        y, self._cache = ops.relu_forward(x)
        self._y = y if self.activity_l1 and self.training else None
        return y

    def backward(self, dy):
        if self._y is not None:
            self.last_penalty, dp = ops.activity_l1_backward(self._y, self.activity_l1)
            dy = dy + dp
        return ops.relu_backward(dy, self._cache)

    def config(self):
        return {"activity_l1": self.activity_l1} if self.activity_l1 else {}


class ReLU6(Module):
    """y = min(max(x, 0), 6), any shape."""

    def forward(self, x):
        y, self._cache = ops.relu6_forward(x)
        return y

    def backward(self, dy):
        return ops.relu6_backward(dy, self._cache)


class Flatten(Module):
    """x (N, d1, d2, ...) -> (N, d1 * d2 * ...)."""

    reshapes_only = True

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return None if dy is None else dy.reshape(self._shape)


class Identity(Module):
    """y = x."""

    reshapes_only = True

    def forward(self, x):
        return x

    def backward(self, dy):
        return dy
