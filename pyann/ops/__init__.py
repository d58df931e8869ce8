"""Stateless NumPy ops as forward/backward pairs.

`*_forward(inputs...) -> (output, cache)` and `*_backward(d_output, cache) -> d_inputs`; the
shapes are in each docstring. Layers in pyann.nn hold parameters and call these.
"""
from .activations import activity_l1_backward, relu6_backward, relu6_forward, relu_backward, relu_forward
from .linear import linear_backward, linear_forward
from .losses import (mse_backward, mse_forward, nmse_backward, nmse_forward, softmax, softmax_cross_entropy_backward,
                     softmax_cross_entropy_forward)
from .conv import conv2d_backward, conv2d_forward, conv_output_size
from .pooling import (avgpool2d_backward, avgpool2d_forward, global_avgpool_backward,
                      global_avgpool_forward, maxpool2d_backward, maxpool2d_forward)
from .normalization import (batchnorm2d_backward, batchnorm2d_forward, batchnorm2d_relu_backward,
                            batchnorm2d_relu_forward)
from .dropout import dropout_backward, dropout_forward, dropout_mask
from .residual import add_backward, add_forward
