"""Property-based tests (Hypothesis): every C kernel against its NumPy reference over random
shapes, masks, densities, NaN/Inf placements and aliased outputs.

The hand-picked cases in test_kernels*.py pin the edges; these search the space between them.
Each example draws its shapes and a seed; the arrays come from the seed, so a failure prints
the shapes and seed that reproduce it. HYPOTHESIS_PROFILE picks a profile (below).
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pyann import kernels as K

# default: a new search every run; ci (when $CI is set): the same examples every run, so a red CI
# is reproducible; sanitize: fewer, as every call is ~5x slower; deep: for a search by hand
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile("default", max_examples=150, **_COMMON)
settings.register_profile("ci", max_examples=150, derandomize=True, **_COMMON)
settings.register_profile("sanitize", max_examples=25, derandomize=True, **_COMMON)
settings.register_profile("deep", max_examples=3000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))

SPECIALS = st.lists(st.tuples(st.sampled_from(["x", "w", "b"]), st.sampled_from([np.nan, np.inf, -np.inf]),
                              st.integers(0, 2**31)), max_size=4)


@st.composite
def layers(draw, max_n=40, max_in=90, max_out=90):
    """A layer's (x, w, b) with zeros at a drawn share and NaN/Inf at drawn places."""
    n, d_in, d_out = draw(st.integers(0, max_n)), draw(st.integers(0, max_in)), draw(st.integers(1, max_out))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, d_in), dtype=np.float32)
    x[rng.random((n, d_in)) < draw(st.sampled_from([0.0, 0.5, 0.9, 1.0]))] = 0
    w = rng.standard_normal((d_in, d_out), dtype=np.float32)
    b = rng.standard_normal(d_out, dtype=np.float32) if draw(st.booleans()) else None
    arrays = {"x": x, "w": w, "b": b}
    for name, value, where in draw(SPECIALS):
        a = arrays[name]
        if a is not None and a.size:
            a.reshape(-1)[where % a.size] = value
    return x, w, b, rng


def assert_same(got, want, d_in):
    """NaN where the reference has NaN, the same infinities, finite values close."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-4, atol=1e-5 * max(d_in, 1) ** 0.5 * 10)


def _mask(rng, kind, n, d_out):
    density = rng.choice([0.0, 0.1, 0.5, 1.0])
    if kind == "shared":
        return (rng.random(d_out) < density).astype(np.uint8)
    if kind == "per-sample":
        return rng.random((n, d_out)) < density
    return None


@given(layers(), st.booleans())
def test_dense_forms(case, relu):
    x, w, b, _ = case
    want = K.dense_reference(x, w, b, relu)
    assert_same(K.dense(x, w, b, relu), want, x.shape[1])
    assert_same(K.dense_per_sample(x, w, b, relu), want, x.shape[1])
    assert_same(K.dense(x, K.pack_dense(w), b, relu), want, x.shape[1])
    if len(x):
        assert_same(K.dense_gemv(x[0], w, b, relu), want[0], x.shape[1])


@given(layers(max_n=130, max_in=600, max_out=100), st.booleans())
def test_dense_packed(case, relu):
    # shapes across the packed kernel's blocks: row tasks of 56, slivers of 14, panels of 32
    # columns, k blocks of up to 256 (AVX-512 sizes), each with a ragged edge or none
    x, w, b, _ = case
    pw = K.pack_dense(w)
    np.testing.assert_array_equal(pw.to_dense(), w)
    assert_same(K.dense(x, pw, b, relu), K.dense_reference(x, w, b, relu), x.shape[1])


@given(layers(), st.sampled_from(["none", "shared", "per-sample"]), st.booleans(), st.booleans(), st.booleans(),
       st.sampled_from(["auto", "list", "union"]))
def test_relu_layer(case, mask_kind, zero_skip, relu, one_at_a_time, scheme):
    x, w, b, rng = case
    n, d_out = x.shape[0], w.shape[1]
    mask = _mask(rng, mask_kind, n, d_out)
    call = lambda: K.relu_layer(x, w, b, mask, zero_skip, relu, one_at_a_time, return_macs=True, scheme=scheme)
    if zero_skip and not K.all_finite(w):
        with pytest.raises(ValueError, match="w holds NaN or Inf"):
            call()
        return
    y, macs = call()
    assert_same(y, K.relu_layer_reference(x, w, b, mask, relu), x.shape[1])
    used = scheme
    if used == "auto":
        used = K.zeroskip_scheme(x) if len(x) and x.shape[1] else "list"
    if mask is not None or not zero_skip or one_at_a_time:
        used = "list"
    assert macs == K.macs_reference(x, d_out, mask, zero_skip, scheme=used)


@st.composite
def mlps(draw):
    """An MLP of 1-3 layers with drawn widths, ReLU flags, biases, masks and a layer-0 predictor."""
    sizes = [draw(st.integers(1, 70)) for _ in range(draw(st.integers(1, 3)) + 1)]
    n = draw(st.integers(0, 20))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, sizes[0]), dtype=np.float32)
    x[rng.random(x.shape) < draw(st.sampled_from([0.0, 0.6, 1.0]))] = 0
    ws = [rng.standard_normal((a, c), dtype=np.float32) / np.float32(np.sqrt(a)) for a, c in zip(sizes, sizes[1:])]
    bs = [rng.standard_normal(c, dtype=np.float32) if draw(st.booleans()) else None for c in sizes[1:]]
    relus = [draw(st.booleans()) for _ in ws]
    masks = [_mask(rng, draw(st.sampled_from(["none", "shared"])), n, c) for c in sizes[1:]]
    preds = [None] * len(ws)
    if draw(st.booleans()):   # layer 0 only: its input is x, so the reference's decisions are exact
        r = draw(st.integers(1, 4))
        preds[0] = (rng.standard_normal((sizes[0], r), dtype=np.float32),
                    rng.standard_normal((r, sizes[1]), dtype=np.float32), float(rng.uniform(0, 1)))
    for value, where in draw(st.lists(st.tuples(st.sampled_from([np.nan, np.inf, -np.inf]), st.integers(0, 2**31)),
                                      max_size=2)):
        if x.size:
            x.reshape(-1)[where % x.size] = value
    return x, ws, bs, relus, masks, preds


@given(mlps(), st.booleans(), st.booleans())
def test_mlp_per_sample(case, zero_skip, split_images):
    x, ws, bs, relus, masks, preds = case
    if preds[0] is not None:   # a score within rounding of the threshold may go either way
        u, v, margin = preds[0]
        with np.errstate(invalid="ignore", over="ignore"):
            s = np.einsum("nk,kr->nr", x, u) @ v + (0 if bs[0] is None else bs[0])
        assume(not (np.abs(s[np.isfinite(s)] + margin) < 1e-3).any())
    masks = masks if any(m is not None for m in masks) else None
    preds = preds if preds[0] is not None else None
    y = K.mlp_per_sample(x, ws, bs, masks, preds, zero_skip=zero_skip, split_images=split_images, relus=relus)
    assert_same(y, K.mlp_per_sample_reference(x, ws, bs, masks, preds, relus), max(w.shape[0] for w in ws))


@given(layers(max_n=8), st.sampled_from(["x", "w", "b", "mask"]), st.integers(0, 2**31))
def test_out_aliasing_any_input_is_refused(case, victim, offset):
    x, w, b, rng = case
    n, d_out = x.shape[0], w.shape[1]
    mask = (rng.random(d_out) < 0.5).astype(np.uint8)
    arrays = {"x": x, "w": w, "b": b, "mask": mask}
    a = arrays[victim]
    assume(a is not None and a.nbytes >= 4 and n * d_out > 0)
    # a float32 view of out's shape laid over the victim's bytes, from a drawn offset
    pool = np.zeros(n * d_out + a.nbytes // 4 + 1, np.float32)
    start = offset % (n * d_out)
    out = pool[:n * d_out].reshape(n, d_out)
    view = pool.view(np.uint8)[start * 4:start * 4 + a.nbytes].view(a.dtype).reshape(a.shape)
    view[...] = a
    arrays[victim] = view
    with pytest.raises(ValueError, match=f"out must not share memory with {victim}"):
        K.relu_layer(arrays["x"], arrays["w"], arrays["b"], arrays["mask"], out=out)


@given(layers(max_n=70), st.sampled_from([0.0, 0.05, 0.3, 1.0]), st.booleans())
def test_sparse_linear(case, density, relu):
    x, w, b, rng = case
    w = np.nan_to_num(w, nan=1.0, posinf=2.0, neginf=-2.0)   # non-finite weights: the dense tests'
    w[rng.random(w.shape) >= density] = 0
    sw = K.pack_sparse(w)
    want = K.sparse_linear_reference(x, sw, b, relu)
    assert_same(K.sparse_linear(x, sw, b, relu), want, x.shape[1])
    assert_same(K.sparse_linear_per_sample(x, sw, b, relu), want, x.shape[1])
    for columns, xx in ((False, x), (True, np.ascontiguousarray(x.T))):   # tiles gathered from rows / columns
        assert_same(K.from_tiles(K.sparse_tiled_gather(xx, sw, b, relu, columns=columns), len(x)), want, x.shape[1])


@given(layers(max_n=70, max_out=40), st.sampled_from([0.0, 0.1, 0.5, 1.0]), st.booleans())
def test_sparse_blocked(case, density, relu):
    x, w, b, rng = case
    d_out = w.shape[1] - w.shape[1] % K.SPARSE_BLOCK
    assume(d_out > 0)
    w = np.nan_to_num(w[:, :d_out], nan=1.0, posinf=2.0, neginf=-2.0)
    w *= np.repeat(rng.random((w.shape[0], d_out // K.SPARSE_BLOCK)) < density, K.SPARSE_BLOCK, axis=1)
    b = None if b is None else b[:d_out].copy()
    bw = K.pack_blocked(w)
    got = K.from_tiles(K.sparse_blocked_tiled(K.to_tiles(x), bw, b, relu), len(x))
    assert_same(got, K.sparse_linear_reference(x, bw.to_sparse(), b, relu), x.shape[1])
    gathered = K.sparse_tiled_gather(np.ascontiguousarray(x.T), bw, b, relu, columns=True)
    assert_same(K.from_tiles(gathered, len(x)), K.sparse_linear_reference(x, bw.to_sparse(), b, relu), x.shape[1])


@given(layers(max_n=70), st.sampled_from([0.0, 0.05, 0.3, 1.0]), st.booleans(), st.booleans())
def test_sparse_zeroskip(case, density, relu, one_at_a_time):
    x, w, b, rng = case
    w[rng.random(w.shape) >= density] = 0          # non-finite weights stay: a zero input skips them
    iw = K.pack_sparse_by_input(w)
    want = K.sparse_zeroskip_reference(x, iw, b, relu)
    y, macs = K.sparse_zeroskip(x, iw, b, relu, one_at_a_time, return_macs=True)
    assert_same(y, want, x.shape[1])
    assert macs == K.sparse_zeroskip_macs_reference(x, iw)
    if x.shape[1]:
        y, macs2 = K.sparse_mlp_per_sample(x, [(iw, b, relu)], bool(rng.integers(2)), return_macs=True)
        assert_same(y, want, x.shape[1])
        assert macs2 == macs
