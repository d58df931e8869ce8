"""pyann <-> PyTorch: state_dicts both ways and a torch.nn.Module mirror of any pyann model.

The per-module-type rules live in one table (_RENAME, _TRANSPOSED) used by both directions, so
loading and exporting cannot disagree.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from .. import nn
from ._walk import named_modules, require

# pyann parameter name -> PyTorch's, per module type (others keep their names)
_RENAME = {"BatchNorm2d": {"gamma": "weight", "beta": "bias"},
           "BatchNormReLU2d": {"gamma": "weight", "beta": "bias"}}
_TRANSPOSED = {("Linear", "weight")}          # pyann (in, out), PyTorch (out, in)
_TORCH_ONLY = "num_batches_tracked"           # a BatchNorm counter pyann does not keep


def torch_name_map(model: nn.Module) -> Dict[str, Tuple[str, bool]]:
    """pyann state name -> (PyTorch state name, transposed?) for every parameter and buffer."""
    out = {}
    for prefix, module in named_modules(model):
        kind = type(module).__name__
        local = [n for n, _ in module._params.items()] + list(module._buffers)
        for name in local:
            torch_local = _RENAME.get(kind, {}).get(name, name)
            full = f"{prefix}.{name}" if prefix else name
            out[full] = (f"{prefix}.{torch_local}" if prefix else torch_local, (kind, name) in _TRANSPOSED)
    return out


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):   # a torch tensor, on any device
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def load_torch_state_dict(model: nn.Module, state: dict, strict: bool = True) -> None:
    """Load a PyTorch state_dict (tensors or arrays) into the matching pyann model, in place.

    Keys follow PyTorch's names (see torch_name_map); Linear weights are transposed. BatchNorm's
    num_batches_tracked is ignored. strict: every key must match; a mismatch raises ValueError
    naming the missing and unexpected PyTorch keys. Nothing changes unless the whole state fits
    (shapes and dtypes are checked by Module.load_state_dict before anything is copied)."""
    names = torch_name_map(model)
    by_torch = {t: (p, tr) for p, (t, tr) in names.items()}
    given = {k: v for k, v in state.items() if not k.endswith(_TORCH_ONLY)}
    missing = sorted(set(by_torch) - set(given))
    unexpected = sorted(set(given) - set(by_torch))
    if strict and (missing or unexpected):
        raise ValueError(f"the PyTorch state_dict does not fit this {type(model).__name__}: missing keys "
                         f"{missing}, unexpected keys {unexpected}")
    converted = {}
    for key in by_torch.keys() & given.keys():
        pyann_name, transposed = by_torch[key]
        a = _to_numpy(given[key])
        if transposed:
            if a.ndim != 2:
                raise ValueError(f"{key}: a Linear weight must be 2-D (out, in), got shape {a.shape}")
            a = a.T
        converted[pyann_name] = np.ascontiguousarray(a)
    try:
        model.load_state_dict(converted, strict=strict)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"the PyTorch state_dict does not fit: {exc.args[0] if exc.args else exc}") from None


def torch_state_dict(model: nn.Module) -> dict:
    """The model's state as a PyTorch state_dict (torch tensors, PyTorch names and layouts),
    loadable with strict=True into to_torch(model) or an equivalent hand-written module."""
    torch = require("torch")
    state = model.state_dict()
    out = {}
    for pyann_name, (torch_name, transposed) in torch_name_map(model).items():
        a = state[pyann_name]
        out[torch_name] = torch.from_numpy(np.ascontiguousarray(a.T if transposed else a))
    for prefix, module in named_modules(model):
        if isinstance(module, nn.BatchNorm2d):
            out[f"{prefix}.{_TORCH_ONLY}" if prefix else _TORCH_ONLY] = torch.tensor(0, dtype=torch.long)
    return out


def to_torch(model: nn.Module):
    """A torch.nn.Module computing what `model` computes (eval-mode semantics), with its weights.
    Module types without a PyTorch counterpart here raise ValueError naming them."""
    torch = require("torch")
    module = _mirror(torch, model)
    module.load_state_dict(torch_state_dict(model), strict=True)
    return module.train(model.training)


def _mirror(torch, m: nn.Module):
    tnn = torch.nn
    kind = type(m).__name__
    if kind == "Sequential":
        return tnn.Sequential(*(_mirror(torch, c) for c in m.layers))
    if kind == "Linear":
        return tnn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
    if kind == "Conv2d":
        return tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                          m.groups, bias=m.bias is not None)
    if kind in ("BatchNorm2d", "BatchNormReLU2d"):
        cls = _batchnorm_relu(torch) if kind == "BatchNormReLU2d" else tnn.BatchNorm2d
        return cls(m.num_features, eps=m.eps, momentum=m.momentum)
    simple = {"ReLU": tnn.ReLU, "ReLU6": tnn.ReLU6, "Flatten": tnn.Flatten, "Identity": tnn.Identity}
    if kind in simple:
        return simple[kind]()
    if kind == "Dropout":
        return tnn.Dropout(m.p)
    if kind == "MaxPool2d":
        return tnn.MaxPool2d(m.kernel_size, m.stride, m.padding)
    if kind == "AvgPool2d":
        return tnn.AvgPool2d(m.kernel_size, m.stride, m.padding, count_include_pad=True)
    if kind == "GlobalAvgPool":
        return tnn.Sequential(tnn.AdaptiveAvgPool2d(1), tnn.Flatten())
    if kind in ("WideResNet", "Residual", "PreActBlock"):
        return _Tree(torch, m, {name: _mirror(torch, c) for name, c in m.children()})
    raise ValueError(f"to_torch: no PyTorch counterpart for {kind}")


def _batchnorm_relu(torch):
    """BatchNorm2d then ReLU as one torch module, so its state names are BatchNorm2d's."""
    class BatchNormReLU2d(torch.nn.BatchNorm2d):
        def forward(self, x):
            return torch.relu(super().forward(x))
    return BatchNormReLU2d


def _Tree(torch, m: nn.Module, children: dict):
    """A container with m's children under m's names, whose forward follows m's forward."""
    kind = type(m).__name__

    class Tree(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for name, child in children.items():
                self.add_module(name, child)

        def forward(self, x):
            c = self._modules
            if kind == "WideResNet":    # the children in order
                for child in c.values():
                    x = child(x)
                return x
            if kind == "Residual":
                return c["body"](x) + (x if c.get("shortcut") is None else c["shortcut"](x))
            o = c["bn1"](x)             # PreActBlock (see pyann/nn/blocks.py)
            h = c["bn2"](c["conv1"](o))
            if "dropout" in c:
                h = c["dropout"](h)
            return c["conv2"](h) + (x if "shortcut" not in c else c["shortcut"](o))

    Tree.__name__ = kind
    return Tree()
