"""The dense C kernels against their NumPy reference, and the wrapper's input checks."""
import numpy as np
import pytest

from pyann import kernels



def _packed(x, w, b=None, relu=False, out=None):
    """The batched layer from packed weights (the packing's own checks included)."""
    return kernels.dense(x, kernels.pack_dense(w), b, relu=relu, out=out)


FORMS = [kernels.dense, kernels.dense_per_sample, _packed]


def _case(rng, n, d_in, d_out):
    x = rng.standard_normal((n, d_in), dtype=np.float32)
    w = rng.standard_normal((d_in, d_out), dtype=np.float32)
    b = rng.standard_normal(d_out, dtype=np.float32)
    return x, w, b


def _tol(d_in):
    return dict(rtol=1e-4, atol=1e-5 * max(d_in, 1) ** 0.5 * 10)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("n, d_in, d_out", [(1, 1, 1), (3, 7, 5), (5, 17, 33), (64, 784, 512), (70, 100, 130),
                                             (9, 31, 15), (4, 16, 16), (2, 513, 1023)])
@pytest.mark.parametrize("relu", [False, True])
def test_dense_matches_reference(rng, form, n, d_in, d_out, relu):
    x, w, b = _case(rng, n, d_in, d_out)
    np.testing.assert_allclose(form(x, w, b, relu=relu), kernels.dense_reference(x, w, b, relu), **_tol(d_in))


@pytest.mark.parametrize("form", FORMS)
def test_dense_random_shapes(rng, form):
    for _ in range(20):
        n, d_in, d_out = rng.integers(1, 40), rng.integers(1, 300), rng.integers(1, 300)
        x, w, b = _case(rng, n, d_in, d_out)
        np.testing.assert_allclose(form(x, w, b, relu=True), kernels.dense_reference(x, w, b, True), **_tol(d_in))


@pytest.mark.parametrize("form", FORMS)
def test_dense_edges(rng, form):
    x, w, b = _case(rng, 0, 8, 20)
    assert form(x, w, b).shape == (0, 20)
    x, w, b = _case(rng, 6, 40, 20)
    x[:] = 0
    np.testing.assert_array_equal(form(x, w, b), np.broadcast_to(b, (6, 20)))
    np.testing.assert_array_equal(form(x, w, None), np.zeros((6, 20), np.float32))
    x, w, b = _case(rng, 3, 0, 5)  # no inputs: the output is the bias
    np.testing.assert_array_equal(form(x, w, b), np.broadcast_to(b, (3, 5)))


def test_gemv_matches_reference_and_batched(rng):
    x, w, b = _case(rng, 4, 300, 77)
    for i in range(4):
        np.testing.assert_allclose(kernels.dense_gemv(x[i], w, b, relu=True),
                                   kernels.dense_reference(x[i], w, b, True), **_tol(300))


def test_out_buffer_is_used(rng):
    x, w, b = _case(rng, 5, 9, 11)
    out = np.empty((5, 11), np.float32)
    assert kernels.dense(x, w, b, out=out) is out
    np.testing.assert_allclose(out, kernels.dense_reference(x, w, b), rtol=1e-5, atol=1e-5)


BAD_INPUTS = [
    ("x", lambda x, w, b: (x.astype(np.float64), w, b), "x must have dtype float32"),
    ("w", lambda x, w, b: (x, w.astype(np.float64), b), "w must have dtype float32"),
    ("b", lambda x, w, b: (x, w, b.astype(np.float64)), "b must have dtype float32"),
    ("x", lambda x, w, b: (x[:, :-1].copy(), w, b), r"x must have shape"),
    ("b", lambda x, w, b: (x, w, b[:-1].copy()), r"b must have shape"),
    ("w", lambda x, w, b: (x, w[::2], b), r"x must have shape|w must be C-contiguous"),
    ("x", lambda x, w, b: (np.asfortranarray(x), w, b), "x must be C-contiguous"),
    ("w", lambda x, w, b: (x, np.asfortranarray(w), b), "w must be C-contiguous"),
    ("x", lambda x, w, b: (x.tolist(), w, b), "x must be a numpy.ndarray"),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name, spoil, message", BAD_INPUTS)
def test_batched_forms_reject_bad_input(rng, form, name, spoil, message):
    x, w, b = _case(rng, 4, 6, 8)
    with pytest.raises(ValueError, match=message):
        form(*spoil(x, w, b))


def test_gemv_rejects_bad_input(rng):
    x, w, b = _case(rng, 1, 6, 8)
    x = x[0]
    cases = [
        ((x.astype(np.float64), w, b), "x must have dtype float32"),
        ((x, w.astype(np.float64), b), "w must have dtype float32"),
        ((x[:-1].copy(), w, b), r"x must have shape \(6\)"),
        ((np.arange(12, dtype=np.float32)[::2], w, b), "x must be C-contiguous"),
        ((x, np.asfortranarray(w), b), "w must be C-contiguous"),
        ((x, w, b[:3].copy()), r"b must have shape \(8\)"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            kernels.dense_gemv(*args)


def test_gemv_rejects_2d_input(rng):
    x, w, b = _case(rng, 4, 6, 8)
    with pytest.raises(ValueError, match=r"x must have shape \(6\)"):
        kernels.dense_gemv(x, w, b)


def test_bad_out_buffers(rng):
    x, w, b = _case(rng, 4, 6, 8)
    with pytest.raises(ValueError, match="out must have shape"):
        kernels.dense(x, w, b, out=np.empty((4, 7), np.float32))
    ro = np.empty((4, 8), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        kernels.dense(x, w, b, out=ro)
    buf = np.zeros((4, 8), np.float32)
    with pytest.raises(ValueError, match="out must not share memory with x"):
        kernels.dense(buf, np.zeros((8, 8), np.float32), None, out=buf)


def test_isa_and_threads_are_reported():
    assert kernels.isa() in ("avx512", "avx2", "scalar")
    assert kernels.num_threads() >= 1


def test_missing_extension_says_how_to_build(monkeypatch):
    monkeypatch.setattr(kernels, "_ext", None)
    monkeypatch.setattr(kernels, "_IMPORT_ERROR", ImportError("no module"))
    with pytest.raises(ImportError, match="make build"):
        kernels.dense(np.zeros((1, 2), np.float32), np.zeros((2, 2), np.float32))
