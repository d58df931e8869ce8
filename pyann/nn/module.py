"""Module: the base of every layer. A module holds Parameters (data + grad), buffers (state that
is saved but not trained, such as BatchNorm running statistics) and child modules, and runs
`forward(x)` then `backward(dy)` with whatever it cached in between.

Each module class registers itself by name so that an architecture can be written as JSON
(`spec()`) and rebuilt without pickle (`Module.from_spec`).
"""
from __future__ import annotations

import numbers
from typing import Dict, Iterator, List, Tuple

import numpy as np

from . import init


class Parameter:
    """A trainable array and its gradient. `decay` says whether weight decay applies to it by
    default (weights yes; biases and normalisation parameters no)."""

    __slots__ = ("data", "grad", "decay")

    def __init__(self, data: np.ndarray, decay: bool = True):
        self.data = data
        self.grad = init.zeros_like(data)
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

    def state_shapes(self) -> Dict[str, Tuple[tuple, np.dtype]]:
        """(shape, dtype) of every parameter and buffer by dotted name, without copying."""
        shapes = {name: (p.data.shape, p.data.dtype) for name, p in self.named_parameters()}
        shapes.update({name: (b.shape, b.dtype) for name, b in self.named_buffers()})
        return shapes

    def check_state_dict(self, state: Dict[str, np.ndarray], strict: bool = True) -> List[str]:
        """Raise as load_state_dict(state, strict) would, changing nothing; else return the
        names it would copy.

        A caller restoring several objects as one (a checkpoint's model and optimizer) checks
        each of them first, so that a failure leaves all of them untouched.
        """
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict of arrays, got {type(state).__name__}")
        for name, value in state.items():
            if not isinstance(value, np.ndarray):
                raise TypeError(f"state[{name!r}] is a {type(value).__name__}, not a numpy array")
        targets = self.state_shapes()
        check_fit(targets, {k: (v.shape, v.dtype) for k, v in state.items()}, strict)
        names = sorted(targets.keys() & state.keys())
        for name in names:
            problem = _value_problem(state[name], targets[name][1])
            if problem:
                raise ValueError(f"{name!r} {problem}")
        return names

    def load_state_dict(self, state: Dict[str, np.ndarray], strict: bool = True) -> None:
        """Copy arrays into this module's parameters and buffers (in place, keeping dtypes).

        Everything is checked before anything is copied (check_state_dict), so a state that does
        not fit leaves the module untouched. strict: every key must match, else KeyError naming
        the missing and the unexpected keys. Each value must be a numpy array (else TypeError)
        of the target's shape (else ValueError naming the key and both shapes) and of a dtype
        that casts without changing values (else ValueError): a float target takes any float
        width whose values fit its range (float64 or float16 into float32 is cast), never an
        int, bool or complex array; an integer buffer takes integers within its range; any
        other target needs its exact dtype.
        """
        names = self.check_state_dict(state, strict)
        targets = {name: p.data for name, p in self.named_parameters()}
        targets.update(dict(self.named_buffers()))
        for name in names:
            targets[name][...] = state[name]

    @staticmethod
    def declared_state(spec: dict, max_arrays: int | None = None) -> Dict[str, Tuple[tuple, np.dtype]]:
        """state_shapes() of the model `spec` describes, found without allocating its arrays.

        The layers' own constructors build the module tree inside init.shapes_only(), so these
        names, shapes and dtypes cannot drift from those of from_spec(spec). max_arrays bounds
        the work a short spec can ask for (see init.shapes_only).
        """
        with init.shapes_only(max_arrays):
            return Module.from_spec(spec).state_shapes()

    # ---- description ----------------------------------------------------------------------
    def summary(self, input_shape=None):
        """Per leaf layer the output shape, parameters and multiply-adds, with totals (a
        pyann.nn.summary.ModelSummary: print it, or read .rows / .to_dict()). input_shape is one
        sample's shape; MLPs and WideResNets know theirs."""
        from .summary import summary
        return summary(self, input_shape)

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
        """Build a module from {"type": registered class name, "config": {constructor arguments}}.

        Any spec that cannot be built raises ValueError (an unknown type, a config the class
        does not take, a bad size), whatever the class's constructor raised on its own.
        """
        if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            raise ValueError(f"a module spec must be a dict with a string 'type', got {_short(spec)}")
        cls = Module.registry.get(spec["type"])
        if cls is None:
            raise ValueError(f"unknown module type {spec['type']!r} in architecture; "
                             f"known: {sorted(Module.registry)}")
        config = spec.get("config", {})
        if not isinstance(config, dict):
            raise ValueError(f"{spec['type']}: config must be a dict, got {_short(config)}")
        try:
            return cls.from_config(config)
        except (TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
            # a key the constructor does not take or needs, a value of the wrong type
            raise ValueError(f"cannot build {spec['type']} from config {_short(config)}: "
                             f"{type(exc).__name__}: {exc}") from exc

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if not isinstance(v, (list, dict)))
        head = f"{type(self).__name__}({args})"
        if not self._children:
            return head
        body = "\n".join(f"  ({n}): " + repr(c).replace("\n", "\n  ") for n, c in self._children.items())
        return f"{head[:-1]}\n{body}\n)" if args else f"{type(self).__name__}(\n{body}\n)"


def positive_int(owner: str, name: str, value, minimum: int = 1) -> int:
    """value as an int, else ValueError: sizes also come from model files, where 1e9 or "3" may stand."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_fit(targets: Dict[str, Tuple[tuple, np.dtype]], given: Dict[str, Tuple[tuple, np.dtype]],
              strict: bool = True) -> None:
    """Raise unless arrays of the `given` (shape, dtype) by name fit `targets`: KeyError naming
    the missing and unexpected keys (strict only); ValueError naming the first key of another
    shape or of a dtype kind that no cast keeps the values of. Needing shapes and dtypes only,
    it also checks a model file's array headers before any array is read."""
    missing = sorted(set(targets) - set(given))
    unexpected = sorted(set(given) - set(targets))
    problem = next(filter(None, (_fit_problem(name, targets[name], given[name])
                                 for name in sorted(targets.keys() & given.keys()))), None)
    if strict and (missing or unexpected):
        raise KeyError(f"missing keys {missing}, unexpected keys {unexpected}"
                       + (f"; and {problem}" if problem else ""))
    if problem:
        raise ValueError(problem)


def _fit_problem(name: str, target: Tuple[tuple, np.dtype], given: Tuple[tuple, np.dtype]) -> str | None:
    (t_shape, t_dtype), (g_shape, g_dtype) = target, given
    if tuple(g_shape) != tuple(t_shape):
        return f"shape mismatch for {name!r}: model has {tuple(t_shape)}, state has {tuple(g_shape)}"
    t_dtype, g_dtype = np.dtype(t_dtype), np.dtype(g_dtype)
    if not _kind_fits(g_dtype, t_dtype):
        return (f"dtype mismatch for {name!r}: model has {t_dtype}, state has {g_dtype} "
                f"(refused: the cast would change values)")
    return None


def _kind_fits(value: np.dtype, target: np.dtype) -> bool:
    if target.kind == "f":
        return value.kind == "f"
    if target.kind in "iu":
        return value.kind in "iu"
    return value == target


def _value_problem(value: np.ndarray, target: np.dtype) -> str | None:
    """Why casting value (whose dtype kind fits) to target would change its numbers, or None."""
    if value.size == 0 or value.dtype == target:
        return None
    if target.kind == "f" and value.dtype.itemsize > target.itemsize:
        big = np.max(np.abs(value), initial=0.0, where=np.isfinite(value))
        if big > np.finfo(target).max:
            return f"holds {big:g}, beyond the range of {target}"
    if target.kind in "iu":
        lo, hi, info = int(value.min()), int(value.max()), np.iinfo(target)
        if lo < info.min or hi > info.max:
            return f"holds values in [{lo}, {hi}], beyond the range of {target}"
    return None


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
