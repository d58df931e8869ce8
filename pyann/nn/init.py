"""Weight initialisers. Each takes the shape, the fan-in/fan-out and a numpy Generator, so the
same seed always gives the same weights.

He (Kaiming) for ReLU layers keeps the activation variance constant through depth:
    normal:  std = sqrt(2 / fan_in)
Glorot (Xavier) for linear/tanh outputs keeps forward and backward variance balanced:
    uniform: limit = sqrt(6 / (fan_in + fan_out))
"""
import numpy as np


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
        return INITIALISERS[name]
    except KeyError:
        raise ValueError(f"unknown initialiser {name!r}; choose from {sorted(INITIALISERS)}") from None


def as_generator(rng):
    """Accept a Generator, an int seed or None (seed 0: pyann never initialises unseeded)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(0 if rng is None else rng)
