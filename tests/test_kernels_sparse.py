"""The pruned (sparse) linear kernels against their NumPy reference, on the edges the issue lists,
and the checks on a packed layer (C trusts ptr and idx, so they are checked when packed)."""
import numpy as np
import pytest

from pyann import kernels as K


def _pruned(rng, d_in, d_out, density):
    w = rng.standard_normal((d_in, d_out), dtype=np.float32)
    w[rng.random(w.shape) >= density] = 0
    return w


FORMS = {
    "batched": lambda x, sw, b, relu: K.sparse_linear(x, sw, b, relu),
    "tiled": lambda x, sw, b, relu: K.from_tiles(K.sparse_linear_tiled(K.to_tiles(x), sw, b, relu), len(x)),
    "per sample": lambda x, sw, b, relu: K.sparse_linear_per_sample(x, sw, b, relu),
    "gathered from rows": lambda x, sw, b, relu: K.from_tiles(K.sparse_tiled_gather(x, sw, b, relu), len(x)),
    "gathered from columns": lambda x, sw, b, relu: K.from_tiles(
        K.sparse_tiled_gather(np.ascontiguousarray(x.T), sw, b, relu, columns=True), len(x)),
}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("n, d_in, d_out, density", [
    (0, 8, 5, 0.5), (1, 784, 300, 0.08), (1, 5, 3, 1.0), (17, 33, 20, 0.3), (64, 100, 10, 0.1),
    (100, 300, 100, 0.02), (130, 64, 70, 1.0), (3, 40, 9, 0.0)])
@pytest.mark.parametrize("relu", [False, True])
def test_sparse_matches_reference(rng, form, n, d_in, d_out, density, relu):
    w = _pruned(rng, d_in, d_out, density)
    sw = K.pack_sparse(w)
    x = rng.standard_normal((n, d_in), dtype=np.float32)
    b = rng.standard_normal(d_out, dtype=np.float32)
    for bias in (b, None):
        want = K.dense_reference(x, w, bias, relu)
        np.testing.assert_allclose(FORMS[form](x, sw, bias, relu), want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(K.sparse_linear_reference(x, sw, bias, relu), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("form", FORMS)
def test_empty_rows_all_zero_input_and_wide_inputs(rng, form):
    w = _pruned(rng, 50, 40, 0.2)
    w[:, [0, 7, 39]] = 0                              # outputs with no connection: the bias
    sw = K.pack_sparse(w)
    b = rng.standard_normal(40, dtype=np.float32)
    y = FORMS[form](np.zeros((5, 50), np.float32), sw, b, False)
    np.testing.assert_array_equal(y, np.broadcast_to(b, (5, 40)))
    wide = np.zeros((70_000, 3), np.float32)           # more inputs than a 16-bit index reaches
    wide[[5, 65_536, 69_999], [0, 1, 2]] = [1.0, 2.0, 3.0]
    x = rng.standard_normal((4, 70_000), dtype=np.float32)
    np.testing.assert_allclose(FORMS[form](x, K.pack_sparse(wide), None, False),
                               x[:, [5, 65_536, 69_999]] * [1.0, 2.0, 3.0], rtol=1e-6)


def test_pruned_connections_are_absent_for_nan_and_inf(rng):
    w = _pruned(rng, 20, 18, 0.3)
    w[3, :] = 0
    w[3, 5] = 1.0                                      # input 3 reaches output 5 only
    sw = K.pack_sparse(w)
    x = rng.standard_normal((6, 20), dtype=np.float32)
    x[0, 3], x[1, 3] = np.nan, np.inf
    want = K.sparse_linear_reference(x, sw, None, False)
    assert np.isnan(want[0, 5]) and np.isposinf(want[1, 5])
    assert np.isfinite(np.delete(want, 5, axis=1)).all()   # the dense x @ w would be NaN there
    for form in FORMS.values():
        got = form(x, sw, None, False)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))


@pytest.mark.parametrize("n, d", [(0, 5), (1, 1), (63, 17), (64, 16), (130, 7), (200, 40), (128, 32), (100, 33)])
def test_tiles_round_trip_and_match_the_reference(rng, n, d):
    x = rng.standard_normal((n, d), dtype=np.float32)
    if x.size > 20:   # whole 16 x 16 blocks go through the register transpose: bits kept, NaN and Inf too
        x.flat[[3, 20]] = [np.nan, -np.inf]
        x.view(np.uint32).flat[5] = 0x7fc01234         # a NaN with a payload
    t = K.to_tiles(x)
    if x.size > 20:
        np.testing.assert_array_equal(t.view(np.uint32), K.to_tiles_reference(x).view(np.uint32))
        np.testing.assert_array_equal(K.from_tiles(t, n).view(np.uint32), x.view(np.uint32))
    np.testing.assert_array_equal(t, K.to_tiles_reference(x))
    np.testing.assert_array_equal(K.from_tiles(t, n), x)
    np.testing.assert_array_equal(K.from_tiles_reference(t, n), x)
    if n == 130:
        assert t.shape == (3, 7, 64) and t[1, 2, 5] == x[64 + 5, 2] and not t[2, :, 2:].any()
    assert K.SPARSE_TILE == K._lib().PYANN_SPARSE_TILE
    with pytest.raises(ValueError, match="do not fill"):
        K.from_tiles(t, n + 64)


def test_packing_round_trips_and_counts(rng):
    w = _pruned(rng, 31, 17, 0.25)
    sw = K.pack_sparse(w)
    np.testing.assert_array_equal(sw.to_dense(), w)
    assert sw.nnz == np.count_nonzero(w) and sw.density == pytest.approx(np.count_nonzero(w) / w.size)
    assert (np.diff(sw.idx[sw.ptr[2]:sw.ptr[3]]) > 0).all()   # ascending within a row


def test_bad_packed_layers_and_arguments(rng):
    sw = K.pack_sparse(_pruned(rng, 10, 4, 0.5))
    with pytest.raises(ValueError, match=r"idx must lie in \[0, 10\)"):
        K.SparseWeights(sw.ptr, np.full_like(sw.idx, 10), sw.val, 10, 4)
    with pytest.raises(ValueError, match="ptr must start at 0"):
        K.SparseWeights(sw.ptr[::-1].copy(), sw.idx, sw.val, 10, 4)
    with pytest.raises(ValueError, match="ptr must have shape"):
        K.SparseWeights(sw.ptr[:-1].copy(), sw.idx, sw.val, 10, 4)
    with pytest.raises(ValueError, match="idx must have dtype int32"):
        K.SparseWeights(sw.ptr, sw.idx.astype(np.int64), sw.val, 10, 4)
    with pytest.raises(ValueError, match="must be a SparseWeights"):
        K.sparse_linear_per_sample(np.zeros((2, 10), np.float32), sw.to_dense())
    with pytest.raises(ValueError, match="x must have shape"):
        K.sparse_linear(np.zeros((2, 9), np.float32), sw)
    with pytest.raises(ValueError, match="b must have shape"):
        K.sparse_linear(np.zeros((2, 10), np.float32), sw, np.zeros(5, np.float32))
    x = np.zeros((4, 10), np.float32)
    with pytest.raises(ValueError, match="out must not share memory with x"):
        K.sparse_linear_per_sample(x, sw, out=x.reshape(-1)[:16].reshape(4, 4))


@pytest.mark.parametrize("split_images", [False, True])
def test_sparse_mlp_per_sample_matches_layer_by_layer(rng, split_images):
    sizes = [37, 50, 17, 64, 10]
    ws = [_pruned(rng, a, b, d) for a, b, d in zip(sizes, sizes[1:], (0.1, 1.0, 0.0, 0.3))]
    bs = [rng.standard_normal(b, dtype=np.float32) if i % 2 else None for i, b in enumerate(sizes[1:])]
    relus = [True, False, True, False]
    x = rng.standard_normal((70, 37), dtype=np.float32)
    want = x
    for w, b, r in zip(ws, bs, relus):
        want = K.dense_reference(want, w, b, r)
    for sparse in ([True] * 4, [False] * 4, [True, False, True, False]):
        layers = [(K.pack_sparse(w) if s else w, b, r) for w, b, r, s in zip(ws, bs, relus, sparse)]
        y, macs = K.sparse_mlp_per_sample(x, layers, split_images, return_macs=True)
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
        assert macs == 70 * sum(np.count_nonzero(w) if s else w.size for w, s in zip(ws, sparse))
    assert K.sparse_mlp_per_sample(x[:0], layers).shape == (0, 10)
    with pytest.raises(ValueError, match="has 50 inputs but layer 0 has 17"):
        K.sparse_mlp_per_sample(x, [(ws[0][:, :17].copy(), None, True), (ws[1], None, True)])
    with pytest.raises(ValueError, match="layer width"):
        K.sparse_mlp_per_sample(x, [(np.zeros((37, 0), np.float32), None, True)])


def _block_pruned(rng, d_in, d_out, density):
    keep = rng.random((d_in, d_out // K.SPARSE_BLOCK)) < density
    return rng.standard_normal((d_in, d_out), dtype=np.float32) * np.repeat(keep, K.SPARSE_BLOCK, axis=1)


@pytest.mark.parametrize("n, d_in, d_out, density", [(0, 8, 4, 0.5), (1, 784, 512, 0.1), (70, 33, 20, 0.3),
                                                     (130, 64, 64, 1.0), (5, 10, 8, 0.0)])
@pytest.mark.parametrize("relu", [False, True])
def test_blocked_matches_reference(rng, n, d_in, d_out, density, relu):
    w = _block_pruned(rng, d_in, d_out, density)
    if w.size:
        w[0, 0] = 0.0                                  # a zero inside a kept block stays exact
    bw = K.pack_blocked(w)
    np.testing.assert_array_equal(bw.to_dense(), w)
    assert bw.nnz == K.SPARSE_BLOCK * int(w.reshape(d_in, -1, K.SPARSE_BLOCK).any(axis=2).sum())
    x = rng.standard_normal((n, d_in), dtype=np.float32)
    b = rng.standard_normal(d_out, dtype=np.float32)
    got = K.from_tiles(K.sparse_blocked_tiled(K.to_tiles(x), bw, b, relu), n)
    np.testing.assert_allclose(got, K.dense_reference(x, w, b, relu), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(K.sparse_linear_reference(x, bw.to_sparse(), b, relu),
                               K.dense_reference(x, w, b, relu), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n, d_in, d_out", [(0, 8, 4), (1, 5, 8), (1, 1, 4), (63, 37, 20), (64, 16, 16),
                                           (130, 100, 12), (200, 300, 100), (7, 0, 4), (65, 3, 0)])
@pytest.mark.parametrize("relu", [False, True])
def test_gathered_tiles_equal_the_tiled_kernels_bit_for_bit(rng, n, d_in, d_out, relu):
    """sparse_tiled_gather = to_tiles + the tiled kernel (unstructured and 4x1), rows or columns,
    with NaN and Inf inputs, empty rows, an all-pruned and a fully dense layer."""
    x = rng.standard_normal((n, d_in), dtype=np.float32)
    if x.size > 3:
        x.flat[[1, 3]] = [np.nan, np.inf]
    b = rng.standard_normal(d_out, dtype=np.float32)
    xs = {False: x, True: np.ascontiguousarray(x.T)}
    for density in (0.0, 0.3, 1.0):
        w = _block_pruned(rng, d_in, d_out, density) if d_out % K.SPARSE_BLOCK == 0 else _pruned(rng, d_in, d_out, density)
        if d_out > 1:
            w[:, 1] = 0                                # an empty row
        layers = [(K.pack_sparse(w), K.sparse_linear_tiled)]
        if d_out % K.SPARSE_BLOCK == 0:
            layers.append((K.pack_blocked(w), K.sparse_blocked_tiled))
        for pw, tiled in layers:
            want = tiled(K.to_tiles(x), pw, b, relu)
            for columns, xx in xs.items():
                got = K.sparse_tiled_gather(xx, pw, b, relu, columns=columns)
                assert got.shape == (-(-n // K.SPARSE_TILE), d_out, K.SPARSE_TILE)
                np.testing.assert_array_equal(got, want)
            ref = K.sparse_linear_reference(x, pw if isinstance(pw, K.SparseWeights) else pw.to_sparse(), b, relu)
            np.testing.assert_array_equal(np.isnan(K.from_tiles(want, n)), np.isnan(ref))
            np.testing.assert_allclose(K.from_tiles(want, n), ref, rtol=1e-4, atol=1e-4)


def test_gathered_tiles_errors(rng):
    sw = K.pack_sparse(_pruned(rng, 10, 8, 0.5))
    with pytest.raises(ValueError, match="must be a SparseWeights or BlockSparseWeights"):
        K.sparse_tiled_gather(np.zeros((2, 10), np.float32), _pruned(rng, 10, 8, 0.5))
    with pytest.raises(ValueError, match=r"x must have shape \(\?, 10\)"):
        K.sparse_tiled_gather(np.zeros((2, 9), np.float32), sw)
    with pytest.raises(ValueError, match=r"x must have shape \(10, \?\)"):
        K.sparse_tiled_gather(np.zeros((2, 10), np.float32), sw, columns=True)
    with pytest.raises(ValueError, match="x"):
        K.sparse_tiled_gather(np.zeros((10, 4), np.float32).T, sw)    # not C-contiguous
    with pytest.raises(ValueError, match="b must have shape"):
        K.sparse_tiled_gather(np.zeros((2, 10), np.float32), sw, np.zeros(7, np.float32))


def test_blocked_errors(rng):
    with pytest.raises(ValueError, match="divisible by 4"):
        K.pack_blocked(np.ones((3, 10), np.float32))
    bw = K.pack_blocked(_block_pruned(rng, 10, 8, 0.5))
    with pytest.raises(ValueError, match=r"idx must lie in \[0, 10\)"):
        K.BlockSparseWeights(bw.ptr, np.full_like(bw.idx, 11), bw.val, 10, 8)
    with pytest.raises(ValueError, match="val must have shape"):
        K.BlockSparseWeights(bw.ptr, bw.idx, bw.val[:-1].copy(), 10, 8)
    with pytest.raises(ValueError, match="must be a BlockSparseWeights"):
        K.sparse_blocked_tiled(K.to_tiles(np.zeros((2, 10), np.float32)), K.pack_sparse(bw.to_dense()))


# ---- sparse x sparse: weights by input, the zero inputs skipped (csrc/sparse.c 7-9) -----------

ZS_FORMS = {
    "batched": lambda x, iw, b, relu: K.sparse_zeroskip(x, iw, b, relu, return_macs=True),
    "one at a time": lambda x, iw, b, relu: K.sparse_zeroskip(x, iw, b, relu, one_at_a_time=True, return_macs=True),
    "mlp, split images": lambda x, iw, b, relu: K.sparse_mlp_per_sample(x, [(iw, b, relu)], True, return_macs=True),
    "mlp, split outputs": lambda x, iw, b, relu: K.sparse_mlp_per_sample(x, [(iw, b, relu)], False, return_macs=True),
}


def _relu_like(rng, n, d, density):
    x = np.abs(rng.standard_normal((n, d), dtype=np.float32))
    x[rng.random(x.shape) >= density] = 0
    return x


@pytest.mark.parametrize("form", ZS_FORMS)
@pytest.mark.parametrize("n, d_in, d_out, density, x_density", [
    (0, 8, 5, 0.5, 0.5), (1, 784, 300, 0.08, 0.2), (1, 5, 3, 1.0, 1.0), (17, 33, 20, 0.3, 0.15),
    (64, 100, 10, 0.1, 0.5), (100, 300, 100, 0.02, 0.3), (130, 64, 70, 1.0, 0.1), (3, 40, 9, 0.0, 0.5),
    (20, 50, 47, 0.2, 0.0), (5, 0, 7, 0.5, 0.5)])
@pytest.mark.parametrize("relu", [False, True])
def test_sparse_zeroskip_matches_reference(rng, form, n, d_in, d_out, density, x_density, relu):
    if d_in == 0 and form.startswith("mlp"):
        pytest.skip("an MLP's widths are at least 1")
    w = _pruned(rng, d_in, d_out, density)
    if d_in > 2 and d_out > 2:
        w[1, :], w[:, 2] = 0, 0                       # an input with no kept output, an output with no input
    iw = K.pack_sparse_by_input(w)
    x = _relu_like(rng, n, d_in, x_density)
    x[:, ::3] *= -1                                    # negative inputs are nonzero too
    b = rng.standard_normal(d_out, dtype=np.float32)
    for bias in (b, None):
        want = K.dense_reference(x, w, bias, relu)
        np.testing.assert_allclose(K.sparse_zeroskip_reference(x, iw, bias, relu), want, rtol=1e-4, atol=1e-4)
        y, macs = ZS_FORMS[form](x, iw, bias, relu)
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
        assert macs == K.sparse_zeroskip_macs_reference(x, iw) == int(((x != 0).astype(np.int64) @ (w != 0).astype(np.int64)).sum())


def test_sparse_zeroskip_packing_and_index_widths(rng):
    w = _pruned(rng, 31, 17, 0.25)
    iw = K.pack_sparse_by_input(w)
    np.testing.assert_array_equal(iw.to_dense(), w)
    assert iw.idx.dtype == np.uint16 and iw.nnz == np.count_nonzero(w)
    np.testing.assert_array_equal(iw.row_lengths, np.count_nonzero(w, axis=1))
    assert iw.density == pytest.approx(K.pack_sparse(w).density)
    assert K.pack_sparse_by_input(np.zeros((3, 65_536), np.float32)).idx.dtype == np.uint16
    assert K.pack_sparse_by_input(np.zeros((3, 65_537), np.float32)).idx.dtype == np.int32
    # the same layer with int32 indices (allowed at any width) gives the same result
    wide = K.InputSparseWeights(iw.ptr, iw.idx.astype(np.int32), iw.val, 31, 17)
    x = _relu_like(rng, 9, 31, 0.3)
    np.testing.assert_array_equal(K.sparse_zeroskip(x, wide), K.sparse_zeroskip(x, iw))


@pytest.mark.parametrize("form", ZS_FORMS)
def test_sparse_zeroskip_all_zero_input_and_wide_layers(rng, form):
    w = _pruned(rng, 50, 40, 0.2)
    b = rng.standard_normal(40, dtype=np.float32)
    y, macs = ZS_FORMS[form](np.zeros((5, 50), np.float32), K.pack_sparse_by_input(w), b, False)
    np.testing.assert_array_equal(y, np.broadcast_to(b, (5, 40)))
    assert macs == 0
    many_in = np.zeros((70_000, 3), np.float32)       # more inputs than a 16-bit index reaches
    many_in[[5, 65_536, 69_999], [0, 1, 2]] = [1.0, 2.0, 3.0]
    x = rng.standard_normal((4, 70_000), dtype=np.float32)
    y, _ = ZS_FORMS[form](x, K.pack_sparse_by_input(many_in), None, False)
    np.testing.assert_allclose(y, x[:, [5, 65_536, 69_999]] * [1.0, 2.0, 3.0], rtol=1e-6)
    many_out = np.zeros((3, 70_000), np.float32)      # more outputs than uint16 indices reach
    many_out[[0, 1, 2, 2], [5, 65_536, 69_999, 3]] = [1.0, 2.0, 3.0, 4.0]
    iw = K.pack_sparse_by_input(many_out)
    assert iw.idx.dtype == np.int32
    x = rng.standard_normal((2, 3), dtype=np.float32)
    y, macs = ZS_FORMS[form](x, iw, None, False)
    np.testing.assert_allclose(y, K.dense_reference(x, many_out), rtol=1e-6)
    assert macs == 8


def test_sparse_zeroskip_nan_inf_and_zero_times_inf(rng):
    w = _pruned(rng, 20, 18, 0.3)
    w[3, :] = 0
    w[3, 5] = 1.0                                      # input 3 reaches output 5 only
    w[4, :] = 0
    w[4, 6] = np.inf                                   # input 4 reaches output 6 with an infinite weight
    iw = K.pack_sparse_by_input(w)
    x = _relu_like(rng, 6, 20, 0.5)
    x[0, 3], x[1, 3] = np.nan, np.inf
    x[2, 4], x[3, 4] = 0.0, 2.0
    want = K.sparse_zeroskip_reference(x, iw)
    assert np.isnan(want[0, 5]) and np.isposinf(want[1, 5])
    assert np.isfinite(want[2]).all()                 # 0 x Inf skipped with the zero input
    assert np.isposinf(want[3, 6])
    assert np.isnan(K.dense_reference(x, w)[2, 6])    # where the dense layer would say NaN
    for form in ZS_FORMS.values():
        got, _ = form(x, iw, None, False)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
        fin = np.isfinite(want)
        np.testing.assert_allclose(got[fin], want[fin], rtol=1e-5, atol=1e-5)


def test_sparse_zeroskip_bad_layers_and_arguments(rng):
    iw = K.pack_sparse_by_input(_pruned(rng, 10, 6, 0.5))
    assert iw.nnz > 3 and (iw.row_lengths > 1).any()
    with pytest.raises(ValueError, match=r"idx must lie in \[0, 6\)"):
        K.InputSparseWeights(iw.ptr, np.full_like(iw.idx, 6), iw.val, 10, 6)
    k = int(np.argmax(iw.row_lengths > 1))
    unsorted = iw.idx.copy()
    p = iw.ptr[k]
    unsorted[p], unsorted[p + 1] = unsorted[p + 1], unsorted[p]
    with pytest.raises(ValueError, match="strictly ascending"):
        K.InputSparseWeights(iw.ptr, unsorted, iw.val, 10, 6)
    repeated = iw.idx.copy()
    repeated[p + 1] = repeated[p]
    with pytest.raises(ValueError, match="strictly ascending"):
        K.InputSparseWeights(iw.ptr, repeated, iw.val, 10, 6)
    with pytest.raises(ValueError, match="ptr must start at 0"):
        K.InputSparseWeights(iw.ptr[::-1].copy(), iw.idx, iw.val, 10, 6)
    with pytest.raises(ValueError, match="ptr must have shape"):
        K.InputSparseWeights(iw.ptr[:-1].copy(), iw.idx, iw.val, 10, 6)
    with pytest.raises(ValueError, match="idx must be a numpy.ndarray of uint16"):
        K.InputSparseWeights(iw.ptr, iw.idx.astype(np.int64), iw.val, 10, 6)
    with pytest.raises(ValueError, match="idx is uint16 but out_features"):
        K.InputSparseWeights(iw.ptr, iw.idx, iw.val, 10, 70_000)
    with pytest.raises(ValueError, match="val must have shape"):
        K.InputSparseWeights(iw.ptr, iw.idx, iw.val[:-1].copy(), 10, 6)
    with pytest.raises(ValueError, match="must be an InputSparseWeights"):
        K.sparse_zeroskip(np.zeros((2, 10), np.float32), K.pack_sparse(iw.to_dense()))
    with pytest.raises(ValueError, match="x must have shape"):
        K.sparse_zeroskip(np.zeros((2, 9), np.float32), iw)
    with pytest.raises(ValueError, match="x must have dtype float32"):
        K.sparse_zeroskip(np.zeros((2, 10)), iw)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        K.sparse_zeroskip(np.zeros((10, 2), np.float32).T, iw)
    with pytest.raises(ValueError, match="b must have shape"):
        K.sparse_zeroskip(np.zeros((2, 10), np.float32), iw, np.zeros(5, np.float32))
    x = np.zeros((4, 10), np.float32)
    with pytest.raises(ValueError, match="out must not share memory with x"):
        K.sparse_zeroskip(x, iw, out=x.reshape(-1)[:24].reshape(4, 6))
    out = np.full((4, 6), np.nan, np.float32)
    assert K.sparse_zeroskip(x, iw, out=out) is out and not out.any()
    with pytest.raises(ValueError, match="has 10 inputs but layer 0 has 6"):
        K.sparse_mlp_per_sample(x, [(iw, None, True), (iw, None, False)])


def test_sparse_zeroskip_c_refuses_bad_sizes():
    """The C entry point's own checks: an error code, never a crash, for what the wrapper stops."""
    lib, ffi = K._lib(), K._ext.ffi
    ptr = ffi.new("int64_t[]", [0, 1, 1])
    idx16, idx32 = ffi.new("uint16_t[]", [0]), ffi.new("int32_t[]", [0])
    val, x, y = ffi.new("float[]", [1.0]), ffi.new("float[]", 4), ffi.new("float[]", 4)
    ok = lambda *a: lib.pyann_sparse_zeroskip(*a)
    assert ok(x, ptr, idx16, ffi.NULL, val, ffi.NULL, y, 2, 2, 2, 0, 0, ffi.NULL) == K._lib().PYANN_OK
    assert y[0] == x[0] and y[1] == 0
    for n, d_in, d_out in ((-1, 2, 2), (2, -1, 2), (2, 2, -1), (2, 2, 2**31)):
        assert ok(x, ptr, idx16, ffi.NULL, val, ffi.NULL, y, n, d_in, d_out, 0, 0, ffi.NULL) == lib.PYANN_EINVAL
    assert ok(x, ptr, idx16, idx32, val, ffi.NULL, y, 2, 2, 2, 0, 0, ffi.NULL) == lib.PYANN_EINVAL   # both widths
    assert ok(x, ptr, ffi.NULL, ffi.NULL, val, ffi.NULL, y, 2, 2, 2, 0, 1, ffi.NULL) == lib.PYANN_EINVAL
    assert ok(x, ptr, idx16, ffi.NULL, val, ffi.NULL, y, 2, 2, 70_000, 0, 0, ffi.NULL) == lib.PYANN_EINVAL
    assert ok(x, ffi.NULL, idx16, ffi.NULL, val, ffi.NULL, y, 2, 2, 2, 0, 0, ffi.NULL) == lib.PYANN_EINVAL
    assert ok(ffi.NULL, ptr, idx16, ffi.NULL, val, ffi.NULL, y, 2, 2, 2, 0, 0, ffi.NULL) == lib.PYANN_EINVAL


def test_sparse_mlp_per_sample_mixes_all_three_layer_kinds(rng):
    sizes = [37, 50, 17, 64, 10]
    ws = [_pruned(rng, a, b, d) for a, b, d in zip(sizes, sizes[1:], (0.3, 0.2, 1.0, 0.1))]
    bs = [rng.standard_normal(b, dtype=np.float32) for b in sizes[1:]]
    relus = [True, True, True, False]
    x = rng.standard_normal((40, 37), dtype=np.float32)
    hs, want = [x], x
    for w, b, r in zip(ws, bs, relus):
        want = K.dense_reference(want, w, b, r)
        hs.append(want)
    packs = [K.pack_sparse(ws[0]), K.pack_sparse_by_input(ws[1]), ws[2], K.pack_sparse_by_input(ws[3])]
    for split_images in (True, False):
        y, macs = K.sparse_mlp_per_sample(x, list(zip(packs, bs, relus)), split_images, return_macs=True)
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
        assert macs == (40 * (np.count_nonzero(ws[0]) + ws[2].size) + K.sparse_zeroskip_macs_reference(hs[1], packs[1])
                        + K.sparse_zeroskip_macs_reference(hs[3], packs[3]))



@pytest.mark.parametrize("split_images", [True, False])
def test_sparse_mlp_per_sample_dense_zero_skipping_layers(rng, split_images):
    """(w, b, relu, True): a dense layer that skips each sample's zero inputs (relu_predict.c 3)
    inside the sparse loop: the reference's result, its MACs the nonzero inputs x outputs; an
    all-zero input, NaN and Inf inputs (nonzero: they propagate), widths not multiples of 16."""
    sizes = [37, 50, 17, 10]
    ws = [_pruned(rng, a, b, d) for a, b, d in zip(sizes, sizes[1:], (0.3, 1.0, 0.2))]
    ws[0][:, 5] = 0                                                       # an output with no inputs: its bias
    bs = [rng.standard_normal(b, dtype=np.float32) for b in sizes[1:]]
    relus = [True, True, False]
    x = np.maximum(rng.standard_normal((40, 37), dtype=np.float32), 0)   # about half zeros
    x[3] = 0
    x[5, 2], x[6, 4] = np.nan, np.inf
    hs, want = [x], x
    for w, b, r in zip(ws, bs, relus):
        want = K.dense_reference(want, w, b, r)
        hs.append(want)
    layers = [(ws[0], bs[0], True, True), (K.pack_sparse(ws[1]), bs[1], True), (ws[2], bs[2], False, True)]
    y, macs = K.sparse_mlp_per_sample(x, layers, split_images, return_macs=True)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)   # NaN where the reference has NaN
    assert macs == (np.count_nonzero(hs[0]) * 50 + 40 * np.count_nonzero(ws[1]) + np.count_nonzero(hs[2]) * 10)
    for m in (0, 1):                                                      # batch 0 and 1
        got = K.sparse_mlp_per_sample(x[:m], layers, split_images)
        assert got.shape == (m, 10)
        np.testing.assert_allclose(got, want[:m], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="zero_skip is for a dense w"):
        K.sparse_mlp_per_sample(x, [(K.pack_sparse(ws[0]), bs[0], True, True)])
    with pytest.raises(ValueError, match=r"must be \(w, b, relu\) or \(w, b, relu, zero_skip\)"):
        K.sparse_mlp_per_sample(x, [(ws[0], bs[0])])

# ---- sparse convolution without im2col columns (csrc/sparse.c 6'', 10) -------------------------

@pytest.mark.parametrize("n, c, h, w, k, stride, dil, pad, f", [
    (0, 2, 5, 5, 3, 1, 1, 0, 4), (1, 1, 28, 28, 3, 1, 1, 1, 32), (3, 32, 14, 14, 3, 1, 1, 1, 64),
    (1, 3, 9, 7, 3, 2, 1, 1, 8), (2, 2, 10, 11, 3, 1, 2, 2, 12), (5, 4, 6, 6, 1, 1, 1, 0, 5),
    (1, 1, 3, 3, 3, 1, 1, 0, 4), (2, 5, 17, 13, 5, 3, 1, 2, 20)])
@pytest.mark.parametrize("relu", [False, True])
def test_sparse_conv_equals_im2col_and_the_gathered_kernel(rng, n, c, h, w, k, stride, dil, pad, f, relu):
    """sparse_conv_tiled = im2col + sparse_tiled_gather bit for bit (unstructured and 4x1; NaN and
    Inf pixels, an empty row, all-pruned and fully dense filters, widths not multiples of 16), and
    the NumPy reference on the columns."""
    from pyann.ops.conv import _pad, im2col
    from pyann.ops.pooling import maxpool2d_forward
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    if x.size > 7:
        x.flat[[2, 7]] = [np.nan, -np.inf]
    xp = np.ascontiguousarray(_pad(x, pad))
    ho, wo = K.conv_positions(xp.shape[2], xp.shape[3], k, stride, dil)
    cols = np.ascontiguousarray(im2col(xp, k, k, ho, wo, stride, dil).reshape(c * k * k, n * ho * wo))
    b = rng.standard_normal(f, dtype=np.float32)
    for density in (0.0, 0.3, 1.0):
        wt = _pruned(rng, c * k * k, f, density)
        if f > 1:
            wt[:, 1] = 0
        for pw in [K.pack_sparse(wt)] + ([K.pack_blocked(wt)] if f % K.SPARSE_BLOCK == 0 else []):
            got = K.sparse_conv_tiled(xp, pw, k, stride, dil, b, relu)
            assert got.shape == (-(-(n * ho * wo) // K.SPARSE_TILE), f, K.SPARSE_TILE)
            np.testing.assert_array_equal(got, K.sparse_tiled_gather(cols, pw, b, relu, columns=True))
            images = K.sparse_conv(xp, pw, k, stride, dil, b, relu)          # the same, written as images
            want = K.from_tiles(got, n * ho * wo).reshape(n, ho, wo, f).transpose(0, 3, 1, 2)
            assert images.shape == (n, f, ho, wo) and images.flags.c_contiguous
            np.testing.assert_array_equal(images, want)
            if ho >= 2 and wo >= 2:   # the 2x2 max-pool fused: NumPy's pool of those images, bit for bit
                pooled = K.sparse_conv(xp, pw, k, stride, dil, b, relu, pool=2)
                assert pooled.shape == (n, f, ho // 2, wo // 2) and pooled.flags.c_contiguous
                np.testing.assert_array_equal(pooled, maxpool2d_forward(images, 2)[0])   # NaN where NumPy's has NaN
            elif n:
                with pytest.raises(ValueError, match="a 2x2 pool does not fit the 1x1 output"):
                    K.sparse_conv(xp, pw, k, stride, dil, b, relu, pool=2)
            kept = pw if isinstance(pw, K.SparseWeights) else pw.to_sparse()   # a 4x1 block's zeros multiply too
            ref = K.sparse_linear_reference(np.ascontiguousarray(cols.T), kept, b, relu)
            rows = K.from_tiles(got, n * ho * wo)
            np.testing.assert_array_equal(np.isnan(rows), np.isnan(ref))
            np.testing.assert_allclose(rows, ref, rtol=1e-4, atol=1e-4)


def test_sparse_conv_errors(rng):
    sw = K.pack_sparse(_pruned(rng, 18, 8, 0.5))          # 2 channels x 3 x 3
    x = np.zeros((1, 2, 6, 6), np.float32)
    assert K.sparse_conv_tiled(x, sw, 3).shape == (1, 8, 64)
    with pytest.raises(ValueError, match="2 channels"):
        K.sparse_conv_tiled(x, sw, 2)
    with pytest.raises(ValueError, match="3 channels"):
        K.sparse_conv_tiled(np.zeros((1, 3, 6, 6), np.float32), sw, 3)
    with pytest.raises(ValueError, match="does not fit"):
        K.sparse_conv_tiled(np.zeros((1, 2, 6, 6), np.float32), sw, 3, dilation=3)
    for bad in (dict(stride=0), dict(dilation=-1), dict(stride=1.5), dict(stride=True)):
        with pytest.raises(ValueError, match="must be an int >= 1"):
            K.sparse_conv_tiled(x, sw, 3, **bad)
    with pytest.raises(ValueError, match="must be a SparseWeights or BlockSparseWeights"):
        K.sparse_conv_tiled(x, _pruned(rng, 18, 8, 0.5), 3)
    with pytest.raises(ValueError, match="x must be 4-D"):
        K.sparse_conv_tiled(x[0], sw, 3)
    with pytest.raises(ValueError, match="x"):
        K.sparse_conv_tiled(np.zeros((1, 6, 6, 2), np.float32).transpose(0, 3, 1, 2), sw, 3)   # not C-contiguous
    with pytest.raises(ValueError, match="b must have shape"):
        K.sparse_conv_tiled(x, sw, 3, b=np.zeros(3, np.float32))
    assert K.sparse_conv_tiled(np.zeros((0, 2, 2, 2), np.float32), sw, 3).shape == (0, 8, 64)   # no image: no check
    assert K.sparse_conv(np.zeros((0, 2, 6, 6), np.float32), sw, 3).shape == (0, 8, 4, 4)
    with pytest.raises(ValueError, match="out must have shape"):
        K.sparse_conv(x, sw, 3, out=np.zeros((1, 8, 16), np.float32))
    for bad in (3, 0, True, 2.0):
        with pytest.raises(ValueError, match="pool must be 1 .none. or 2"):
            K.sparse_conv(x, sw, 3, pool=bad)
    assert K.sparse_conv(x, sw, 3, pool=2).shape == (1, 8, 2, 2)


@pytest.mark.parametrize("pool", [1, 2])
def test_sparse_conv_of_all_zero_images_is_its_bias(rng, pool):
    """All-zero images (padded, 7x7 maps: the pool drops the last row and column): every output
    is the filter's bias after the ReLU, unstructured and 4x1."""
    wt = _pruned(rng, 2 * 9, 12, 0.4)
    b = rng.standard_normal(12, dtype=np.float32)
    x = np.zeros((2, 2, 9, 9), np.float32)
    for pw in (K.pack_sparse(wt), K.pack_blocked(wt)):
        y = K.sparse_conv(x, pw, 3, b=b, relu=True, pool=pool)
        assert y.shape == (2, 12, 7 // pool, 7 // pool)
        np.testing.assert_array_equal(y, np.broadcast_to(np.maximum(b, 0)[None, :, None, None], y.shape))


@pytest.mark.parametrize("n", [1, 70])
def test_gathered_tiles_all_zero_rows_as_the_reference(rng, n):
    """All-zero input rows (and an all-zero input) through the gathered kernel, rows and columns."""
    w = _pruned(rng, 37, 20, 0.3)
    b = rng.standard_normal(20, dtype=np.float32)
    x = rng.standard_normal((n, 37), dtype=np.float32)
    x[::2] = 0
    for xx in (x, np.zeros_like(x)):
        pw = K.pack_sparse(w)
        ref = K.sparse_linear_reference(xx, pw, b, True)
        for columns, inp in ((False, xx), (True, np.ascontiguousarray(xx.T))):
            got = K.from_tiles(K.sparse_tiled_gather(inp, pw, b, True, columns=columns), n)
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_kernel_outputs_start_on_a_cache_line(rng):
    """Every array a kernel allocates starts on a 64-byte boundary (kernels.aligned_empty): NumPy's
    large arrays start 16 bytes past one, and a tile row read from there straddles two lines at
    every vector load (the tiled kernel measured 2x slower)."""
    w = _pruned(rng, 37, 20, 0.3)
    sw, bw = K.pack_sparse(w), K.pack_blocked(w)
    x = rng.standard_normal((3000, 37), dtype=np.float32)   # a large array: NumPy's own is 16 past a line
    xt = K.to_tiles(x)
    outs = [xt, K.from_tiles(xt, 3000), K.sparse_tiled_gather(x, sw), K.sparse_linear_tiled(xt, sw),
            K.sparse_blocked_tiled(xt, bw), K.dense(x, K.pack_dense(w)), K.aligned_empty(7)]
    for y in outs:
        assert y.ctypes.data % 64 == 0 and y.dtype == np.float32 and y.flags.c_contiguous
    assert K.aligned_empty((2, 3)).shape == (2, 3) and K.aligned_empty((0, 5)).shape == (0, 5)
    np.testing.assert_array_equal(K.from_tiles(xt, 3000), x)


def test_sparse_tiled_runs_the_kernel_its_weights_are_packed_for(rng):
    w = _pruned(rng, 37, 20, 0.3)
    xt = K.to_tiles(rng.standard_normal((70, 37), dtype=np.float32))
    np.testing.assert_array_equal(K.sparse_tiled(xt, K.pack_sparse(w), relu=True),
                                  K.sparse_linear_tiled(xt, K.pack_sparse(w), relu=True))
    np.testing.assert_array_equal(K.sparse_tiled(xt, K.pack_blocked(w)), K.sparse_blocked_tiled(xt, K.pack_blocked(w)))
    with pytest.raises(ValueError, match="must be a SparseWeights or BlockSparseWeights"):
        K.sparse_tiled(xt, w)
