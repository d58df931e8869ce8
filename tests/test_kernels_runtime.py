"""The kernels' runtime: threads (cap, fork), allocation failure, the wrapper's limits, aliasing
and alignment of arrays, and NaN/Inf in every lane (issue 10's findings, one test each)."""
import multiprocessing
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pyann import kernels as K

SANITIZED = "PYANN_KERNELS_DIR" in os.environ


def _run_python(code: str, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


# ---- NaN and Inf: every lane as the reference ------------------------------------------------

def _same(a, b, rtol=1e-4, atol=1e-4):
    """Equal NaN positions, equal infinities (with sign), and close finite values."""
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_array_equal(np.isposinf(a), np.isposinf(b))
    np.testing.assert_array_equal(np.isneginf(a), np.isneginf(b))
    fin = np.isfinite(b)
    np.testing.assert_allclose(a[fin], b[fin], rtol=rtol, atol=atol)


def test_fused_relu_keeps_nan_in_vector_lanes():
    # the repro: columns 0..31 are vector lanes, 32..39 the scalar tail
    x = np.ones((1, 4), np.float32)
    x[0, 0] = np.nan
    w = np.ones((4, 40), np.float32)
    want = K.dense_reference(x, w, relu=True)
    assert np.isnan(want).all()
    for y in (K.dense(x, w, relu=True), K.dense_per_sample(x, w, relu=True), K.dense_gemv(x[0], w, relu=True)[None],
              K.relu_layer(x, w, relu=True), K.relu_layer(x, w, relu=True, zero_skip=True),
              K.relu_layer(x, w, relu=True, zero_skip=True, one_at_a_time=True),
              K.relu_layer(x, w, relu=True, zero_skip=True, scheme="union"),
              K.mlp_per_sample(x, [w], [None], relus=[True])):
        _same(y, want)


@pytest.mark.parametrize("where", ["x", "w", "b"])
def test_nan_and_inf_in_dense_and_masked_layers(rng, where):
    n, i, o = 9, 37, 70
    x = rng.standard_normal((n, i), dtype=np.float32)
    w = rng.standard_normal((i, o), dtype=np.float32)
    b = rng.standard_normal(o, dtype=np.float32)
    a = {"x": x, "w": w, "b": b}[where]
    flat = a.reshape(-1)
    flat[rng.choice(flat.size, 3, replace=False)] = [np.nan, np.inf, -np.inf]
    if where != "w":
        x[0, :5] = 0   # 0 x Inf
    mask = rng.random((n, o)) < 0.5
    for relu in (False, True):
        want = K.dense_reference(x, w, b, relu)
        _same(K.dense(x, w, b, relu), want)
        _same(K.dense_per_sample(x, w, b, relu), want)
        _same(K.relu_layer(x, w, b, mask, relu=relu), K.relu_layer_reference(x, w, b, mask, relu))
        _same(K.relu_layer(x, w, b, mask, relu=relu, one_at_a_time=True), K.relu_layer_reference(x, w, b, mask, relu))
        if where != "w":
            for scheme in ("list", "union"):
                _same(K.relu_layer(x, w, b, None, True, relu, scheme=scheme), want)


def test_zero_skipping_refuses_non_finite_weights(rng):
    x = rng.standard_normal((3, 8), dtype=np.float32)
    w = rng.standard_normal((8, 16), dtype=np.float32)
    w[2, 3] = np.inf
    with pytest.raises(ValueError, match="w holds NaN or Inf"):
        K.zeroskip_dense(x, w)
    with pytest.raises(ValueError, match=r"weights\[0\] holds NaN or Inf"):
        K.mlp_per_sample(x, [w], [None], zero_skip=True)
    K.masked_dense(x, w, mask=np.ones(16, np.uint8))          # no zero skipping: fine
    assert K.all_finite(np.ones(33, np.float32)) and not K.all_finite(w)
    v = np.ones(33, np.float32)
    v[32] = np.nan                                           # the scalar tail too
    assert not K.all_finite(v)


# ---- threads ---------------------------------------------------------------------------------

def _kernel_sum(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((200, 300), dtype=np.float32)
    w = rng.standard_normal((300, 256), dtype=np.float32)
    x[x < 0] = 0
    return float(K.dense(x, w).sum() + K.dense(x, K.pack_dense(w)).sum() + K.relu_layer(x, w, zero_skip=True).sum()
                 + K.relu_layer(x[:4], w, zero_skip=True, one_at_a_time=True).sum())


def test_kernels_work_in_a_fork_pool_after_the_parent_used_them():
    want = [_kernel_sum(s) for s in range(4)]   # the parent runs every parallel region first
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map_async(_kernel_sum, range(4)).get(timeout=60)   # hung forever before
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_huge_omp_num_threads_is_capped():
    r = _run_python("""
        import numpy as np, pyann.kernels as K
        x = np.ones((256, 64), np.float32); w = np.ones((64, 64), np.float32)
        print(K.num_threads(), float(K.dense(x, w).sum()))
    """, env={"OMP_NUM_THREADS": "70000"})
    assert r.returncode == 0, r.stderr     # a segfault in libgomp before
    threads, total = r.stdout.split()
    assert 1 <= int(threads) <= os.cpu_count() and float(total) == 256 * 64 * 64


def test_set_max_threads():
    before = K.num_threads()
    try:
        K.set_max_threads(1)
        assert K.num_threads() == 1
        assert _kernel_sum(0) == pytest.approx(_kernel_sum(0))
    finally:
        K.set_max_threads(0)
    assert K.num_threads() == before
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="set_max_threads"):
            K.set_max_threads(bad)


# ---- limits and allocation ------------------------------------------------------------------

def test_limits_are_value_errors_not_kernel_errors():
    # a layer of width 0 and an input over the int32 range: C refuses them, the wrapper first
    with pytest.raises(ValueError, match="layer width"):
        K.mlp_per_sample(np.ones((2, 4), np.float32), [np.ones((4, 0), np.float32)], [None])
    with pytest.raises(ValueError, match="layer width"):
        K.mlp_per_sample(np.ones((2, 0), np.float32), [np.ones((0, 3), np.float32)], [None])
    huge = 2**31
    with pytest.raises(ValueError, match="input features"):
        K.relu_layer(np.empty((0, huge), np.float32), np.empty((huge, 0), np.float32), zero_skip=True)


@pytest.mark.skipif(SANITIZED, reason="AddressSanitizer reserves more address space than the limit")
def test_failed_allocation_is_memory_error():
    r = _run_python("""
        import resource, numpy as np, pyann.kernels as K
        w = np.ones((4096, 8192), np.float32)            # 128 MiB; the kernel packs a copy of it
        x = np.ones((2, 4096), np.float32)
        K.relu_layer(x, w, mask=np.ones(8192, np.uint8))  # warm: threads and buffers exist
        used = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + (64 << 20), resource.RLIM_INFINITY))
        try:
            K.relu_layer(x, w, mask=np.ones(8192, np.uint8))
        except MemoryError as e:
            print('MemoryError', e)
    """)
    assert r.returncode == 0, r.stderr
    assert "MemoryError pyann_relu_layer: out of memory" in r.stdout


# ---- aliasing and alignment ------------------------------------------------------------------

def test_out_may_not_alias_any_input(rng):
    # silent garbage before (errors up to 4e12): out was checked against x, w and b only
    x = rng.standard_normal((4, 16), dtype=np.float32)
    w = rng.standard_normal((16, 16), dtype=np.float32)
    buf = np.zeros(4 * 16, np.float32)
    out, b = buf.reshape(4, 16), buf[48:]             # b is the last row of out
    with pytest.raises(ValueError, match="share memory with b"):
        K.relu_layer(x, w, b, out=out)
    with pytest.raises(ValueError, match="share memory with w"):
        K.dense(x, w, None, out=w[:4])
    mask = out.view(np.uint8).reshape(-1)[:16]        # a shared mask inside out's bytes
    with pytest.raises(ValueError, match="share memory with mask"):
        K.masked_dense(x, w, None, mask, out=out)
    u = rng.standard_normal((16, 4), dtype=np.float32)
    v = rng.standard_normal((4, 16), dtype=np.float32)
    with pytest.raises(ValueError, match=r"share memory with predictors\[0\] v"):
        K.mlp_per_sample(x, [w], [None], predictors=[(u, v, 0.0)], out=v)
    w2 = np.ones((16, 4), np.float32)
    with pytest.raises(ValueError, match=r"share memory with weights\[1\]"):
        K.mlp_per_sample(x, [w, w2], [None, None], out=w2[:4])
    with pytest.raises(ValueError, match=r"share memory with masks\[0\]"):
        K.mlp_per_sample(x[:1], [w], [None], masks=[mask], out=out[:1])


def _unaligned(a: np.ndarray) -> np.ndarray:
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, a.dtype, a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def test_unaligned_arrays_give_the_aligned_result(rng):
    x = rng.standard_normal((5, 33), dtype=np.float32)
    x[x < 0] = 0
    w = rng.standard_normal((33, 40), dtype=np.float32)
    b = rng.standard_normal(40, dtype=np.float32)
    want = K.dense_reference(x, w, b, True)
    ux, uw, ub = _unaligned(x), _unaligned(w), _unaligned(b)
    for form in (K.dense, K.dense_per_sample, K.zeroskip_dense):
        np.testing.assert_allclose(form(ux, uw, ub, relu=True), want, rtol=1e-4, atol=1e-4)
        out = _unaligned(np.zeros((5, 40), np.float32))
        assert form(ux, uw, ub, relu=True, out=out) is out
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(K.mlp_per_sample(ux, [uw], [ub], relus=[True]), want, rtol=1e-4, atol=1e-4)
