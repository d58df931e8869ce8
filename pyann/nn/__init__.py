"""Layers that hold parameters, containers, the model zoo and model files."""
from .container import Sequential
from .layers import Flatten, Identity, Linear, ReLU, ReLU6
from .module import Module, Parameter
from .serialization import load, load_into, save
from .zoo import build
from . import init, zoo
