"""Module: the base of every layer. A module holds Parameters (data + grad), buffers (state that
is saved but not trained, such as BatchNorm running statistics) and child modules, and runs
`forward(x)` then `backward(dy)` with whatever it cached in between.

Each module class registers itself by name so that an architecture can be written as JSON
(`spec()`) and rebuilt without pickle (`Module.from_spec`).
"""
from __future__ import annotations

from typing import Dict, Iterator, Tuple

import numpy as np


class Parameter:
    """A trainable array and its gradient. `decay` says whether weight decay applies to it by
    default (weights yes; biases and normalisation parameters no)."""

    __slots__ = ("data", "grad", "decay")

    def __init__(self, data: np.ndarray, decay: bool = True):
        self.data = data
        self.grad = np.zeros_like(data)
        self.decay = decay

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}, decay={self.decay})"


class Module:
    registry: Dict[str, type] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Module.registry[cls.__name__] = cls

    def __init__(self):
        self.training = True
        self.input_grad = True
        self._params: Dict[str, Parameter] = {}
        self._buffers: Dict[str, np.ndarray] = {}
        self._children: Dict[str, Module] = {}

    # ---- building -------------------------------------------------------------------------
    def add_parameter(self, name: str, data: np.ndarray, decay: bool = True) -> Parameter:
        p = Parameter(data, decay)
        self._params[name] = p
        return p

    def add_buffer(self, name: str, data: np.ndarray) -> None:
        self._buffers[name] = data

    def add_module(self, name: str, module: "Module") -> "Module":
        if not isinstance(module, Module):
            raise TypeError(f"child {name!r} must be a Module, got {type(module).__name__}")
        self._children[name] = module
        return module

    # ---- running --------------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def train(self, mode: bool = True) -> "Module":
        self.training = mode
        for child in self._children.values():
            child.train(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    # True for modules whose backward only reshapes dy (Flatten, Identity): a container passes
    # set_input_grad through them to the layer after
    reshapes_only = False

    def set_input_grad(self, enabled: bool) -> "Module":
        """Whether backward must return the gradient with respect to the input.

        A training loop turns it off because its input is data, so that gradient would be
        thrown away. Layers that can skip computing it (Conv2d, Linear) then return None from
        backward; containers whose first child alone reads the input pass the setting on to it;
        other modules still compute it. Parameter gradients are the same either way.
        """
        self.input_grad = enabled
        return self

    # ---- introspection --------------------------------------------------------------------
    def children(self) -> Iterator[Tuple[str, "Module"]]:
        return iter(self._children.items())

    def modules(self) -> Iterator["Module"]:
        """This module and every module below it, depth first, in a fixed order."""
        yield self
        for child in self._children.values():
            yield from child.modules()

    def named_parameters(self, prefix: str = "") -> Iterator[Tuple[str, Parameter]]:
        for name, p in self._params.items():
            yield prefix + name, p
        for cname, child in self._children.items():
            yield from child.named_parameters(f"{prefix}{cname}.")

    def parameters(self) -> list:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[Tuple[str, np.ndarray]]:
        for name, b in self._buffers.items():
            yield prefix + name, b
        for cname, child in self._children.items():
            yield from child.named_buffers(f"{prefix}{cname}.")

    def num_parameters(self) -> int:
        return int(sum(p.data.size for p in self.parameters()))

    # ---- state ----------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, np.ndarray]:
        """Every parameter and buffer by dotted name, as copies."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update({name: b.copy() for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: Dict[str, np.ndarray], strict: bool = True) -> None:
        """Copy arrays into this module's parameters and buffers (in place, keeping dtypes).

        strict: every key must match. A mismatch raises KeyError naming the missing and the
        unexpected keys; a shape mismatch raises ValueError naming the key and both shapes.
        Nothing is changed unless the whole state fits.
        """
        targets = {name: p.data for name, p in self.named_parameters()}
        targets.update(dict(self.named_buffers()))
        missing = sorted(set(targets) - set(state))
        unexpected = sorted(set(state) - set(targets))
        if strict and (missing or unexpected):
            raise KeyError(f"state does not fit {type(self).__name__}: missing keys {missing}, "
                           f"unexpected keys {unexpected}")
        for name in targets.keys() & state.keys():
            if np.shape(state[name]) != targets[name].shape:
                raise ValueError(f"shape mismatch for {name!r}: model has {targets[name].shape}, "
                                 f"state has {np.shape(state[name])}")
        for name in targets.keys() & state.keys():
            targets[name][...] = state[name]

    # ---- architecture as JSON ---------------------------------------------------------------
    def config(self) -> dict:
        """Constructor arguments (JSON values) that rebuild this module, without its weights."""
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Module":
        return cls(**config)

    def spec(self) -> dict:
        return {"type": type(self).__name__, "config": self.config()}

    @staticmethod
    def from_spec(spec: dict) -> "Module":
        try:
            cls = Module.registry[spec["type"]]
        except KeyError:
            raise ValueError(f"unknown module type {spec.get('type')!r} in architecture; "
                             f"known: {sorted(Module.registry)}") from None
        return cls.from_config(spec.get("config", {}))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if not isinstance(v, (list, dict)))
        head = f"{type(self).__name__}({args})"
        if not self._children:
            return head
        body = "\n".join(f"  ({n}): " + repr(c).replace("\n", "\n  ") for n, c in self._children.items())
        return f"{head[:-1]}\n{body}\n)" if args else f"{type(self).__name__}(\n{body}\n)"
