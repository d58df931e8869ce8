"""Convolutional plans (pyann.infer.sequential): cnn3-like models, dense or pruned, every kernel
choice, agree with the model; errors are named."""
import dataclasses

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


@pytest.mark.parametrize("mode", ["batched", "one_at_a_time"])
@pytest.mark.parametrize("plan, choice", [("numpy", None), ("dense", None), ("sparse", None),
                                          ("sparse", ["sparse", "blocked", "sparse"]),
                                          ("sparse", ["dense", "sparse", "dense"])])
def test_convolutional_plans_match_the_model(plan, choice, mode):
    model = _pruned_cnn()
    x = np.random.default_rng(1).standard_normal((150, 1, 14, 14)).astype(np.float32)   # chunks of 64: 3
    compiled = infer.compile(model, plan, layer_kernels=choice, chunk=64, mode=mode) if choice else \
        infer.compile(model, plan, chunk=64, mode=mode)
    assert compiled.mode == mode and compiled.chunk == (64 if mode == "batched" else 1)
    assert compiled.describe().splitlines()[0].endswith(
        "batched in chunks of 64 images)" if mode == "batched" else "one image at a time)")
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
    with pytest.raises(ValueError, match="mode must be 'batched' or 'one_at_a_time'"):
        infer.compile(model, "sparse", mode="streaming")
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


def _cnn3_at(density):
    from pyann import pruning
    model = zoo.cnn3(rng=0).eval()
    pruning.prune_to_density(model, density)
    return model


def test_the_input_size_is_worked_out_from_flatten_and_linear():
    from pyann.infer.sequential import _input_shape, _steps
    assert _input_shape(_steps(zoo.cnn3(rng=0))) == (1, 28, 28)
    assert _input_shape(_steps(_pruned_cnn())) == (1, 14, 14)
    no_linear = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1, rng=0), nn.ReLU())
    assert _input_shape(_steps(no_linear)) == (3, 32, 32)


def test_cnn3_kernel_choice_times_a_chunk_of_im2col_rows():
    """The measurement runs on the rows one of the plan's chunks gives each layer (conv: im2col
    output positions of min(chunk, CALIBRATION_IMAGES) images), not a few hundred random rows; each
    layer takes the fastest of what it timed; and where sparse is clearly faster at that size (timed
    again here, the plan's own product), the big convolution runs sparse."""
    from pyann.infer.choice import round_robin
    from pyann.infer.sequential import CALIBRATION_IMAGES
    assert CALIBRATION_IMAGES >= 16
    model = _cnn3_at(0.1)
    chunk = 32
    plan = infer.compile(model, "sparse", chunk=chunk)
    weighted = [s for s in plan.steps if s.w is not None]
    assert [s.timing_samples for s in weighted] == [chunk * 28 * 28, chunk * 14 * 14, chunk]
    for s in weighted:
        assert set(s.timing) == ({"dense", "sparse", "blocked"} if s.kind == "conv" else {"dense", "sparse"})
        assert s.label() == min(s.timing, key=s.timing.get)
    assert f"per {chunk * 14 * 14:,} im2col rows" in plan.describe()
    x = np.random.default_rng(3).standard_normal((40, 1, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(plan.run(x), model.forward(x), rtol=1e-4, atol=1e-4)
    # conv2 (288x64, the big one) timed again on its input at that size: dense against sparse
    inputs = []
    plan._run_chunk(x[:chunk], inputs)
    assert inputs[1].shape == (chunk, 32, 14, 14)
    conv2 = weighted[1]
    cands = {"dense": dataclasses.replace(conv2, sparse=None),
             "sparse": dataclasses.replace(conv2, sparse=kernels.pack_sparse(conv2.w)),
             "blocked": dataclasses.replace(conv2, sparse=kernels.pack_blocked(conv2.w))}
    t = round_robin({k: (lambda s=s: plan._conv(s, inputs[1])) for k, s in cands.items()})
    if min(t["sparse"], t["blocked"]) < 0.6 * t["dense"] and \
            min(conv2.timing["sparse"], conv2.timing["blocked"]) < conv2.timing["dense"]:
        assert conv2.label() in ("sparse", "blocked")
    # with the default chunk the measurement runs on CALIBRATION_IMAGES images
    default = infer.compile(_pruned_cnn(), "sparse")
    n = min(infer.sequential.CHUNK, CALIBRATION_IMAGES)
    assert [s.timing_samples for s in default.steps if s.w is not None] == [n * 14 * 14, n * 4 * 4, n]


def test_forced_and_partly_forced_kernels_and_calibration_images():
    model = _pruned_cnn()
    x = np.random.default_rng(4).standard_normal((70, 1, 14, 14)).astype(np.float32)
    forced = infer.compile(model, "sparse", layer_kernels=["blocked", "sparse", "dense"], chunk=32)
    assert [s.label() for s in forced.steps if s.w is not None] == ["blocked", "sparse", "dense"]
    assert all(s.timing is None for s in forced.steps)
    np.testing.assert_allclose(forced.run(x), model.forward(x), rtol=1e-4, atol=1e-5)
    part = infer.compile(model, "sparse", layer_kernels=[None, "sparse", None], chunk=16, calibration=x[:3])
    weighted = [s for s in part.steps if s.w is not None]
    assert weighted[1].label() == "sparse" and weighted[1].timing is None
    assert [weighted[0].timing_samples, weighted[2].timing_samples] == [16 * 14 * 14, 16]   # 3 images, repeated
    np.testing.assert_allclose(part.run(x), model.forward(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="calibration must be images"):
        infer.compile(model, "sparse", calibration=x[:, 0])
    with pytest.raises(ValueError, match="calibration must be images"):
        infer.compile(model, "sparse", calibration=x[:0])


def _conv_pool(pool, width, seed=0):
    model = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, rng=seed), nn.ReLU(), nn.MaxPool2d(pool), nn.Flatten(),
                          nn.Linear(8 * width * width, 10, rng=seed)).eval()
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if hasattr(layer, "weight"):
            layer.weight.data[rng.random(layer.weight.data.shape) > 0.3] = 0
    return model


def test_a_2x2_max_pool_after_a_sparse_convolution_is_done_as_it_writes():
    """13x13 maps: the fused pool drops the last row and column (floor), as MaxPool2d does; only
    the 12 x 12 positions it reads are computed and counted. A 3x3 pool stays a step of its own."""
    x = np.random.default_rng(1).standard_normal((7, 1, 13, 13)).astype(np.float32)
    model = _conv_pool(2, 6)
    for kind in ("sparse", "blocked"):
        plan = infer.compile(model, "sparse", layer_kernels=[kind, "dense"])
        np.testing.assert_allclose(plan.run(x), model.forward(x), rtol=1e-4, atol=1e-5)
        assert "step 2: maxpool (done by step 1 as it writes its output)" in plan.describe()
        conv = plan.steps[0]
        assert plan.last_macs == -(-(7 * 12 * 12) // 64) * 64 * conv.sparse.nnz + 7 * 288 * 10
    dense = infer.compile(model, "sparse", layer_kernels=["dense", "dense"])   # a dense conv pools apart
    np.testing.assert_allclose(dense.run(x), model.forward(x), rtol=1e-4, atol=1e-5)
    assert "done by" not in dense.describe()
    three = _conv_pool(3, 4)
    plan = infer.compile(three, "sparse", layer_kernels=["sparse", "dense"])
    np.testing.assert_allclose(plan.run(x), three.forward(x), rtol=1e-4, atol=1e-5)
    assert "done by" not in plan.describe()
