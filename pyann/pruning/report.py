"""sparsity_report(model): per prunable layer its weights, nonzeros, density and multiply-adds
per sample, dense and pruned, with a total row; print it, or read .rows / .to_dict().

Multiply-adds come from pyann.nn.summary (a dry run on one zero sample): a Linear layer spends
one per weight, a Conv2d layer one per weight per output position, which is the paper's count
of a convolution's connections (kernel size x output positions: CNN-3's 225,792 / 3,612,672 /
31,360). A pruned layer spends one per nonzero weight per output position, so its pruned
multiply-adds are nonzeros x positions, and the total ratio is the paper's computational gain
c'/c (eq. 5).
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional

import numpy as np

from ..nn.module import Module
from ..nn.summary import default_input_shape, summary
from .masks import prunable_layers


@dataclasses.dataclass
class SparsityRow:
    layer: str                    # dotted name ("0", "block1.conv1")
    kind: str                     # module type
    shape: tuple                  # the weight's shape
    weights: int
    nonzeros: int                 # nonzero weights (pruned ones are 0; a kept weight may be 0 too)
    masked: bool                  # whether the layer carries a mask
    dense_macs: Optional[int]     # per sample; None without an input shape
    pruned_macs: Optional[int]

    @property
    def density(self) -> float:
        return self.nonzeros / self.weights if self.weights else 0.0


@dataclasses.dataclass
class SparsityReport:
    model: str
    input_shape: Optional[tuple]
    rows: List[SparsityRow]
    # bytes of the model file: nn.save of the unpruned model (no masks) and nn.save(compact=True)
    dense_file_bytes: Optional[int] = None
    compact_file_bytes: Optional[int] = None

    @property
    def weights(self) -> int:
        return sum(r.weights for r in self.rows)

    @property
    def nonzeros(self) -> int:
        return sum(r.nonzeros for r in self.rows)

    @property
    def density(self) -> float:
        return self.nonzeros / self.weights if self.weights else 0.0

    @property
    def dense_macs(self) -> Optional[int]:
        return None if self.input_shape is None else sum(r.dense_macs for r in self.rows)

    @property
    def pruned_macs(self) -> Optional[int]:
        return None if self.input_shape is None else sum(r.pruned_macs for r in self.rows)

    @property
    def gain(self) -> Optional[float]:
        """c'/c of eq. 5: pruned over dense multiply-adds (None without an input shape)."""
        if self.input_shape is None or not self.dense_macs:
            return None
        return self.pruned_macs / self.dense_macs

    def to_dict(self) -> dict:
        rows = [dataclasses.asdict(r) | {"shape": list(r.shape), "density": r.density} for r in self.rows]
        return {"model": self.model, "input_shape": None if self.input_shape is None else list(self.input_shape),
                "layers": rows,
                "total": {"weights": self.weights, "nonzeros": self.nonzeros, "density": self.density,
                          "dense_macs": self.dense_macs, "pruned_macs": self.pruned_macs, "gain": self.gain},
                "file_bytes": {"dense": self.dense_file_bytes, "compact": self.compact_file_bytes}}

    def __str__(self) -> str:
        from tabulate import tabulate

        def n(v):
            return "-" if v is None else f"{v:,}"
        table = [(r.layer, r.kind + ("" if r.masked else " (no mask)"), "x".join(map(str, r.shape)),
                  n(r.weights), n(r.nonzeros), f"{r.density:.4f}", n(r.dense_macs), n(r.pruned_macs))
                 for r in self.rows]
        table.append(("total", "", "", n(self.weights), n(self.nonzeros), f"{self.density:.4f}",
                      n(self.dense_macs), n(self.pruned_macs)))
        body = tabulate(table, headers=("layer", "type", "weight", "weights", "nonzeros", "density",
                                        "dense MACs", "pruned MACs"),
                        colalign=("left", "left", "left", "right", "right", "right", "right", "right"))
        if self.input_shape is None:
            foot = "MACs: pass input_shape (one sample's shape) to count multiply-adds."
        else:
            foot = (f"MACs: multiply-adds per sample for input {'x'.join(map(str, self.input_shape))}; a conv "
                    f"weight counts once per output position. c'/c = {self.gain:.4f}")
        if self.dense_file_bytes:
            foot += (f"\nModel file: {self.dense_file_bytes:,} bytes dense, {self.compact_file_bytes:,} bytes "
                     f"compact (nn.save(model, path, compact=True)): "
                     f"{self.compact_file_bytes / self.dense_file_bytes:.3f} of dense.")
        return f"{self.model}: sparsity of the prunable layers\n{body}\n{foot}"

    __repr__ = __str__


def sparsity_report(model: Module, input_shape=None) -> SparsityReport:
    """The report of model's prunable layers (Linear, Conv2d), in model order.

    input_shape: one sample's shape, e.g. (1, 28, 28) for CNN-3; by default the model's own
    (an MLP or a WideResNet knows it). A model that does not say it still gets weights,
    nonzeros and densities, with the multiply-adds left out (None).
    """
    if input_shape is None:
        try:
            input_shape = default_input_shape(model)
        except ValueError:
            input_shape = None
    macs = {}
    if input_shape is not None:
        for row in summary(model, input_shape).rows:
            macs[row.name] = macs.get(row.name, 0) + row.macs   # a layer run twice costs twice
    rows = []
    for name, layer in prunable_layers(model).items():
        w, mask = layer.weight.data, layer.weight.mask
        nonzeros = int(np.count_nonzero(w))
        dense = pruned = None
        if input_shape is not None:
            dense = int(macs.get(name, 0))
            # dense = weights x runs x output positions, exactly
            pruned = dense // w.size * nonzeros if w.size else 0
        rows.append(SparsityRow(name, type(layer).__name__, tuple(w.shape), int(w.size), nonzeros,
                                mask is not None, dense, pruned))
    shape = None if input_shape is None else tuple(int(d) for d in input_shape)
    dense_bytes, compact_bytes = file_bytes(model)
    return SparsityReport(type(model).__name__, shape, rows, dense_bytes, compact_bytes)


def file_bytes(model: Module) -> tuple:
    """(dense, compact): the exact sizes of the model's file as nn.save writes it for the model
    without its masks, and with compact=True (written to memory, not to disk)."""
    import io as _io
    from ..nn.serialization import writer
    from .masks import clone, remove_masks

    def size(m, compact):
        buffer = _io.BytesIO()
        writer(m, compact=compact)(buffer)
        return buffer.tell()
    return size(remove_masks(clone(model)), False), size(model, True)
