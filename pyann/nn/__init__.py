"""Layers that hold parameters, containers, the model zoo and model files."""
from .container import Sequential
from .layers import Flatten, Identity, Linear, ReLU, ReLU6
from .module import Module, Parameter
from .serialization import load, load_into, save
from .conv_layers import (AvgPool2d, BatchNorm2d, BatchNormReLU2d, Conv2d, Dropout, GlobalAvgPool,
                          MaxPool2d)
from .blocks import (BasicBlock, Bottleneck, ConvBNBlock, InvertedResidual, PreActBlock, Residual,
                     basic_residual)
from .wrn import WideResNet
from .zoo import build
from . import init, zoo
