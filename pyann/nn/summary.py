"""model.summary(): per layer the output shape, parameters and multiply-adds, with totals.

The shapes come from a dry run on one zero sample in eval mode (no running statistic or random
state changes): every module's forward is wrapped for the run, and each leaf layer records what
it returned, in the order it ran. Multiply-adds count the Linear and Conv2d products per sample
(what inference spends its time on); normalisation, pooling and activations are not counted.
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

import numpy as np

from .module import Module


@dataclasses.dataclass
class LayerRow:
    name: str                 # dotted path in the model ("block1.conv1")
    kind: str                 # module type
    output_shape: tuple       # one sample's output, without the batch axis
    params: int
    macs: int                 # multiply-adds per sample


@dataclasses.dataclass
class ModelSummary:
    model: str
    input_shape: tuple
    rows: List[LayerRow]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.rows)

    def to_dict(self) -> dict:
        return {"model": self.model, "input_shape": list(self.input_shape),
                "layers": [dataclasses.asdict(r) | {"output_shape": list(r.output_shape)} for r in self.rows],
                "total_params": self.total_params, "total_macs": self.total_macs}

    def __str__(self) -> str:
        from tabulate import tabulate
        table = [(r.name, r.kind, "x".join(map(str, r.output_shape)), f"{r.params:,}", f"{r.macs:,}")
                 for r in self.rows]
        table.append(("total", "", "", f"{self.total_params:,}", f"{self.total_macs:,}"))
        body = tabulate(table, headers=("layer", "type", "output", "params", "MACs"),
                        colalign=("left", "left", "left", "right", "right"))
        shape = "x".join(map(str, self.input_shape))
        return (f"{self.model}, input {shape} per sample\n{body}\n"
                f"MACs: multiply-adds per sample of the Linear and Conv2d layers.")

    __repr__ = __str__


def default_input_shape(model: Module) -> tuple:
    """One sample's input shape when the model says it: a WideResNet's (C, size, size); a
    Sequential whose first layer that computes is a Linear: (in_features,)."""
    from .container import Sequential
    from .layers import Linear
    from .wrn import WideResNet
    if isinstance(model, WideResNet):
        return (model.in_channels, model.input_size, model.input_size)
    if isinstance(model, Sequential):
        for layer in model.layers:
            if isinstance(layer, Linear):
                return (layer.in_features,)
            if not getattr(layer, "reshapes_only", False):
                break
    raise ValueError(f"this {type(model).__name__} does not say its input shape: pass input_shape, "
                     f"one sample's shape such as (1, 28, 28)")


def _macs(module: Module, out_shape: tuple) -> int:
    kind = type(module).__name__
    if kind == "Linear":
        return module.in_features * module.out_features
    if kind == "Conv2d":
        per_output = module.in_channels // module.groups * module.kernel_size ** 2
        return int(np.prod(out_shape)) * per_output
    return 0


def _tree(module: Module, prefix: str = ""):
    yield prefix, module
    for name, child in module.children():
        yield from _tree(child, f"{prefix}.{name}" if prefix else name)


def summary(model: Module, input_shape: Optional[Tuple[int, ...]] = None) -> ModelSummary:
    """The table of model's leaf layers in the order they run (see the module docstring).
    input_shape: one sample's shape; default: default_input_shape(model)."""
    shape = tuple(int(d) for d in (input_shape if input_shape is not None else default_input_shape(model)))
    rows: List[LayerRow] = []
    modules = list(_tree(model))

    def recording(name, module):
        run = module.forward

        def forward(x):
            y = run(x)
            if not module._children:
                params = sum(p.data.size for p in module._params.values())
                out = tuple(y.shape[1:])
                rows.append(LayerRow(name, type(module).__name__, out, int(params), _macs(module, out)))
            return y
        return forward

    was_training = model.training
    model.eval()
    for name, module in modules:
        module.forward = recording(name, module)
    try:
        model.forward(np.zeros((1,) + shape, np.float32))
    except ValueError as exc:
        raise ValueError(f"summary: input_shape {shape} does not fit the model: {exc}") from None
    finally:
        for _, module in modules:
            del module.forward    # back to the class's method
        model.train(was_training)
    return ModelSummary(type(model).__name__, shape, rows)
