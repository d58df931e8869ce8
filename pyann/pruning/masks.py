"""Pruning masks: prune one layer, a set of layers or all of them together, by |w| threshold,
by fraction or by count, element by element or in blocks; read, set and bake masks.

Where a mask lives and how it survives training and model files is pyann.nn.module's business
(Parameter.mask, the `<layer>.weight_mask` state entry); this module only decides which weights
to prune. Every function here is stateless: it reads the model, and the model's layers hold
the result.

Names. A layer is named by its dotted path in the model, as in `model.summary()` ("0", "3",
"block1.conv1", "fc"); the Distiller-style parameter name ("0.weight") is accepted too. The
prunable layers are those with a prunable weight (Linear, Conv2d); biases are never pruned.

Units. Every weight is read as a 2-D (outputs, inputs) matrix: a Linear weight (in, out) as
its transpose, a Conv2d weight (out, in/groups, k, k) as (out, in/groups*k*k). `block=(bo, bi)`
groups bo consecutive outputs by bi consecutive inputs into one unit (the default (1, 1) is
element by element; (4, 1), four outputs sharing an input, suits an output-blocked sparse
kernel). A unit's score is the mean |w| over its block, so a block threshold compares with the
same numbers as an element threshold. A unit is alive while any of its weights is kept, and
pruning a unit prunes its whole block.

Criteria (exactly one per call):
- threshold t (the paper's): prune every alive unit whose score is below t (|w| < t);
- fraction f in [0, 1]: prune round(f * alive units) more, the smallest scores first, so
  fractions compound like torch.nn.utils.prune (0.5 then 0.5 leaves a quarter);
- count n: prune n more units.
scope="layer" applies a fraction or count to each layer on its own; scope="global" ranks the
alive units of all the chosen layers together (a threshold is the same either way). Ties are
broken by position, so the same weights always give the same mask.
"""
from __future__ import annotations

import math
import numbers
from typing import Dict, Iterable, Optional, Tuple, Union

import numpy as np

from ..nn.layers import Linear
from ..nn.module import Module, _named_modules

Block = Optional[Tuple[int, int]]
Layers = Union[None, str, Iterable[str]]


# ---- which layers -------------------------------------------------------------------------------

def prunable_layers(model: Module) -> Dict[str, Module]:
    """{dotted layer name: layer} of every layer with a prunable weight, in model order."""
    return {name: m for name, m in _named_modules(model) if "weight" in m.prunable and "weight" in m._params}


def resolve_layers(model: Module, layers: Layers = None) -> Dict[str, Module]:
    """The prunable layers named by `layers` (None: all; a name; or an iterable of names), in
    model order. ValueError for a name that is not a prunable layer, listing the ones there are."""
    every = prunable_layers(model)
    if not every:
        raise ValueError(f"{type(model).__name__} has no prunable layer (Linear or Conv2d)")
    if layers is None:
        return every
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise ValueError("layers is empty: name at least one layer, or pass None for all of them")
    chosen = {}
    for name in names:
        key = layer_name(name)
        if key not in every:
            raise ValueError(f"no prunable layer named {name!r}; the prunable layers are {list(every)}")
        chosen[key] = every[key]
    return {name: every[name] for name in every if name in chosen}


def layer_name(name) -> str:
    """"0.weight" -> "0" (a Distiller parameter name to the layer's name); "0" stays."""
    if not isinstance(name, str):
        raise ValueError(f"a layer name must be a string, got {name!r}")
    return name[:-len(".weight")] if name.endswith(".weight") else name


# ---- reading and setting masks ------------------------------------------------------------------

def masks(model: Module) -> Dict[str, np.ndarray]:
    """{layer: copy of its weight mask} for every pruned layer (bool, the weight's shape)."""
    return {name: m.weight.mask.copy() for name, m in prunable_layers(model).items()
            if m.weight.mask is not None}


def set_masks(model: Module, new: Dict[str, np.ndarray]) -> None:
    """Give each named layer the mask given (bool, the weight's own shape and layout, True =
    kept); the pruned weights become 0. Everything is checked before any layer changes:
    ValueError for an unknown layer or a mask of the wrong shape or dtype."""
    from ..nn.module import check_mask
    if not isinstance(new, dict):
        raise ValueError(f"masks must be a dict {{layer: bool array}}, got {type(new).__name__}")
    targets = resolve_layers(model, list(new)) if new else {}
    checked = {}
    for name, mask in new.items():
        layer = targets[layer_name(name)]
        checked[layer_name(name)] = check_mask(f"mask of layer {name!r}", mask, layer.weight.data.shape)
    for name, mask in checked.items():
        targets[name].set_mask("weight", mask)


def make_permanent(model: Module) -> Module:
    """Bake the masks into the weights and drop them: the pruned weights stay 0 but are free to
    train again, and the model's spec and files no longer carry masks. Returns the model."""
    for layer in prunable_layers(model).values():
        if layer.weight.mask is not None:
            layer.enforce_masks()
            layer.clear_mask("weight")
    return model


def remove_masks(model: Module, layers: Layers = None) -> Module:
    """Drop the masks of the named layers (None: all) without touching the weights."""
    for layer in resolve_layers(model, layers).values():
        if layer.weight.mask is not None:
            layer.clear_mask("weight")
    return model


def clone(model: Module) -> Module:
    """An independent copy of model (architecture, weights, buffers, masks)."""
    copy = Module.from_spec(model.spec())
    copy.load_state_dict(model.state_dict())
    copy.train(model.training)
    return copy


# ---- the 2-D view and blocks --------------------------------------------------------------------

def _as_out_in(a: np.ndarray, layer: Module) -> np.ndarray:
    """A weight-shaped array as (outputs, inputs) (a view where the layout allows): Linear
    stores (in, out), every other prunable layer (Conv2d) leads with its outputs."""
    return a.T if isinstance(layer, Linear) else a.reshape(a.shape[0], -1)


def _from_out_in(a2: np.ndarray, layer: Module) -> np.ndarray:
    if isinstance(layer, Linear):
        return np.ascontiguousarray(a2.T)
    return np.ascontiguousarray(a2.reshape(layer.weight.data.shape))


def check_block(block) -> Tuple[int, int]:
    """block as (outputs, inputs) per unit; None is (1, 1)."""
    if block is None:
        return (1, 1)
    if (not isinstance(block, (tuple, list)) or len(block) != 2
            or not all(isinstance(b, numbers.Integral) and not isinstance(b, bool) and b >= 1 for b in block)):
        raise ValueError(f"block must be a pair of positive integers (outputs, inputs) such as (4, 1), "
                         f"got {block!r}")
    return (int(block[0]), int(block[1]))


def _units(name: str, layer: Module, block: Tuple[int, int]):
    """(scores, alive) of the layer's units, both (out/bo * in/bi,), row-major over the grid."""
    w = layer.weight.data
    if not np.isfinite(w).all():
        raise ValueError(f"layer {name!r} holds NaN or Inf weights: magnitudes cannot rank them")
    w2 = _as_out_in(w, layer)
    outs, ins = w2.shape
    bo, bi = block
    if outs % bo or ins % bi:
        raise ValueError(f"block {block} does not divide layer {name!r}: its weight is {outs} outputs x "
                         f"{ins} inputs (the block's outputs must divide {outs} and its inputs {ins})")
    grid = (outs // bo, bo, ins // bi, bi)
    scores = np.abs(w2.astype(np.float64)).reshape(grid).mean(axis=(1, 3)).ravel()
    mask = layer.weight.mask
    if mask is None:
        alive = np.ones(scores.shape, bool)
    else:
        alive = _as_out_in(mask, layer).reshape(grid).any(axis=(1, 3)).ravel()
    return scores, alive


def _expand(unit_keep: np.ndarray, layer: Module, block: Tuple[int, int]) -> np.ndarray:
    """Units kept (flat) -> element mask in the weight's own layout."""
    w2 = _as_out_in(layer.weight.data, layer)
    outs, ins = w2.shape
    bo, bi = block
    grid = unit_keep.reshape(outs // bo, ins // bi)
    return _from_out_in(np.repeat(np.repeat(grid, bo, axis=0), bi, axis=1), layer)


# ---- the criteria -------------------------------------------------------------------------------

def _real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def check_threshold(threshold) -> float:
    t = _real("threshold", threshold)
    if not (math.isfinite(t) and t >= 0):
        raise ValueError(f"threshold must be a finite number >= 0 (weights with |w| below it are pruned), "
                         f"got {threshold!r}")
    return t


def check_fraction(fraction, what: str = "fraction") -> float:
    f = _real(what, fraction)
    if not 0.0 <= f <= 1.0:   # NaN fails both comparisons
        raise ValueError(f"{what} must be in [0, 1], got {fraction!r}")
    return f


def check_count(count) -> int:
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
        raise ValueError(f"count must be an integer >= 0, got {count!r}")
    return int(count)


def _smallest(scores: np.ndarray, alive: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k alive units of smallest score, ties by position."""
    idx = np.flatnonzero(alive)
    order = np.argsort(scores[idx], kind="stable")
    return idx[order[:k]]


def prune(model: Module, layers: Layers = None, *, threshold=None, fraction=None, count=None,
          scope: str = "layer", block: Block = None) -> Dict[str, int]:
    """Prune the named layers (None: every prunable layer) by one criterion; see the module
    docstring. Masks only ever narrow: what was pruned stays pruned.

    Returns {layer: weights newly pruned}. Every layer named gets a mask, even when nothing in
    it met the criterion (it is then a pruned layer with everything kept).
    Raises ValueError, before changing anything, for: not exactly one criterion; a threshold
    that is NaN, infinite or negative; a fraction outside [0, 1]; a count that is negative or
    more than the alive units; an unknown layer; a block that does not divide a layer; a
    layer with non-finite weights; scope other than "layer" or "global".
    """
    given = [c for c in (threshold, fraction, count) if c is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of threshold, fraction and count")
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    block = check_block(block)
    if threshold is not None:
        threshold = check_threshold(threshold)
    if fraction is not None:
        fraction = check_fraction(fraction)
    if count is not None:
        count = check_count(count)
    chosen = resolve_layers(model, layers)
    units = {name: _units(name, layer, block) for name, layer in chosen.items()}

    drop: Dict[str, np.ndarray] = {}
    if threshold is not None:
        drop = {name: np.flatnonzero(alive & (scores < threshold)) for name, (scores, alive) in units.items()}
    elif scope == "layer":
        for name, (scores, alive) in units.items():
            n_alive = int(alive.sum())
            k = int(round(fraction * n_alive)) if fraction is not None else count
            if k > n_alive:
                raise ValueError(f"count {count} is more than the {n_alive} units still alive in layer {name!r}")
            drop[name] = _smallest(scores, alive, k)
    else:
        names = list(units)
        scores = np.concatenate([units[n][0] for n in names])
        alive = np.concatenate([units[n][1] for n in names])
        n_alive = int(alive.sum())
        k = int(round(fraction * n_alive)) if fraction is not None else count
        if k > n_alive:
            raise ValueError(f"count {count} is more than the {n_alive} units still alive in layers {names}")
        picked = _smallest(scores, alive, k)
        bounds = np.cumsum([0] + [len(units[n][0]) for n in names])
        for i, name in enumerate(names):
            sel = picked[(picked >= bounds[i]) & (picked < bounds[i + 1])]
            drop[name] = sel - bounds[i]
    return _apply(chosen, units, drop, block)


def prune_to_density(model: Module, density, layers: Layers = None, *, scope: str = "layer",
                     block: Block = None) -> Dict[str, int]:
    """Prune by magnitude until each layer keeps at most round(density * its units) units
    (scope="layer"; density may then be a {layer: density} dict), or until the chosen layers
    together keep at most round(density * their units) (scope="global"). A layer already
    sparser keeps its mask. Density is counted in units (weights, or blocks with `block`).
    Returns {layer: weights newly pruned}; ValueError for a density outside [0, 1]."""
    block_ = check_block(block)
    if isinstance(density, dict):
        if scope != "layer":
            raise ValueError("a density per layer needs scope='layer'")
        if not density:
            raise ValueError("density is an empty dict: name at least one layer")
        targets = {layer_name(k): check_fraction(v, f"density of layer {k!r}") for k, v in density.items()}
        chosen = resolve_layers(model, list(targets))
    else:
        d = check_fraction(density, "density")
        chosen = resolve_layers(model, layers)
        targets = {name: d for name in chosen}
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    units = {name: _units(name, layer, block_) for name, layer in chosen.items()}
    if scope == "layer":
        counts = {}
        for name, (scores, alive) in units.items():
            keep = int(round(targets[name] * scores.size))
            counts[name] = max(int(alive.sum()) - keep, 0)
        drop = {name: _smallest(units[name][0], units[name][1], counts[name]) for name in units}
        return _apply(chosen, units, drop, block_)
    total = sum(s.size for s, _ in units.values())
    alive = sum(int(a.sum()) for _, a in units.values())
    k = max(alive - int(round(targets[next(iter(targets))] * total)), 0)
    return prune(model, list(chosen), count=k, scope="global", block=block)


def _apply(chosen, units, drop, block) -> Dict[str, int]:
    pruned = {}
    for name, layer in chosen.items():
        scores, alive = units[name]
        keep = alive.copy()
        keep[drop.get(name, [])] = False
        mask = _expand(keep, layer, block)
        old = layer.weight.mask
        if old is not None:
            mask &= old
        before = layer.weight.data.size if old is None else int(np.count_nonzero(old))
        layer.set_mask("weight", mask)
        pruned[name] = before - int(np.count_nonzero(mask))
    return pruned


def density(model: Module, layers: Layers = None) -> Dict[str, float]:
    """{layer: kept weights / weights} from the masks (1.0 for a layer without one)."""
    out = {}
    for name, layer in resolve_layers(model, layers).items():
        m = layer.weight.mask
        out[name] = 1.0 if m is None else float(np.count_nonzero(m)) / m.size
    return out
