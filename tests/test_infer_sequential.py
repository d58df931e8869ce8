"""Convolutional plans (pyann.infer.sequential): cnn3-like models, dense or pruned, every kernel
choice, agree with the model; errors are named."""
import numpy as np
import pytest

from pyann import infer, kernels, nn
from pyann.nn import zoo


def _pruned_cnn(density=0.1, seed=0):
    model = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, rng=seed), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 12, 3, 2, 1, dilation=1, rng=seed), nn.ReLU(), nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(12 * 2 * 2, 10, rng=seed)).eval()
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if hasattr(layer, "weight"):
            layer.weight.data[rng.random(layer.weight.data.shape) > density] = 0
    return model


@pytest.mark.parametrize("plan, choice", [("numpy", None), ("dense", None), ("sparse", None),
                                          ("sparse", ["sparse", "blocked", "sparse"]),
                                          ("sparse", ["dense", "sparse", "dense"])])
def test_convolutional_plans_match_the_model(plan, choice):
    model = _pruned_cnn()
    x = np.random.default_rng(1).standard_normal((150, 1, 14, 14)).astype(np.float32)   # chunks of 64: 3
    compiled = infer.compile(model, plan, layer_kernels=choice, chunk=64) if choice else \
        infer.compile(model, plan, chunk=64)
    np.testing.assert_allclose(compiled.run(x), model.forward(x), rtol=1e-4, atol=1e-5)
    labels = [s.label() for s in compiled.steps if s.w is not None]
    if choice:
        assert labels == choice
    elif plan == "sparse":   # measured: each weighted step took the fastest of what it timed
        for s in compiled.steps:
            if s.w is not None:
                assert s.label() == min(s.timing, key=s.timing.get)
    assert compiled.run(x[:0]).shape == (0, 10)
    assert "weight density" in compiled.describe()
    for s in compiled.steps:   # a Linear on pyann's dense kernel runs from weights packed at compile
        on_pyann_dense = s.kind == "linear" and s.sparse is None and plan != "numpy"
        assert isinstance(s.packed, kernels.PackedDense) == on_pyann_dense


def test_cnn3_sparse_plan_counts_what_it_executes():
    model = zoo.cnn3(rng=0).eval()
    x = np.random.default_rng(2).random((20, 1, 28, 28), dtype=np.float32)
    plan = infer.compile(model, "sparse", layer_kernels=["sparse", "sparse", "dense"])
    np.testing.assert_allclose(plan.run(x), model.forward(x), rtol=1e-4, atol=1e-5)
    positions = [20 * 28 * 28, 20 * 14 * 14]          # conv outputs, padded to tiles of 64
    padded = [-(-p // 64) * 64 for p in positions]
    convs = [s for s in plan.steps if s.kind == "conv"]
    want = sum(p * s.sparse.nnz for p, s in zip(padded, convs)) + 20 * 3136 * 10
    assert plan.last_macs == want


def test_convolutional_plan_errors():
    model = _pruned_cnn()
    with pytest.raises(ValueError, match="batched only"):
        infer.compile(model, "sparse", mode="one_at_a_time")
    with pytest.raises(ValueError, match="compiles to one of"):
        infer.compile(model, "masked")
    with pytest.raises(ValueError, match="one entry per weighted layer"):
        infer.compile(model, "sparse", layer_kernels=["sparse"])
    grouped = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten())
    with pytest.raises(ValueError, match="grouped convolutions"):
        infer.compile(grouped, "dense")
    model.layers[0].weight.data[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        infer.compile(model, "dense")
    with pytest.raises(ValueError, match="dtype uint8"):
        infer.compile(_pruned_cnn(), "numpy").run(np.zeros((2, 1, 14, 14), np.uint8))
