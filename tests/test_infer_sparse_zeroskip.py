"""The sparse x sparse kernel (kernels.sparse_zeroskip) inside plan "sparse": forced per layer,
measured among the candidates (the first layer too: an image's blank pixels are zeros), counted,
described; and exact zero skipping on dense-stored weights ("zeroskip") as a per-layer choice."""
import numpy as np
import pytest

from pyann import infer, kernels, nn
from pyann.nn import zoo


def _pruned_mlp(density=0.1, seed=0):
    model = zoo.mlp([40, 64, 48, 10], rng=seed).eval()
    rng = np.random.default_rng(seed)
    for lin in [l for l in model.layers if isinstance(l, nn.Linear)]:
        lin.weight.data[rng.random(lin.weight.data.shape) > density] = 0
    return model


CHOICES = [["sparse", "sparse_zeroskip", "sparse_zeroskip"], ["dense", "sparse_zeroskip", "dense"],
           ["blocked", "sparse_zeroskip", "sparse"], ["sparse_zeroskip", "sparse_zeroskip", "zeroskip"]]


@pytest.mark.parametrize("mode, split", [("batched", "images"), ("one_at_a_time", "images"),
                                         ("one_at_a_time", "outputs")])
@pytest.mark.parametrize("choice", CHOICES)
def test_forced_sparse_zeroskip_matches_the_model_and_counts(mode, split, choice):
    if mode != "batched" and "blocked" in choice:
        pytest.skip("blocked is batched only")
    model = _pruned_mlp()
    x = np.random.default_rng(3).standard_normal((130, 40)).astype(np.float32)
    # scheme "list": batched zero skipping counts each sample's own nonzeros ("union" counts more)
    plan = infer.compile(model, "sparse", mode=mode, split=split, layer_kernels=choice, scheme="list")
    np.testing.assert_allclose(plan.run(x), model.forward(x), rtol=1e-4, atol=1e-5)
    hs = [x]
    for l in plan.layers[:-1]:
        hs.append(kernels.dense_reference(hs[-1], l.w, l.b, l.relu))
    padded = 192 if mode == "batched" else 130
    want = 0
    for l, h, kind in zip(plan.layers, hs, choice):
        if kind == "sparse_zeroskip":
            assert isinstance(l.sparse, kernels.InputSparseWeights)
            want += kernels.sparse_zeroskip_macs_reference(h, l.sparse)
        elif kind == "dense":
            want += 130 * l.w.size
        elif kind == "zeroskip":
            assert l.sparse is None and l.zero_skip
            want += np.count_nonzero(h) * l.w.shape[1]
        else:
            want += (padded if mode == "batched" else 130) * l.sparse.nnz
    assert abs(plan.last_macs - want) <= 64 + 48          # a hidden value within rounding of 0
    assert plan.last_macs < plan.dense_macs(130)
    lines = plan.describe().splitlines()
    assert "kernel sparse_zeroskip" in lines[2] and "at most" in lines[2]
    assert f"kernel {choice[2]}" in lines[3]
    assert plan.run(x[:0]).shape == (0, 10)


@pytest.mark.parametrize("mode", ["batched", "one_at_a_time"])
def test_measured_choice_includes_both_zero_skipping_kernels_on_every_layer(mode):
    model = _pruned_mlp(density=0.05)
    calib = np.abs(np.random.default_rng(1).standard_normal((64, 40))).astype(np.float32)
    plan = infer.compile(model, "sparse", mode=mode, calibration=calib)
    for l in plan.layers:   # the first layer too: its inputs' zeros are skipped as well as a ReLU's
        assert {"zeroskip", "sparse_zeroskip"} <= set(l.timing) and l.expected_macs is not None
        kind = {kernels.InputSparseWeights: "sparse_zeroskip", kernels.SparseWeights: "sparse",
                kernels.BlockSparseWeights: "blocked",
                type(None): "zeroskip" if l.zero_skip else "dense"}[type(l.sparse)]
        assert kind == min(l.timing, key=l.timing.get)
    x = np.random.default_rng(2).standard_normal((70, 40)).astype(np.float32)
    np.testing.assert_allclose(plan.run(x), model.forward(x), rtol=1e-4, atol=1e-5)
    for l, line in zip(plan.layers, plan.describe().splitlines()[1:]):
        assert line.endswith("per 64 samples)")                  # timed on the calibration inputs
        if isinstance(l.sparse, kernels.InputSparseWeights):
            assert "calibration inputs" in line


def test_sparse_zeroskip_errors():
    model = _pruned_mlp()
    with pytest.raises(ValueError, match=r"layer_kernels\[0\] must be None or one of"):
        infer.compile(model, "sparse", layer_kernels=["zero_skip", None, None])
    with pytest.raises(ValueError, match="calibration must be"):
        infer.compile(model, "sparse", calibration=np.zeros((5, 39), np.float32))
    with pytest.raises(ValueError, match="dtype uint8"):
        infer.compile(model, "sparse", calibration=np.zeros((5, 40), np.uint8))
