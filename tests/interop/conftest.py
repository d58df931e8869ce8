"""Models for the interop tests, with BatchNorm statistics that are not the identity."""
import numpy as np
import pytest

from pyann import nn
from pyann.nn import zoo


def with_random_statistics(model, seed=0):
    rng = np.random.default_rng(seed)
    for name, buf in model.named_buffers():
        buf[...] = rng.uniform(0.5, 1.5, buf.shape) if name.endswith("var") else rng.normal(0, 0.3, buf.shape)
    for name, p in model.named_parameters():
        if name.endswith(("gamma", "beta")):
            p.data[...] = rng.normal(1 if name.endswith("gamma") else 0, 0.2, p.data.shape)
    return model.eval()


def odd_layers(rng=0):
    """Every other module type the exporters know, in one small network on (2, 8, 8) inputs."""
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, 1, 1, rng=rng), nn.BatchNorm2d(4), nn.ReLU6(), nn.AvgPool2d(2),
        nn.blocks.basic_residual(4, 6, 2, rng=rng), nn.Dropout(0.3), nn.MaxPool2d(2, 1, 1),
        nn.Conv2d(6, 6, 3, 1, 2, dilation=2, groups=3, rng=rng), nn.BatchNormReLU2d(6), nn.GlobalAvgPool(),
        nn.Identity(), nn.Linear(6, 3, rng=rng))


MODELS = {  # name: (builder(seed), one sample's input shape)
    "mlp5": (lambda s: zoo.build("mlp5", rng=s), (784,)),
    "cnn3": (lambda s: zoo.cnn3(rng=s), (1, 28, 28)),
    "wrn10_1": (lambda s: zoo.wrn(10, 1, rng=s), (3, 32, 32)),
    "odd layers": (lambda s: odd_layers(s), (2, 8, 8)),
}


@pytest.fixture(params=list(MODELS))
def model_case(request):
    """(name, build(seed) -> model in eval mode with random BatchNorm statistics, input shape, x)."""
    build, shape = MODELS[request.param]
    x = np.random.default_rng(1).standard_normal((5,) + shape).astype(np.float32)
    return request.param, lambda seed: with_random_statistics(build(seed), seed), shape, x
