"""Stateless NumPy ops as forward/backward pairs.

`*_forward(inputs...) -> (output, cache)` and `*_backward(d_output, cache) -> d_inputs`; the
shapes are in each docstring. Layers in pyann.nn hold parameters and call these.
"""
from .activations import relu6_backward, relu6_forward, relu_backward, relu_forward
from .linear import linear_backward, linear_forward
from .losses import (mse_backward, mse_forward, softmax, softmax_cross_entropy_backward,
                     softmax_cross_entropy_forward)
