"""Inference plans: a trained model compiled into a sequence of C kernel calls.

    plan = pyann.infer.compile(model, "sparse")     # or "dense", "numpy", "masked", "zeroskip", "combined"
    logits = plan.run(x)
    print(plan.describe())                         # per layer: shape, kernel, density, measurement

MLPs (Flatten / Linear / ReLU) compile to an InferencePlan (pyann.infer.mlp: every kernel family,
batched or one image at a time, with activation predictors); convolutional Sequentials (Conv2d,
pooling, Flatten, Linear) to a SequentialPlan (pyann.infer.sequential: numpy, dense or sparse,
batched or one image at a time). pyann.infer.choice picks a layer's kernel by measuring it on this machine.
"""
from ..nn import Conv2d, Sequential
from .mlp import KERNELS, MODES, SPLITS, InferencePlan, PlanLayer
from .mlp import compile as compile_mlp
from .sequential import SequentialPlan, compile_sequential


def compile(model, plan="combined", *args, **kwargs):
    """Compile `model` into a plan: see compile_mlp (MLPs; every kernel family and mode) and
    compile_sequential (models with Conv2d layers: "numpy", "dense", "sparse"; batched or one image
    at a time)."""
    if isinstance(model, Sequential) and any(isinstance(m, Conv2d) for m in model.layers):
        return compile_sequential(model, plan, *args, **kwargs)
    return compile_mlp(model, plan, *args, **kwargs)


__all__ = ["KERNELS", "MODES", "SPLITS", "InferencePlan", "PlanLayer", "SequentialPlan", "compile",
           "compile_mlp", "compile_sequential"]
