"""Sequential: modules applied in order; backward runs them in reverse. hidden_layers: an MLP
Sequential's hidden layers (each Linear followed by a ReLU), which ReLU prediction and the
inference plans number alike."""
from __future__ import annotations

from typing import List, Tuple

from .module import Module


class Sequential(Module):
    def __init__(self, *layers: Module):
        super().__init__()
        for i, layer in enumerate(layers):
            self.add_module(str(i), layer)

    @property
    def layers(self) -> list:
        return list(self._children.values())

    def __len__(self) -> int:
        return len(self._children)

    def __getitem__(self, index: int) -> Module:
        return self.layers[index]

    def __setitem__(self, index: int, module: Module) -> None:
        names = list(self._children)
        if not -len(names) <= index < len(names):
            raise IndexError(f"Sequential has {len(names)} layers, no index {index}")
        self.add_module(names[index], module)

    def set_input_grad(self, enabled):
        super().set_input_grad(enabled)
        for layer in self.layers:   # the first layer, past any that only reshape (Flatten)
            layer.set_input_grad(enabled)
            if not layer.reshapes_only:
                break
        return self

    def forward(self, x):
        for layer in self._children.values():
            x = layer.forward(x)
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def config(self):
        return {"layers": [layer.spec() for layer in self.layers]}

    @classmethod
    def from_config(cls, config):
        return cls(*(Module.from_spec(s) for s in config["layers"]))


def hidden_layers(model) -> List[Tuple[int, Module]]:
    """(index in the Sequential, Linear) of each hidden layer, hidden layer 1 first.

    A hidden layer is a Linear directly followed by a ReLU. ValueError if the model is not a
    Sequential or has no Linear at all (not an MLP)."""
    from .layers import Linear, ReLU
    if not isinstance(model, Sequential):
        raise ValueError(f"model must be a pyann.nn.Sequential MLP, got {type(model).__name__}")
    layers = model.layers
    if not any(isinstance(m, Linear) for m in layers):
        raise ValueError("model has no Linear layer; hidden_layers expects an MLP Sequential "
                         "(Flatten, Linear, ReLU, ..., Linear)")
    return [(i, m) for i, m in enumerate(layers)
            if isinstance(m, Linear) and i + 1 < len(layers) and isinstance(layers[i + 1], ReLU)]
