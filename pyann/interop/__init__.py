"""Interoperability: PyTorch state_dicts and modules, and ONNX export.

    from pyann.interop import load_torch_state_dict, torch_state_dict, to_torch, export_onnx
    load_torch_state_dict(model, torch_model.state_dict())   # a torch-trained model into pyann
    torch_model = to_torch(model)                            # the same network as a torch.nn.Module
    export_onnx(model, "model.onnx", input_shape=(1, 28, 28))

Names line up with PyTorch's: a pyann Sequential numbers its layers as torch.nn.Sequential does,
and every other module keeps its children's names. The layouts that differ are converted:
pyann stores a Linear weight as (in, out), PyTorch as (out, in); BatchNorm's gamma and beta are
PyTorch's weight and bias. torch and onnx are optional (`pip install -e ".[interop]"`); this
package imports them only when a function needs them.
"""
from .onnx_export import export_onnx
from .torch_bridge import load_torch_state_dict, to_torch, torch_name_map, torch_state_dict

__all__ = ["export_onnx", "load_torch_state_dict", "to_torch", "torch_name_map", "torch_state_dict"]
