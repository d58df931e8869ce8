"""Module: the base of every layer. A module holds Parameters (data + grad), buffers (state that
is saved but not trained, such as BatchNorm running statistics) and child modules, and runs
`forward(x)` then `backward(dy)` with whatever it cached in between.

Each module class registers itself by name so that an architecture can be written as JSON
(`spec()`) and rebuilt without pickle (`Module.from_spec`).

Pruning masks. A layer lists the parameters that may be pruned in `prunable` (Linear and
Conv2d: ("weight",); biases never). A pruned parameter carries a bool `mask` of its own shape
(True = kept) and its pruned entries are exactly 0. The mask is model state like a buffer: it is
saved and loaded as the entry `<parameter>_mask` ("0.weight_mask"), and the architecture
(`spec()`) names the masked parameters (a root-level "masks" list of dotted names), so a model
file's declared arrays include its masks and `nn.load` restores them. Masks are kept apart from
buffers on purpose: data-parallel replicas average their buffers after every forward, and a
mask must never be averaged. The optimisers (pyann.optim) apply the mask to the gradient and
re-zero pruned entries after every step, so no update rule can revive a pruned weight.
"""
from __future__ import annotations

import contextvars
import numbers
from typing import Callable, Dict, Iterator, List, Tuple

import numpy as np

from . import init


class Parameter:
    """A trainable array and its gradient. `decay` says whether weight decay applies to it by
    default (weights yes; biases and normalisation parameters no). `mask`: None, or a bool
    array of data's shape when the parameter is pruned (False entries are held at 0; see the
    module docstring)."""

    __slots__ = ("data", "grad", "decay", "mask")

    def __init__(self, data: np.ndarray, decay: bool = True):
        self.data = data
        self.grad = init.zeros_like(data)
        self.decay = decay
        self.mask = None

    def __repr__(self) -> str:
        masked = "" if self.mask is None else f", kept={int(np.count_nonzero(self.mask))}/{self.mask.size}"
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}, decay={self.decay}{masked})"


MASK_SUFFIX = "_mask"

# depth of nested spec() calls: only the outermost one records the masks (see Module.spec)
_SPEC_DEPTH = contextvars.ContextVar("pyann_spec_depth", default=0)


def check_mask(owner: str, mask, shape: tuple) -> np.ndarray:
    """mask as a C-contiguous bool array of `shape`, else ValueError naming owner: a mask must
    say kept/pruned exactly, so 0/1 floats or ints are refused rather than guessed at."""
    if not isinstance(mask, np.ndarray):
        raise ValueError(f"{owner}: a mask must be a numpy bool array, got {type(mask).__name__}")
    if mask.dtype != np.bool_:
        raise ValueError(f"{owner}: a mask must have dtype bool, got {mask.dtype} "
                         f"(use `mask != 0` to make one)")
    if mask.shape != tuple(shape):
        raise ValueError(f"{owner}: mask shape {mask.shape} does not match the parameter's {tuple(shape)}")
    return np.ascontiguousarray(mask)


def enforce_mask(p: Parameter) -> None:
    """Set the pruned entries of p.data to exactly +0 (in place: replicas share the array)."""
    if p.mask is not None:
        np.copyto(p.data, 0, where=~p.mask)


class Module:
    registry: Dict[str, type] = {}
    # parameters that pruning may mask (Linear/Conv2d: the weight; never a bias)
    prunable: Tuple[str, ...] = ()

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

    # ---- pruning masks ----------------------------------------------------------------------
    def set_mask(self, name: str, mask: np.ndarray) -> None:
        """Prune parameter `name` of this module with `mask` (bool, the parameter's shape, True
        = kept): the mask is copied and the pruned entries of the parameter become 0 in place.
        ValueError for a parameter that is not prunable here, or a mask of another shape or
        dtype. The new mask replaces any previous one (pyann.pruning only ever narrows it)."""
        p = self._prunable_param(name)
        p.mask = check_mask(f"{type(self).__name__}.{name}", mask, p.data.shape).copy()
        enforce_mask(p)

    def clear_mask(self, name: str) -> None:
        """Drop parameter `name`'s mask; its values (zeros included) stay as they are."""
        self._prunable_param(name).mask = None

    def _prunable_param(self, name: str) -> Parameter:
        if name not in self.prunable or name not in self._params:
            raise ValueError(f"{type(self).__name__} has no prunable parameter {name!r}; "
                             f"prunable: {[n for n in self.prunable if n in self._params]}")
        return self._params[name]

    def named_masks(self, prefix: str = "") -> Iterator[Tuple[str, np.ndarray]]:
        """(state name "<parameter>_mask", mask) of every masked parameter, in module order."""
        for name, p in self.named_parameters(prefix):
            if p.mask is not None:
                yield name + MASK_SUFFIX, p.mask

    def enforce_masks(self) -> None:
        """Zero every pruned entry again: for code that wrote weights directly."""
        for p in self.parameters():
            enforce_mask(p)

    # ---- state ----------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, np.ndarray]:
        """Every parameter, buffer and mask ("<parameter>_mask") by dotted name, as copies."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update({name: b.copy() for name, b in self.named_buffers()})
        state.update({name: m.copy() for name, m in self.named_masks()})
        return state

    def state_shapes(self) -> Dict[str, Tuple[tuple, np.dtype]]:
        """(shape, dtype) of every parameter, buffer and mask by dotted name, without copying."""
        shapes = {name: (p.data.shape, p.data.dtype) for name, p in self.named_parameters()}
        shapes.update({name: (b.shape, b.dtype) for name, b in self.named_buffers()})
        shapes.update({name: (m.shape, m.dtype) for name, m in self.named_masks()})
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
        for name in names:
            # a file whose pruned weights are not 0 contradicts itself: refuse it rather than
            # silently change the predictions it was saved with
            weight = name[:-len(MASK_SUFFIX)] if name.endswith(MASK_SUFFIX) else None
            if weight is not None and weight in state:
                revived = int(np.count_nonzero(state[weight][~state[name]]))
                if revived:
                    raise ValueError(f"{weight!r} holds {revived} nonzero values where {name!r} is False "
                                     f"(a pruned weight must be exactly 0)")
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
        other target needs its exact dtype (a mask: bool). A weight that is nonzero where its
        mask (in the same state) is False is refused. After copying, every masked parameter's
        pruned entries are zeroed again (strict=False may bring a weight without its mask).
        """
        names = self.check_state_dict(state, strict)
        targets = {name: p.data for name, p in self.named_parameters()}
        targets.update(dict(self.named_buffers()))
        targets.update(dict(self.named_masks()))
        for name in names:
            targets[name][...] = state[name]
        self.enforce_masks()

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
        """{"type", "config"}, plus "masks" (dotted names of the masked parameters below this
        module) when any is masked. Only the outermost spec() call lists masks, so a
        container's config, which holds its children's specs, repeats none of them."""
        token = _SPEC_DEPTH.set(_SPEC_DEPTH.get() + 1)
        try:
            spec = {"type": type(self).__name__, "config": self.config()}
        finally:
            _SPEC_DEPTH.reset(token)
        if _SPEC_DEPTH.get() == 0:
            masked = [name for name, p in self.named_parameters() if p.mask is not None]
            if masked:
                spec["masks"] = masked
        return spec

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
            module = cls.from_config(config)
        except (TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
            # a key the constructor does not take or needs, a value of the wrong type
            raise ValueError(f"cannot build {spec['type']} from config {_short(config)}: "
                             f"{type(exc).__name__}: {exc}") from exc
        if "masks" in spec:
            module._declare_masks(spec["masks"])
        return module

    def take_masks(self, names) -> Callable[[], None]:
        """Make exactly the parameters `names` (dotted, as in spec()["masks"]) masked: each new
        one all-kept until a state is loaded into it, any other mask dropped. For restoring a
        state saved with other masks (a checkpoint of a run pruned while it trained). Returns
        a function that puts the previous masks back; ValueError (nothing changed) for a name
        that cannot be masked."""
        previous = {name: p.mask for name, p in self.named_parameters()}
        params = dict(self.named_parameters())
        for name, p in params.items():
            if name not in names:
                p.mask = None
        try:
            self._declare_masks(list(names))
        except ValueError:
            for name, p in params.items():
                p.mask = previous[name]
            raise

        def undo():
            for name, p in params.items():
                p.mask = previous[name]
        return undo

    def _declare_masks(self, names) -> None:
        """Give each named parameter an all-kept mask (the file's arrays fill it in), or
        ValueError naming what cannot be masked."""
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{type(self).__name__}: 'masks' must be a list of parameter names, "
                             f"got {_short(names)}")
        modules = dict(_named_modules(self))
        for name in names:
            owner, _, pname = name.rpartition(".")
            module = modules.get(owner)
            if module is None or pname not in module.prunable or pname not in module._params:
                prunable = [f"{m}.{n}" if m else n for m, mod in modules.items()
                            for n in mod.prunable if n in mod._params]
                raise ValueError(f"{type(self).__name__}: cannot mask {name!r}: not a prunable "
                                 f"parameter of this architecture (prunable: {_short(prunable)})")
            p = module._params[pname]
            if p.mask is None:
                p.mask = init.ones(p.data.shape, np.bool_)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if not isinstance(v, (list, dict)))
        head = f"{type(self).__name__}({args})"
        if not self._children:
            return head
        body = "\n".join(f"  ({n}): " + repr(c).replace("\n", "\n  ") for n, c in self._children.items())
        return f"{head[:-1]}\n{body}\n)" if args else f"{type(self).__name__}(\n{body}\n)"


def without_masks(spec) -> dict:
    """spec without its root "masks" list: the architecture alone, whatever is pruned in it."""
    return {k: v for k, v in spec.items() if k != "masks"} if isinstance(spec, dict) else spec


def _named_modules(module: "Module", prefix: str = ""):
    """(dotted path, module) of module and everything below it; the root's path is ""."""
    yield prefix, module
    for name, child in module.children():
        yield from _named_modules(child, f"{prefix}.{name}" if prefix else name)


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


def fingerprint(model: Module) -> str:
    """A short hash of a model's parameter names, shapes and values: what a compiled plan or a
    fitted predictor records, to refuse being used with another model (or changed weights)."""
    import hashlib
    h = hashlib.sha1()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(str(p.data.shape).encode())
        h.update(np.ascontiguousarray(p.data, np.float32).tobytes())
    return h.hexdigest()[:16]


class eval_mode:
    """with eval_mode(*modules): run them in eval mode (frozen BatchNorm statistics, no dropout)
    and give each its own training flag back afterwards, whatever happens in the block."""

    def __init__(self, *modules: Module):
        self.modules = modules

    def __enter__(self):
        self.modes = [m.training for m in self.modules]
        for m in self.modules:
            m.eval()
        return self

    def __exit__(self, *exc):
        for m, mode in zip(self.modules, self.modes):
            m.train(mode)
