"""Weight initialisers. Each takes the shape, the fan-in/fan-out and a numpy Generator, so the
same seed always gives the same weights.

He (Kaiming) for ReLU layers keeps the activation variance constant through depth:
    normal:  std = sqrt(2 / fan_in)
Glorot (Xavier) for linear/tanh outputs keeps forward and backward variance balanced:
    uniform: limit = sqrt(6 / (fan_in + fan_out))

Layers make every parameter and buffer through this module (an initialiser, `zeros`, `ones`), so
that inside `shapes_only()` the same constructor code yields zero-byte placeholders of the right
shape and dtype instead of arrays: that is how a model file's declared architecture is checked
against the arrays in the file before anything is allocated (Module.declared_state).
"""
import contextvars
from contextlib import contextmanager

import numpy as np

# None outside shapes_only(); inside, [placeholders made so far, max_arrays]
_PLACEHOLDERS = contextvars.ContextVar("pyann_shapes_only", default=None)


@contextmanager
def shapes_only(max_arrays: int | None = None):
    """Inside this block initialisers, zeros() and ones() return read-only placeholders (a scalar
    broadcast to the shape: no memory however large the shape). Making more than `max_arrays` of
    them raises ValueError, so a short spec that expands into many layers (a WideResNet of depth
    10**9) stops as soon as it declares more arrays than the caller can account for."""
    token = _PLACEHOLDERS.set([0, max_arrays])
    try:
        yield
    finally:
        _PLACEHOLDERS.reset(token)


class TooManyArrays(ValueError):
    """More placeholders were made than shapes_only(max_arrays) allows."""


def is_shapes_only() -> bool:
    return _PLACEHOLDERS.get() is not None


def _placeholder(shape, dtype):
    count = _PLACEHOLDERS.get()
    count[0] += 1
    if count[1] is not None and count[0] > count[1]:
        raise TooManyArrays(f"the architecture declares more than {count[1]} arrays")
    return np.broadcast_to(np.zeros((), dtype), shape)


def zeros(shape, dtype=np.float32) -> np.ndarray:
    return np.zeros(shape, dtype) if _PLACEHOLDERS.get() is None else _placeholder(shape, dtype)


def ones(shape, dtype=np.float32) -> np.ndarray:
    return np.ones(shape, dtype) if _PLACEHOLDERS.get() is None else _placeholder(shape, dtype)


def zeros_like(a: np.ndarray) -> np.ndarray:
    """Parameter gradients: a placeholder's gradient is the placeholder itself (nothing counted)."""
    return np.zeros_like(a) if _PLACEHOLDERS.get() is None else a


def he_normal(shape, fan_in, fan_out, rng):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def he_uniform(shape, fan_in, fan_out, rng):
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def glorot_normal(shape, fan_in, fan_out, rng):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out))).astype(np.float32)


def glorot_uniform(shape, fan_in, fan_out, rng):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


INITIALISERS = {
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
}


def get(name):
    try:
        fn = INITIALISERS[name]
    except (KeyError, TypeError):   # TypeError: an unhashable name read from a model file
        raise ValueError(f"unknown initialiser {name!r}; choose from {sorted(INITIALISERS)}") from None
    if _PLACEHOLDERS.get() is not None:
        return lambda shape, fan_in, fan_out, rng: _placeholder(shape, np.float32)
    return fn


def as_generator(rng):
    """Accept a Generator, an int seed or None (seed 0: pyann never initialises unseeded)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(0 if rng is None else rng)
