"""WideResNet (Zagoruyko & Komodakis 2016), pre-activation, with blocks addressable by position.

    stem: conv3x3 in_channels -> 16
    group 1: n blocks at 16k channels, stride 1      n = (depth - 4) / 6
    group 2: n blocks at 32k channels, stride 2      (stride on the first block of each group)
    group 3: n blocks at 64k channels, stride 2
    head: BN - ReLU - global average pool - linear -> classes

Blocks are numbered 1..3n in order (`block(pos)`, `replace_block(pos, module)`); in WRN-16-k
positions 1, 3, 6 are the first block of group 1, the first of group 2 and the last block.
"""
from __future__ import annotations

import numpy as np

from . import init
from .blocks import PreActBlock
from .conv_layers import BatchNorm2d, Conv2d, GlobalAvgPool
from .layers import Linear, ReLU
from .module import Module, positive_int


class WideResNet(Module):
    """x (N, in_channels, input_size, input_size) -> logits (N, classes)."""

    def __init__(self, depth: int = 16, width: int = 2, dropout: float = 0.0, classes: int = 10,
                 in_channels: int = 3, input_size: int = 32, replaced: dict | None = None, rng=None):
        super().__init__()
        depth, width, classes, in_channels, input_size = (
            positive_int("WideResNet", name, value) for name, value in (
                ("depth", depth), ("width", width), ("classes", classes),
                ("in_channels", in_channels), ("input_size", input_size)))
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...), got {depth}")
        if width < 1:
            raise ValueError(f"WideResNet width must be >= 1, got {width}")
        self.depth, self.width, self.dropout, self.classes = depth, width, dropout, classes
        self.in_channels, self.input_size = in_channels, input_size
        rng = init.as_generator(rng)
        n = (depth - 4) // 6
        self.add_module("stem", Conv2d(in_channels, 16, 3, 1, 1, bias=False, rng=rng))
        # (in_shape, out_shape) of every block, without the batch axis: used by the dry run
        self.block_shapes = []
        channels, size = 16, input_size
        for group, (out, stride) in enumerate(zip((16 * width, 32 * width, 64 * width), (1, 2, 2))):
            for i in range(n):
                s = stride if i == 0 else 1
                out_size = (size - 1) // s + 1
                pos = len(self.block_shapes) + 1
                self.add_module(f"block{pos}", PreActBlock(channels, out, s, dropout, rng=rng, seed=pos))
                self.block_shapes.append(((channels, size, size), (out, out_size, out_size)))
                channels, size = out, out_size
        self.add_module("bn", BatchNorm2d(channels))
        self.add_module("relu", ReLU())
        self.add_module("pool", GlobalAvgPool())
        self.add_module("fc", Linear(channels, classes, init_name="glorot_uniform", rng=rng))
        self.replaced = {}
        if not isinstance(replaced or {}, dict):
            raise ValueError(f"WideResNet: replaced must map block positions to specs, got {replaced!r}")
        for pos, spec in (replaced or {}).items():
            if not (isinstance(pos, (int, np.integer)) or (isinstance(pos, str) and pos.isdigit())):
                raise ValueError(f"WideResNet: replaced block position must be an integer, got {pos!r}")
            self.replace_block(int(pos), Module.from_spec(spec))

    @property
    def num_blocks(self) -> int:
        return len(self.block_shapes)

    def _check_pos(self, pos: int) -> None:
        if not isinstance(pos, (int, np.integer)) or not 1 <= pos <= self.num_blocks:
            raise ValueError(f"block position must be an integer in 1..{self.num_blocks}, got {pos!r}")

    def block(self, pos: int) -> Module:
        """The block at position pos (1-based)."""
        self._check_pos(pos)
        return self._children[f"block{pos}"]

    def blocks(self) -> list:
        return [self._children[f"block{p}"] for p in range(1, self.num_blocks + 1)]

    def replace_block(self, pos: int, module: Module) -> Module:
        """Put `module` at block position pos and return the block it replaces.

        The module must map the block's input shape to its output shape: a dry run on one
        zero image in eval mode (so no running statistic or random state changes) checks it,
        and a mismatch raises ValueError with both shapes; the model is left unchanged.
        """
        self._check_pos(pos)
        if not isinstance(module, Module):
            raise ValueError(f"replacement for block {pos} must be a Module, got {type(module).__name__}")
        in_shape, out_shape = self.block_shapes[pos - 1]
        if init.is_shapes_only():
            # placeholders cannot run; a real build (after the file's arrays fit) runs the check
            return self._put_block(pos, module)
        was_training = module.training
        module.eval()
        try:
            out = module.forward(np.zeros((1,) + in_shape, np.float32))
        except ValueError as exc:
            raise ValueError(f"block {pos} replacement {type(module).__name__} fails on the block's "
                             f"input shape {(None,) + in_shape}: {exc}") from None
        finally:
            module.train(was_training)
        if tuple(out.shape[1:]) != out_shape:
            raise ValueError(f"block {pos} replacement {type(module).__name__} maps input "
                             f"{(None,) + in_shape} to {(None,) + tuple(out.shape[1:])}, but the "
                             f"block must output {(None,) + out_shape}")
        return self._put_block(pos, module)

    def _put_block(self, pos: int, module: Module) -> Module:
        old = self._children[f"block{pos}"]
        module.train(self.training)
        self._children[f"block{pos}"] = module   # same key: the order of children is kept
        self.replaced[pos] = module.spec()
        return old

    def set_input_grad(self, enabled):
        super().set_input_grad(enabled)
        self._children["stem"].set_input_grad(enabled)
        return self

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"WideResNet expects input (N, {self.in_channels}, H, W), got {x.shape}")
        for layer in self._children.values():
            x = layer.forward(x)
        return x

    def backward(self, dy):
        for layer in reversed(list(self._children.values())):
            dy = layer.backward(dy)
        return dy

    def config(self):
        cfg = {"depth": self.depth, "width": self.width, "dropout": self.dropout,
               "classes": self.classes, "in_channels": self.in_channels, "input_size": self.input_size}
        if self.replaced:
            # a replaced block's spec may have changed since (e.g. nested replacement): re-read it
            cfg["replaced"] = {str(p): self._children[f"block{p}"].spec() for p in sorted(self.replaced)}
        return cfg
