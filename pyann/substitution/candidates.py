"""The candidate operations that may replace one block of a WideResNet, and their registry.

Each candidate maps the replaced block's input shape to its output shape, stride and channel
change included (C_in -> C_out, H -> (H - 1) // stride + 1). The paper's seven, in its order:

| # | name                | block (pyann.nn)          | what "expand" means                                    |
|---|---------------------|---------------------------|--------------------------------------------------------|
| 1 | "original"          | the teacher's own block   | none: a copy of the block with its trained weights     |
| 2 | "identity"          | nn.Identity               | none; only where in_shape == out_shape                 |
| 3 | "inverted_residual" | nn.InvertedResidual, t=6  | MobileNetV2's t: hidden = 6 x C_in (1x1 expand, 3x3    |
|   |                     |                           | depthwise, linear 1x1 projection; residual if shapes   |
|   |                     |                           | match)                                                 |
| 4 | "conv_bn_e1"        | nn.ConvBNBlock, expand=1  | 3x3 conv(stride) C_in -> C_out, BN, ReLU               |
| 5 | "conv_bn_e2"        | nn.ConvBNBlock, expand=2  | 3x3 conv(stride) C_in -> 2 x C_out, BN, ReLU,          |
|   |                     |                           | 1x1 conv -> C_out, BN                                  |
| 6 | "basic_e2"          | nn.BasicBlock, expand=2   | middle width 2 x C_out: 3x3(stride) -> 2 C_out, 3x3 -> |
|   |                     |                           | C_out, + shortcut, ReLU                                |
| 7 | "bottleneck_e2"     | nn.Bottleneck, expand=2   | ResNet's expansion: C_out = 2 x inner width; 1x1 ->    |
|   |                     |                           | C_out/2, 3x3(stride), 1x1 -> C_out, + shortcut, ReLU   |

The shortcut of 6 and 7 is the identity where the shape is kept, else 1x1 conv(stride) + BN.
Users add their own with register_candidate(name, build, description=...): build(slot, rng)
gets a Slot (the model, the position, the block's shapes, channels and stride) and a seeded
numpy Generator and returns a Module. Shapes are one sample's, without the batch axis.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

from .. import nn
from ..nn import init
from ..nn.summary import summary


@dataclass(frozen=True)
class Slot:
    """Where a candidate goes: block `pos` of `model`, mapping in_shape to out_shape (C, H, W)."""
    model: nn.Module
    pos: int
    in_shape: tuple
    out_shape: tuple

    @property
    def in_channels(self) -> int:
        return self.in_shape[0]

    @property
    def out_channels(self) -> int:
        return self.out_shape[0]

    @property
    def stride(self) -> int:
        return stride_between(self.in_shape[1], self.out_shape[1])

    @property
    def block(self) -> nn.Module:
        """The block now at this position (the teacher's own, unless replaced)."""
        return self.model.block(self.pos)


@dataclass(frozen=True)
class Candidate:
    name: str
    build: Callable[[Slot, np.random.Generator], nn.Module]
    description: str
    needs_same_shape: bool = False
    paper_number: Optional[int] = None


def stride_between(in_size: int, out_size: int) -> int:
    """The smallest stride s with (in_size - 1) // s + 1 == out_size (3x3 conv, padding 1)."""
    for s in range(1, in_size + 1):
        if (in_size - 1) // s + 1 == out_size:
            return s
    raise ValueError(f"no stride maps spatial size {in_size} to {out_size}")


def copy_module(module: nn.Module) -> nn.Module:
    """An independent copy of module: same architecture, weights, running statistics, masks and
    train/eval mode (rebuilt from its spec, then its state copied in)."""
    twin = nn.Module.from_spec(module.spec())
    twin.load_state_dict(module.state_dict())
    return twin.train(module.training)


def _original(slot: Slot, rng) -> nn.Module:
    return copy_module(slot.block)


def _sized(cls, expand: int):
    def build(slot: Slot, rng) -> nn.Module:
        return cls(slot.in_channels, slot.out_channels, slot.stride, expand=expand, rng=rng)
    return build


_REGISTRY: Dict[str, Candidate] = {}


def _add(candidate: Candidate) -> None:
    _REGISTRY[candidate.name] = candidate


for _c in (
    Candidate("original", _original, "the teacher's own block, its trained weights copied (no expand)",
              paper_number=1),
    Candidate("identity", lambda slot, rng: nn.Identity(),
              "identity, only where the block keeps the shape (no expand)", True, 2),
    Candidate("inverted_residual", _sized(nn.InvertedResidual, 6),
              "MobileNetV2 inverted residual; expand t=6: 1x1 to 6 x C_in, 3x3 depthwise, linear 1x1 "
              "projection, BN + ReLU6, residual only when shapes match", paper_number=3),
    Candidate("conv_bn_e1", _sized(nn.ConvBNBlock, 1),
              "conv + BN, expand 1: 3x3 conv(stride) C_in -> C_out, BN, ReLU", paper_number=4),
    Candidate("conv_bn_e2", _sized(nn.ConvBNBlock, 2),
              "conv + BN, expand 2: 3x3 conv(stride) C_in -> 2 x C_out, BN, ReLU, 1x1 conv -> C_out, BN",
              paper_number=5),
    Candidate("basic_e2", _sized(nn.BasicBlock, 2),
              "ResNet basic block, expand 2: 3x3(stride) C_in -> 2 x C_out, BN, ReLU, 3x3 -> C_out, BN, "
              "+ shortcut, ReLU", paper_number=6),
    Candidate("bottleneck_e2", _sized(nn.Bottleneck, 2),
              "ResNet bottleneck, expand 2 (C_out = 2 x inner): 1x1 -> C_out/2, 3x3(stride), 1x1 -> "
              "C_out, BN each, + shortcut, ReLU", paper_number=7),
):
    _add(_c)
PAPER_CANDIDATES = tuple(_REGISTRY)


def candidate_names() -> List[str]:
    """Registered names in registry order: the paper's seven first, then users' in the order added."""
    return list(_REGISTRY)


def _lookup(name) -> Candidate:
    found = _REGISTRY.get(name) if isinstance(name, str) else None
    if found is None:
        raise ValueError(f"unknown candidate {name!r}; known: {', '.join(_REGISTRY)}")
    return found


def paper_number(name: str) -> Optional[int]:
    """The paper's number (1..7) of a candidate, None for a user's own."""
    return _lookup(name).paper_number


def describe_candidate(name: str) -> str:
    """One line: what the candidate is and what "expand" means for it."""
    return _lookup(name).description


def register_candidate(name: str, build: Callable[[Slot, np.random.Generator], nn.Module], *,
                       description: str, needs_same_shape: bool = False) -> None:
    """Add a user's candidate. build(slot, rng) -> Module mapping slot.in_shape to slot.out_shape
    (see Slot: in_channels, out_channels, stride, block); needs_same_shape: offered only where
    the block keeps its shape (like identity). ValueError for a name already taken."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a candidate name must be a non-empty string, got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"candidate {name!r} is already registered (known: {', '.join(_REGISTRY)})")
    if not callable(build):
        raise ValueError(f"candidate {name!r}: build must be callable build(slot, rng) -> Module")
    _add(Candidate(name, build, str(description), bool(needs_same_shape)))


def unregister_candidate(name: str) -> None:
    """Remove a user's candidate (the paper's seven stay)."""
    if _lookup(name).paper_number is not None:
        raise ValueError(f"candidate {name!r} is one of the paper's and cannot be removed")
    del _REGISTRY[name]


def is_available(name: str, in_shape, out_shape) -> bool:
    """Whether candidate `name` may replace a block mapping in_shape to out_shape ((C, H, W))."""
    return not _lookup(name).needs_same_shape or tuple(in_shape) == tuple(out_shape)


def block_slot(model, pos) -> Slot:
    """The Slot of block pos in model (a WideResNet), or ValueError for a position out of range."""
    n = len(getattr(model, "block_shapes", ()))
    if not n:
        raise ValueError(f"candidates replace the blocks of a WideResNet, got a {type(model).__name__}")
    if isinstance(pos, bool) or not isinstance(pos, (int, np.integer)):
        raise ValueError(f"a block position must be an integer in 1..{n}, got {pos!r}")
    if not 1 <= pos <= n:
        raise ValueError(f"block position {pos!r} is out of range: this network has blocks 1..{n}")
    in_shape, out_shape = model.block_shapes[int(pos) - 1]
    return Slot(model, int(pos), tuple(in_shape), tuple(out_shape))


def candidate_for(model, pos: int, name: str, rng=None) -> nn.Module:
    """A new candidate module `name` for block pos of model, in train mode, freshly initialised
    from rng (a Generator or seed; None = seed 0) or, for "original", a copy of the block.

    ValueError, one line each: an unknown name (listing the known), a position out of range, a
    same-shape candidate (identity) at a position that changes the shape, and a user's build
    that returns something else than a Module of the block's output shape.
    """
    candidate = _lookup(name)
    slot = block_slot(model, pos)
    if not is_available(name, slot.in_shape, slot.out_shape):
        raise ValueError(f"candidate {name!r} is not available at position {slot.pos}: the block changes "
                         f"the shape {slot.in_shape} -> {slot.out_shape}")
    module = candidate.build(slot, init.as_generator(rng))
    _check_output_shape(module, slot, name)
    return module.train(True)


def _check_output_shape(module, slot: Slot, name: str) -> None:
    """A dry run on one zero sample in eval mode (no running statistic changes), as
    replace_block does, so that a user's candidate fails here with its own name."""
    if not isinstance(module, nn.Module):
        raise ValueError(f"candidate {name!r} built a {type(module).__name__}, not a pyann Module")
    was_training = module.training
    module.eval()
    try:
        out = module.forward(np.zeros((1,) + slot.in_shape, np.float32))
    except ValueError as exc:
        raise ValueError(f"candidate {name!r} fails on block {slot.pos}'s input shape {slot.in_shape}: "
                         f"{exc}") from None
    finally:
        module.train(was_training)
    if tuple(out.shape[1:]) != slot.out_shape:
        raise ValueError(f"candidate {name!r} maps block {slot.pos}'s input {slot.in_shape} to "
                         f"{tuple(out.shape[1:])}, not the block's output {slot.out_shape}")


def candidate_cost(model, pos: int, name: str) -> Dict[str, int]:
    """{"params", "macs"} of candidate `name` at block pos: its parameter count and multiply-adds
    per sample (Linear and Conv2d products; pyann.nn.summary), on the block's input shape."""
    module = candidate_for(model, pos, name)
    table = summary(module, block_slot(model, pos).in_shape)
    return {"params": int(table.total_params), "macs": int(table.total_macs)}
