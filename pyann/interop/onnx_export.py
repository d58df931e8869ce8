"""Export a pyann model to ONNX (opset 17), written without PyTorch: one emitter per module type
turns the module into ONNX nodes, its arrays into initializers named as in the state_dict."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import nn
from ..io import atomic_write
from ..nn.summary import default_input_shape
from ._walk import require

OPSET = 17


class _Graph:
    """Nodes and initializers being collected; fresh() names intermediate tensors."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.inits, self.count = onnx, [], [], 0

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{hint}:{self.count}"

    def const(self, name: str, array: np.ndarray) -> str:
        self.inits.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def node(self, op: str, inputs, hint: str, **attrs) -> str:
        out = self.fresh(hint)
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out


def _emit(g: _Graph, m: nn.Module, x: str, name: str) -> str:
    """Append m's computation on tensor x to g; returns the output tensor's name."""
    kind, p = type(m).__name__, (name + "." if name else "")
    if kind in ("Sequential", "WideResNet"):
        for child_name, child in m.children():
            x = _emit(g, child, x, p + child_name)
        return x
    if kind == "Linear":   # y = x @ W + b, W stored (in, out): Gemm without transposition
        inputs = [x, g.const(p + "weight", m.weight.data)]
        if m.bias is not None:
            inputs.append(g.const(p + "bias", m.bias.data))
        return g.node("Gemm", inputs, name or "linear")
    if kind == "Conv2d":
        inputs = [x, g.const(p + "weight", m.weight.data)]
        if m.bias is not None:
            inputs.append(g.const(p + "bias", m.bias.data))
        k = m.kernel_size
        return g.node("Conv", inputs, name or "conv", kernel_shape=[k, k], strides=[m.stride] * 2,
                      pads=[m.padding] * 4, dilations=[m.dilation] * 2, group=m.groups)
    if kind in ("BatchNorm2d", "BatchNormReLU2d"):
        stats = [g.const(p + "gamma", m.gamma.data), g.const(p + "beta", m.beta.data),
                 g.const(p + "running_mean", m._buffers["running_mean"]),
                 g.const(p + "running_var", m._buffers["running_var"])]
        y = g.node("BatchNormalization", [x] + stats, name or "bn", epsilon=float(m.eps))
        return g.node("Relu", [y], name + ".relu") if kind == "BatchNormReLU2d" else y
    if kind == "ReLU":
        return g.node("Relu", [x], name or "relu")
    if kind == "ReLU6":
        return g.node("Clip", [x, g.const(p + "min", np.float32(0)), g.const(p + "max", np.float32(6))], name)
    if kind in ("Flatten", "GlobalAvgPool"):
        if kind == "GlobalAvgPool":
            x = g.node("GlobalAveragePool", [x], name)
        return g.node("Flatten", [x], name + ".flatten", axis=1)
    if kind in ("Identity", "Dropout"):   # dropout is the identity at inference
        return g.node("Identity", [x], name)
    if kind in ("MaxPool2d", "AvgPool2d"):
        k, s = m.kernel_size, m.kernel_size if m.stride is None else m.stride
        extra = {"count_include_pad": 1} if kind == "AvgPool2d" else {}   # pyann pads with zeros
        return g.node("MaxPool" if kind == "MaxPool2d" else "AveragePool", [x], name, kernel_shape=[k, k],
                      strides=[s, s], pads=[m.padding] * 4, **extra)
    if kind == "Residual":
        body = _emit(g, m.body, x, p + "body")
        skip = x if m.shortcut is None else _emit(g, m.shortcut, x, p + "shortcut")
        return g.node("Add", [body, skip], name)
    if kind == "PreActBlock":   # see pyann/nn/blocks.py
        o = _emit(g, m.bn1, x, p + "bn1")
        h = _emit(g, m.bn2, _emit(g, m.conv1, o, p + "conv1"), p + "bn2")
        body = _emit(g, m.conv2, h, p + "conv2")
        skip = x if m.shortcut is None else _emit(g, m.shortcut, o, p + "shortcut")
        return g.node("Add", [body, skip], name)
    raise ValueError(f"export_onnx: no ONNX form for {kind} (at {name or 'the top level'})")


def _output_shape(model: nn.Module, shape: tuple) -> tuple:
    """One sample's output shape, from a dry run on one zero sample in eval mode (which changes
    no running statistic); also checks that input_shape fits the model."""
    was_training = model.training
    model.eval()
    try:
        return tuple(model.forward(np.zeros((1,) + shape, np.float32)).shape[1:])
    except ValueError as exc:
        raise ValueError(f"export_onnx: input_shape {shape} does not fit the model: {exc}") from None
    finally:
        model.train(was_training)


def export_onnx(model: nn.Module, path, input_shape=None) -> Path:
    """Write `model` (eval-mode semantics) to `path` as ONNX, atomically; returns the path.

    input_shape: one sample's shape (the batch axis is left free, named "N"); by default the
    first Linear's in_features for an MLP, (C, size, size) for a WideResNet. The graph's input
    is "input", its output "output"; initializers keep the state_dict's names."""
    onnx = require("onnx")
    shape = tuple(int(d) for d in (input_shape if input_shape is not None else default_input_shape(model)))
    out_shape = _output_shape(model, shape)
    g = _Graph(onnx)
    out = _emit(g, model, "input", "")
    g.nodes.append(onnx.helper.make_node("Identity", [out], ["output"], name="output"))
    graph = onnx.helper.make_graph(
        g.nodes, type(model).__name__, [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ("N",) + shape)],
        [onnx.helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, ("N",) + out_shape)], g.inits)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   producer_name="pyann")
    proto.ir_version = 8   # what ONNX Runtime releases since 1.14 read
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    return atomic_write(path, lambda f: f.write(data))
