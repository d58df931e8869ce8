"""The packed dense kernel (csrc/dense.c version 5; kernels.pack_dense / PackedDense): its layout,
NaN and Inf in every block edge, threads, and the checks before C trusts a packing. The
comparisons with the reference over random shapes are in test_kernels.py and
test_kernels_properties.py (the packed form beside the other dense forms)."""
import pickle

import numpy as np
import pytest

from pyann import kernels as K


def _case(rng, n, d_in, d_out):
    return (rng.standard_normal((n, d_in), dtype=np.float32), rng.standard_normal((d_in, d_out), dtype=np.float32),
            rng.standard_normal(d_out, dtype=np.float32))


def _same(a, b, d_in):
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_array_equal(np.isposinf(a), np.isposinf(b))
    np.testing.assert_array_equal(np.isneginf(a), np.isneginf(b))
    fin = np.isfinite(b)
    np.testing.assert_allclose(a[fin], b[fin], rtol=1e-4, atol=1e-4 * max(d_in, 1) ** 0.5)


# ---- the packing -----------------------------------------------------------------------------

@pytest.mark.parametrize("d_in, d_out", [(5, 1), (7, 32), (3, 33), (0, 10), (4, 0), (300, 70)])
def test_packed_layout_is_the_documented_one(rng, d_in, d_out):
    w = rng.standard_normal((d_in, d_out), dtype=np.float32)
    pw = K.pack_dense(w)
    p = K.panel_width()
    assert pw.panel == p and pw.shape == (d_in, d_out)
    panels = -(-d_out // p)
    data = pw.data.reshape(panels, d_in, p)   # panel j, row k: w[k, j*p .. j*p + p], zero-padded
    padded = np.zeros((d_in, panels * p), np.float32)
    padded[:, :d_out] = w
    np.testing.assert_array_equal(data, padded.reshape(d_in, panels, p).transpose(1, 0, 2))
    np.testing.assert_array_equal(pw.to_dense(), w)
    if pw.data.size:
        assert pw.data.ctypes.data % 64 == 0   # a panel row never straddles a cache line


def test_packing_is_a_copy(rng):
    x, w, b = _case(rng, 20, 40, 50)
    pw = K.pack_dense(w)
    want = K.dense(x, pw, b)
    w[:] = 0
    np.testing.assert_array_equal(K.dense(x, pw, b), want)


def test_packed_matches_unpacked_at_the_benchmark_shape(rng):
    # one of issue 13's shapes, batch cut to 300 rows: 5 row tasks, the last ragged
    x, w, b = _case(rng, 300, 784, 512)
    pw = K.pack_dense(w)
    for relu in (False, True):
        np.testing.assert_allclose(K.dense(x, pw, b, relu), K.dense(x, w, b, relu), rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(K.dense_packed(x, pw, b, relu), K.dense_reference(x, w, b, relu),
                                   rtol=1e-4, atol=1e-3)


def test_every_ragged_last_sliver(rng):
    # batches of 0 .. 29 rows: every remainder of the 14-row slivers (run as 8 + 4 + 2 + 1-row
    # blocks), beside a full and a ragged panel and two k blocks
    w = rng.standard_normal((300, 45), dtype=np.float32)
    b = rng.standard_normal(45, dtype=np.float32)
    pw = K.pack_dense(w)
    for n in range(30):
        x = rng.standard_normal((n, 300), dtype=np.float32)
        for bias, relu in ((b, True), (None, False)):
            np.testing.assert_allclose(K.dense(x, pw, bias, relu), K.dense_reference(x, w, bias, relu),
                                       rtol=1e-4, atol=1e-3)


def test_packed_dense_pickles(rng):
    x, w, b = _case(rng, 9, 33, 40)
    pw = K.pack_dense(w)
    again = pickle.loads(pickle.dumps(pw))
    np.testing.assert_array_equal(K.dense(x, again, b), K.dense(x, pw, b))


# ---- NaN and Inf: every product computed, in every lane and edge -----------------------------

@pytest.mark.parametrize("where", ["x", "w", "b"])
@pytest.mark.parametrize("n, d_in, d_out", [(15, 37, 40), (60, 600, 70), (1, 3, 1)])
def test_nan_and_inf_as_the_reference(rng, where, n, d_in, d_out):
    x, w, b = _case(rng, n, d_in, d_out)
    a = {"x": x, "w": w, "b": b}[where]
    flat = a.reshape(-1)
    flat[rng.choice(flat.size, min(3, flat.size), replace=False)] = [np.nan, np.inf, -np.inf][:min(3, flat.size)]
    x[0, : min(5, d_in)] = 0   # 0 x Inf is NaN: the kernel skips no zero
    pw = K.pack_dense(w)
    for bias in (b, None):
        for relu in (False, True):
            _same(K.dense(x, pw, bias, relu), K.dense_reference(x, w, bias, relu), d_in)


def test_zero_times_inf_weight_is_nan():
    x = np.zeros((16, 300), np.float32)          # two slivers (14 + 2 rows), two k blocks
    w = np.ones((300, 45), np.float32)           # a full panel and a ragged one
    w[280, 3] = w[10, 40] = np.inf
    y = K.dense(x, K.pack_dense(w), relu=True)
    want = K.dense_reference(x, w, relu=True)
    assert np.isnan(want[:, [3, 40]]).all()
    _same(y, want, 300)


def test_fused_relu_keeps_nan():
    x = np.ones((3, 4), np.float32)
    x[1, 2] = np.nan
    w = -np.ones((4, 40), np.float32)
    y = K.dense(x, K.pack_dense(w), relu=True)
    assert np.isnan(y[1]).all() and (y[[0, 2]] == 0).all()


# ---- threads ---------------------------------------------------------------------------------

def test_threads_do_not_change_the_result(rng):
    # each output is one thread's, summed in the same order whatever the team: bit for bit
    x, w, b = _case(rng, 500, 300, 90)
    pw = K.pack_dense(w)
    many = K.dense(x, pw, b, relu=True)
    try:
        K.set_max_threads(1)
        one = K.dense(x, pw, b, relu=True)
    finally:
        K.set_max_threads(0)
    np.testing.assert_array_equal(one, many)


# ---- what C is not given ---------------------------------------------------------------------

def test_pack_dense_rejects_a_bad_w(rng):
    w = rng.standard_normal((6, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="w must have dtype float32"):
        K.pack_dense(w.astype(np.float64))
    with pytest.raises(ValueError, match="w must be 2-D"):
        K.pack_dense(w[0])
    with pytest.raises(ValueError, match="w must be C-contiguous"):
        K.pack_dense(np.asfortranarray(w))
    with pytest.raises(ValueError, match="w must be a numpy.ndarray"):
        K.pack_dense(w.tolist())
    with pytest.raises(ValueError, match="already a PackedDense"):
        K.pack_dense(K.pack_dense(w))


def test_packed_dense_checks_what_c_will_trust(rng):
    pw = K.pack_dense(rng.standard_normal((6, 40), dtype=np.float32))
    p = pw.panel
    with pytest.raises(ValueError, match=r"data must have shape \(%d\)" % (-(-40 // p) * 6 * p)):
        K.PackedDense(pw.data[:-1].copy(), 6, 40, p)
    with pytest.raises(ValueError, match="data must have dtype float32"):
        K.PackedDense(pw.data.astype(np.float64), 6, 40, p)
    with pytest.raises(ValueError, match=r"data must have shape"):
        K.PackedDense(pw.data, 7, 40, p)          # sizes that do not match the data
    with pytest.raises(ValueError, match="packed for panels of"):
        K.PackedDense(pw.data, 6, 40, 2 * p)      # another build's packing
    for bad in (-1, True, 2.0):
        with pytest.raises(ValueError, match="in_features must be an int >= 0"):
            K.PackedDense(pw.data, bad, 40, p)


def test_dense_packed_rejects_bad_input(rng):
    x, w, b = _case(rng, 4, 6, 40)
    pw = K.pack_dense(w)
    with pytest.raises(ValueError, match="pw must be a PackedDense"):
        K.dense_packed(x, w, b)
    with pytest.raises(ValueError, match=r"x must have shape \(\?, 6\)"):
        K.dense(x[:, :5].copy(), pw, b)
    with pytest.raises(ValueError, match="x must have dtype float32"):
        K.dense(x.astype(np.float64), pw, b)
    with pytest.raises(ValueError, match=r"b must have shape \(40\)"):
        K.dense(x, pw, b[:8].copy())
    with pytest.raises(ValueError, match="out must have shape"):
        K.dense(x, pw, b, out=np.empty((4, 39), np.float32))
    with pytest.raises(ValueError, match="out must not share memory with w"):
        K.dense(x, pw, None, out=pw.data[:160].reshape(4, 40))


def test_dense_packed_refuses_a_packing_for_another_build(rng, monkeypatch):
    x, w, b = _case(rng, 4, 6, 40)
    pw = K.pack_dense(w)
    monkeypatch.setattr(K, "panel_width", lambda: 2 * pw.panel)   # as if unpickled on another ISA
    with pytest.raises(ValueError, match="pack the weights again"):
        K.dense(x, pw, b)


@pytest.mark.parametrize("n", [1, 15, 33])
def test_all_zero_rows_give_the_bias_as_the_reference(rng, n):
    """Rows of zeros (a ReLU's dead samples) beside ordinary ones, widths not a multiple of 16."""
    x, w, b = _case(rng, n, 37, 45)
    x[::2] = 0
    for relu in (False, True):
        got = K.dense(x, K.pack_dense(w), b, relu=relu)
        _same(got, K.dense_reference(x, w, b, relu), 37)
        np.testing.assert_array_equal(got[::2], np.broadcast_to(np.maximum(b, 0) if relu else b, got[::2].shape))
