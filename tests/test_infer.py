"""pyann.infer: compiled plans agree with the model in every kernel family and mode."""
import numpy as np
import pytest

from pyann import infer, kernels, nn
from pyann.nn import zoo
from pyann.relu_prediction import HistoryPredictor, LowRankPredictor


@pytest.fixture
def small():
    model = zoo.mlp([30, 40, 33, 20, 24, 7], rng=3)
    rng = np.random.default_rng(0)
    x = rng.random((120, 1, 5, 6), dtype=np.float32)
    x[x < 0.5] = 0
    return model.eval(), x


@pytest.mark.parametrize("mode", infer.MODES)
@pytest.mark.parametrize("kernel", ["numpy", "dense", "zeroskip", "combined"])
def test_exact_plans_match_model(small, kernel, mode):
    model, x = small
    plan = infer.compile(model, kernel, mode=mode)
    np.testing.assert_allclose(plan.run(x), model.forward(x), rtol=1e-4, atol=1e-4)
    dense = plan.dense_macs(len(x))
    assert (plan.last_macs == dense) == (kernel in ("numpy", "dense"))


@pytest.mark.parametrize("mode", infer.MODES)
@pytest.mark.parametrize("make", [lambda m, x: HistoryPredictor(0.4, (2, 3)).fit(m, x),
                                  lambda m, x: LowRankPredictor(4, 0.5, (2, 3)).fit(m, x)])
def test_predicted_plans_match_reference(small, mode, make):
    model, x = small
    pred = make(model, x.reshape(len(x), -1))
    # reference: the model layer by layer, predicted-inactive neurons zeroed
    h = x.reshape(len(x), -1)
    lin = [l for l in model.layers if hasattr(l, "weight")]
    for k, l in enumerate(lin, start=1):
        a = h @ l.weight.data + l.bias.data
        if k < len(lin):
            a = np.maximum(a, 0)
            if k in pred.layers:
                a = np.where(pred.predict_active(k, h, l.bias.data), a, 0)
        h = a
    for kernel in ("masked", "combined"):
        for reorder, compact in ((True, True), (True, False), (False, True), (False, False)):
            plan = infer.compile(model, kernel, pred, mode=mode, reorder=reorder, compact=compact)
            np.testing.assert_allclose(plan.run(x), h, rtol=1e-4, atol=1e-4)
            off = pred.copy(tau=0.0) if isinstance(pred, HistoryPredictor) else pred.copy(margin=1e9)
            base = infer.compile(model, kernel, off, mode=mode, reorder=reorder, compact=compact)
            base.run(x)
            assert plan.last_macs <= base.last_macs
            assert (plan.last_predictor_macs > 0) == isinstance(pred, LowRankPredictor)
    # per-sample work is the same batched (list scheme) and one image at a time; the union
    # scheme multiplies tile-mates' zeros too, so it executes at least as much
    b = infer.compile(model, "combined", pred, mode="batched", scheme="list")
    u = infer.compile(model, "combined", pred, mode="batched", scheme="union")
    np.testing.assert_allclose(u.run(x), b.run(x), rtol=1e-5, atol=1e-5)
    for split in infer.SPLITS:
        o = infer.compile(model, "combined", pred, mode="one_at_a_time", split=split)
        np.testing.assert_allclose(b.run(x), o.run(x), rtol=1e-5, atol=1e-5)
        assert (b.last_macs, b.last_predictor_macs) == (o.last_macs, o.last_predictor_macs)
        assert u.last_macs >= o.last_macs


@pytest.mark.parametrize("mode", infer.MODES)
def test_compaction_removes_masked_neurons(small, mode):
    model, x = small
    pred = HistoryPredictor(0.4, (2, 3)).fit(model, x.reshape(len(x), -1))
    kept = [int(pred.mask(k).sum()) for k in (2, 3)]
    assert 0 < kept[0] < 33 and 0 < kept[1] < 20    # the mask really drops neurons here
    full = infer.compile(model, "masked", pred, mode=mode, compact=False)
    small_plan = infer.compile(model, "masked", pred, mode=mode)
    assert small_plan.compacted and not full.compacted
    vw = kernels.vector_width()
    widths = [l.w.shape[1] for l in small_plan.layers]
    # hidden 2 and 3 shrink to the kept count padded to whole vectors; the next layer's rows follow
    assert widths[1] == kept[0] + (-kept[0] % vw) and widths[2] == kept[1] + (-kept[1] % vw)
    assert small_plan.layers[2].w.shape[0] == widths[1] and small_plan.layers[3].w.shape[0] == widths[2]
    assert all(l.mask is None for l in small_plan.layers)
    np.testing.assert_allclose(small_plan.run(x), full.run(x), rtol=1e-5, atol=1e-5)
    assert small_plan.dense_macs(len(x)) == full.dense_macs(len(x)) == len(x) * sum(
        l.weight.data.size for l in model.layers if hasattr(l, "weight"))
    assert "compacted" in small_plan.describe()
    # a plan rebuilt from a plan keeps the choice
    assert not infer.compile(model, full).compacted


def test_single_image_and_zero_image(small):
    model, x = small
    for mode in infer.MODES:
        plan = infer.compile(model, "combined", HistoryPredictor(0.3, (3,)).fit(model, x), mode=mode)
        assert plan.run(x[:1]).shape == (1, 7)
        z = np.zeros_like(x[:3])
        np.testing.assert_allclose(infer.compile(model, "zeroskip", mode=mode).run(z), model.forward(z), atol=1e-5)


def test_errors(small):
    model, x = small
    other = zoo.mlp([30, 40, 33, 20, 24, 7], rng=9)
    pred = HistoryPredictor(0.5, (3, 4)).fit(model, x)
    plan = infer.compile(model, "masked", pred)
    with pytest.raises(ValueError, match="compiled for another model"):
        infer.compile(other, plan)
    with pytest.raises(ValueError, match="compiled for another model"):
        plan.check_model(other)
    assert infer.compile(model, plan).kernel == "masked"
    with pytest.raises(ValueError, match="fitted on another model"):
        infer.compile(other, "masked", pred)
    with pytest.raises(ValueError, match="hidden layer 5 does not exist"):
        HistoryPredictor(0.5, (5,)).fit(model, x)
    bad = HistoryPredictor(0.5, (3,)).fit(model, x)
    bad.layers = (6,)
    with pytest.raises(ValueError, match="layer 6 does not exist"):
        infer.compile(model, "masked", bad)
    with pytest.raises(ValueError, match="needs a fitted predictor"):
        infer.compile(model, "masked")
    with pytest.raises(ValueError, match="plan must be one of"):
        infer.compile(model, "csr")
    with pytest.raises(ValueError, match="split must be one of"):
        infer.compile(model, "dense", mode="one_at_a_time", split="layers")
    with pytest.raises(ValueError, match="scheme must be one of"):
        infer.compile(model, "zeroskip", scheme="csr")
    with pytest.raises(ValueError, match="mode must be one of"):
        infer.compile(model, "dense", mode="streaming")
    with pytest.raises(ValueError, match="features per sample"):
        infer.compile(model, "dense").run(np.zeros((2, 29), np.float32))


LAYOUTS = {   # (model, input shape): every way _mlp_layers accepts Flatten / Linear / ReLU
    "relu after every hidden layer": lambda: (zoo.mlp([12, 20, 18, 5], rng=1), (12,)),
    "ends in a ReLU": lambda: (nn.Sequential(nn.Linear(12, 20, rng=1), nn.ReLU(), nn.Linear(20, 7, rng=2), nn.ReLU()), (12,)),
    "Linear then Linear": lambda: (nn.Sequential(nn.Linear(12, 20, rng=1), nn.Linear(20, 18, rng=2), nn.ReLU(),
                                                 nn.Linear(18, 5, rng=3)), (12,)),
    "no ReLU at all": lambda: (nn.Sequential(nn.Linear(12, 33, rng=1), nn.Linear(33, 5, rng=2)), (12,)),
    "Flatten first, one layer with ReLU": lambda: (nn.Sequential(nn.Flatten(), nn.Linear(12, 40, rng=1), nn.ReLU()), (3, 4)),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", infer.MODES)
@pytest.mark.parametrize("kernel", ["numpy", "dense", "zeroskip", "combined"])
def test_every_layout_in_every_mode(layout, mode, kernel):
    # one-image plans hard-coded "ReLU after every layer but the last" (errors of 4-5 before)
    model, shape = LAYOUTS[layout]()
    x = np.random.default_rng(0).standard_normal((37,) + shape).astype(np.float32)
    x[x < 0.3] = 0
    for split in infer.SPLITS:
        plan = infer.compile(model.eval(), kernel, mode=mode, split=split)
        np.testing.assert_allclose(plan.run(x), model.forward(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("what", ["weight", "bias"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_compile_refuses_non_finite_models(small, what, value):
    # a NaN weight gave a healthy-looking 98 % in every C plan (NaN logits in NumPy)
    model, x = small
    getattr(model.layers[3], what).data.reshape(-1)[0] = value
    with pytest.raises(ValueError, match=f"Linear 1 {what} holds 1 NaN or Inf"):
        infer.compile(model, "dense")


def test_compile_refuses_non_finite_predictor(small):
    model, x = small
    pred = LowRankPredictor(4, 0.5, (2,)).fit(model, x.reshape(len(x), -1))
    pred.factors[2][1][0, 0] = np.inf
    with pytest.raises(ValueError, match="factor v of hidden layer 2 holds"):
        infer.compile(model, "combined", pred)


def test_plans_run_zero_rows_and_refuse_integer_input(small):
    model, x = small
    for kernel in ("numpy", "dense", "zeroskip"):
        for mode in infer.MODES:
            plan = infer.compile(model, kernel, mode=mode)
            y = plan.run(x[:0])   # failed inside reshape before
            assert y.shape == (0, 7) and y.dtype == np.float32
            assert plan.predict(x[:0]).shape == (0,)
            with pytest.raises(ValueError, match="dtype uint8"):
                plan.run((x * 255).astype(np.uint8))


def _pruned_mlp(density=0.08, seed=0):
    model = zoo.mlp([40, 64, 48, 10], rng=seed).eval()
    rng = np.random.default_rng(seed)
    for lin in [l for l in model.layers if isinstance(l, nn.Linear)][:2]:
        lin.weight.data[rng.random(lin.weight.data.shape) > density] = 0
    return model


SPARSE_CHOICES = [None, ["sparse"] * 3, ["dense", "sparse", "dense"], ["sparse", "sparse", "dense"],
                  ["zeroskip", "sparse", "zeroskip"], ["sparse", "zeroskip", "dense"]]
SPARSE_CASES = ([(c, "batched", "images") for c in SPARSE_CHOICES + [["blocked", "blocked", "sparse"]]]
                + [(c, "one_at_a_time", split) for c in SPARSE_CHOICES for split in infer.SPLITS])


@pytest.mark.parametrize("choice, mode, split", SPARSE_CASES)
def test_sparse_plan_matches_the_model(choice, mode, split):
    model = _pruned_mlp()
    x = np.random.default_rng(3).standard_normal((130, 40)).astype(np.float32)   # two full tiles and a partial one
    # scheme "list": batched zero skipping counts each sample's own nonzeros ("union" counts more)
    plan = infer.compile(model, "sparse", mode=mode, split=split, layer_kernels=choice, scheme="list")
    np.testing.assert_allclose(plan.run(x), model.forward(x), rtol=1e-4, atol=1e-5)
    kinds = [type(l.sparse).__name__ if l.sparse is not None else "zeroskip" if l.zero_skip else "dense"
             for l in plan.layers]
    kinds = [{"SparseWeights": "sparse", "BlockSparseWeights": "blocked", "InputSparseWeights": "sparse_zeroskip"}.get(k, k)
             for k in kinds]
    if choice is not None:
        assert kinds == choice
    else:   # measured: each layer records every candidate's timing and took the fastest
        for i, (l, kind) in enumerate(zip(plan.layers, kinds)):
            want = {"dense", "sparse"} | ({"blocked"} if mode == "batched" and l.w.shape[1] % 4 == 0 else set())
            want |= {"zeroskip", "sparse_zeroskip"}   # every layer: exact whatever made the zeros
            assert set(l.timing) == want and kind == min(l.timing, key=l.timing.get)
    padded = 192 if mode == "batched" else 130   # batched: a sparse layer's padding samples count too
    hs = [x]
    for l in plan.layers[:-1]:
        hs.append(kernels.dense_reference(hs[-1], l.w, l.b, l.relu))
    want = sum(kernels.sparse_zeroskip_macs_reference(h, l.sparse) if isinstance(l.sparse, kernels.InputSparseWeights)
               else np.count_nonzero(h) * l.w.shape[1] if l.zero_skip
               else padded * l.sparse.nnz if l.sparse is not None else 130 * l.w.size for l, h in zip(plan.layers, hs))
    # zero skipping counts the nonzero inputs: a hidden value within rounding of 0 may go either way
    slack = sum(l.w.shape[1] for l in plan.layers if l.zero_skip or isinstance(l.sparse, kernels.InputSparseWeights))
    assert abs(plan.last_macs - want) <= slack
    lines = plan.describe().splitlines()
    assert len(lines) == 4 and "weight density" in lines[1] and f"kernel {kinds[0]}" in lines[1]
    assert plan.run(x[:0]).shape == (0, 10)


def test_sparse_plan_errors():
    model = _pruned_mlp()
    with pytest.raises(ValueError, match="one entry per weighted layer"):
        infer.compile(model, "sparse", layer_kernels=["sparse"])
    with pytest.raises(ValueError, match=r"layer_kernels\[1\] must be"):
        infer.compile(model, "sparse", layer_kernels=["sparse", "csr", None])
    with pytest.raises(ValueError, match=r"layer_kernels\[0\] must be"):
        infer.compile(model, "sparse", mode="one_at_a_time", layer_kernels=["blocked", None, None])
    with pytest.raises(ValueError, match="'blocked' needs outputs divisible by 4, layer 2 has 10"):
        infer.compile(model, "sparse", layer_kernels=[None, None, "blocked"])
    with pytest.raises(ValueError, match="plan 'sparse' only"):
        infer.compile(model, "dense", layer_kernels=["sparse"] * 3)


def test_batched_plans_pack_their_dense_layers_once(small, monkeypatch):
    model, x = small
    want = model.forward(x)
    plan = infer.compile(model, "dense", mode="batched")
    for l in plan.layers:
        assert isinstance(l.packed, kernels.PackedDense)
        np.testing.assert_array_equal(l.packed.to_dense(), l.w)
    sparse = infer.compile(model, "sparse", layer_kernels=["dense", "sparse", "dense", "blocked", "dense"])
    assert [l.packed is not None for l in sparse.layers] == [True, False, True, False, True]
    for other in (infer.compile(model, "dense", mode="one_at_a_time"), infer.compile(model, "numpy"),
                  infer.compile(model, "zeroskip")):
        assert all(l.packed is None for l in other.layers)
    packs = []
    monkeypatch.setattr(kernels, "pack_dense", lambda w: packs.append(w))
    for p in (plan, sparse):
        np.testing.assert_allclose(p.run(x), want, rtol=1e-4, atol=1e-4)
    assert not packs                   # at compile time, never per run
    first = plan.layers[0]
    first.w = first.w.copy()           # a replaced w drops its now stale packing...
    assert first.packed is None
    np.testing.assert_allclose(plan.run(x), want, rtol=1e-4, atol=1e-4)   # ...and runs unpacked


def test_masked_plan_packs_the_layers_without_a_mask(small):
    model, x = small
    pred = HistoryPredictor(0.4, (2, 3)).fit(model, x.reshape(len(x), -1))
    plan = infer.compile(model, "masked", pred, mode="batched", compact=False)
    assert [l.packed is not None for l in plan.layers] == [l.mask is None and l.lowrank is None for l in plan.layers]
    assert any(l.packed is not None for l in plan.layers) and any(l.packed is None for l in plan.layers)
