"""The acti-masked / zero-skipping / combined C kernels against their NumPy references, in
every mode (batched, one image at a time; shared and per-sample masks), and their errors."""
import numpy as np
import pytest

from pyann import kernels as K

SHAPES = [(1, 5, 3), (1, 784, 512), (3, 17, 16), (7, 33, 50), (40, 100, 10), (70, 64, 130), (33, 20, 33)]


def _data(rng, n, i, o, zero_share=0.6):
    x = rng.standard_normal((n, i), dtype=np.float32)
    x[rng.random((n, i)) < zero_share] = 0
    w = rng.standard_normal((i, o), dtype=np.float32) / np.float32(np.sqrt(i))
    b = rng.standard_normal(o, dtype=np.float32) * np.float32(0.1)
    return x, w, b


def _masks(rng, n, o):
    return {"none": None,
            "shared": (rng.random(o) < 0.3).astype(np.uint8),
            "per-sample": rng.random((n, o)) < 0.25,
            "all masked": np.zeros(o, np.uint8),
            "none masked": np.ones((n, o), np.uint8)}


@pytest.mark.parametrize("n,i,o", SHAPES)
@pytest.mark.parametrize("zero_skip", [False, True])
@pytest.mark.parametrize("one", [False, True])
def test_relu_layer_matches_reference(rng, n, i, o, zero_skip, one):
    x, w, b = _data(rng, n, i, o)
    for name, mask in _masks(rng, n, o).items():
        for relu in (True, False):
            y, macs = K.relu_layer(x, w, b, mask, zero_skip, relu, one, return_macs=True)
            ref = K.relu_layer_reference(x, w, b, mask, relu)
            np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4, err_msg=name)
            scheme = K.zeroskip_scheme(x) if mask is None and zero_skip and not one else "list"
            assert macs == K.macs_reference(x, o, mask, zero_skip, scheme=scheme), name
            if name == "all masked":
                assert not y.any() and macs == 0


@pytest.mark.parametrize("n,i,o", SHAPES + [(130, 784, 64), (5, 16, 17)])
@pytest.mark.parametrize("scheme", ["list", "union"])
@pytest.mark.parametrize("zero_share", [0.0, 0.5, 0.95, 1.0])
def test_zeroskip_schemes_match_reference(rng, n, i, o, scheme, zero_share):
    # both batched zero-skipping schemes: any batch (partial tiles and chunks), widths off the
    # vector size, bias or none, no zeros, mostly zeros and an all-zero input
    x, w, b = _data(rng, n, i, o, zero_share)
    for bias in (b, None):
        for relu in (True, False):
            y, macs = K.relu_layer(x, w, bias, None, True, relu, return_macs=True, scheme=scheme)
            np.testing.assert_allclose(y, K.relu_layer_reference(x, w, bias, None, relu), rtol=1e-4, atol=1e-4)
            assert macs == K.macs_reference(x, o, None, True, scheme=scheme)
    if zero_share == 1.0:
        assert macs == 0


def test_zeroskip_scheme_choice(rng):
    # overlapping nonzeros (the same pixels on in every sample) -> union; scattered -> list
    x = np.zeros((64, 256), np.float32)
    x[:, 40:80] = 1.0
    assert K.zeroskip_scheme(x) == "union"
    x = np.zeros((64, 256), np.float32)
    x[np.arange(64), rng.integers(0, 256, 64)] = 1.0
    assert K.zeroskip_scheme(x) == "list"
    with pytest.raises(ValueError, match="scheme must be one of"):
        K.relu_layer(x, np.zeros((256, 4), np.float32), None, None, True, scheme="dense")


@pytest.mark.parametrize("one", [False, True])
def test_named_forms_and_edges(rng, one):
    x, w, b = _data(rng, 19, 45, 37)
    mask = (rng.random(37) < 0.5).astype(np.uint8)
    ref = K.relu_layer_reference(x, w, b, mask)
    np.testing.assert_allclose(K.masked_dense(x, w, b, mask, one_at_a_time=one), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(K.combined_dense(x, w, b, mask, one_at_a_time=one), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(K.zeroskip_dense(x, w, b, one_at_a_time=one), K.dense_reference(x, w, b, True),
                               rtol=1e-4, atol=1e-4)
    # all-zero input: zero skipping executes nothing and returns ReLU(b)
    z = np.zeros_like(x)
    y, macs = K.zeroskip_dense(z, w, b, one_at_a_time=one, return_macs=True)
    np.testing.assert_array_equal(y, np.broadcast_to(np.maximum(b, 0), y.shape))
    assert macs == 0
    # no bias; an empty batch
    np.testing.assert_allclose(K.combined_dense(x, w, None, mask, one_at_a_time=one),
                               K.relu_layer_reference(x, w, None, mask), rtol=1e-4, atol=1e-4)
    assert K.combined_dense(x[:0], w, b, mask, one_at_a_time=one).shape == (0, 37)


def test_out_buffer(rng):
    x, w, b = _data(rng, 5, 20, 24)
    out = np.empty((5, 24), np.float32)
    assert K.zeroskip_dense(x, w, b, out=out) is out
    with pytest.raises(ValueError, match="out"):
        K.zeroskip_dense(x, w, b, out=np.empty((5, 23), np.float32))


def test_bad_masks(rng):
    x, w, b = _data(rng, 4, 10, 12)
    with pytest.raises(ValueError, match="mask has length 11.*12 output"):
        K.masked_dense(x, w, b, np.ones(11, np.uint8))
    with pytest.raises(ValueError, match="mask must have dtype uint8 or bool, got float32"):
        K.masked_dense(x, w, b, np.ones(12, np.float32))
    with pytest.raises(ValueError, match=r"mask must have shape \(4, 12\)"):
        K.masked_dense(x, w, b, np.ones((3, 12), np.uint8))
    with pytest.raises(ValueError, match="mask"):
        K.masked_dense(x, w, b, [1] * 12)
    with pytest.raises(ValueError, match="mask is required"):
        K.masked_dense(x, w, b, None)
    with pytest.raises(ValueError, match="x must have dtype float32"):
        K.zeroskip_dense(x.astype(np.float64), w, b)
    with pytest.raises(ValueError, match="C-contiguous"):
        K.combined_dense(np.asfortranarray(x), w, b, np.ones(12, np.uint8))


def _mlp(rng, sizes):
    ws = [rng.standard_normal((a, b), dtype=np.float32) / np.float32(np.sqrt(a)) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [rng.standard_normal(b, dtype=np.float32) * np.float32(0.1) for b in sizes[1:]]
    return ws, bs


@pytest.mark.parametrize("split_images", [False, True])
@pytest.mark.parametrize("zero_skip", [False, True])
def test_mlp_per_sample_matches_reference(rng, zero_skip, split_images):
    sizes = [37, 50, 64, 33, 10]
    ws, bs = _mlp(rng, sizes)
    x = rng.random((25, 37), dtype=np.float32)
    x[x < 0.6] = 0
    masks = [None, (rng.random(64) < 0.5).astype(np.uint8), np.zeros(33, np.uint8), None]
    preds = [None, (rng.standard_normal((50, 3), dtype=np.float32), rng.standard_normal((3, 64), dtype=np.float32), 0.5),
             None, None]
    for m, p in [(None, None), (masks, None), (None, preds), (masks, preds)]:
        y, macs, pmacs = K.mlp_per_sample(x, ws, bs, m, p, zero_skip=zero_skip, split_images=split_images,
                                          return_macs=True)
        np.testing.assert_allclose(y, K.mlp_per_sample_reference(x, ws, bs, m, p), rtol=1e-4, atol=1e-4)
        assert (pmacs > 0) == (p is not None)
    # one sample, and a batch of zeros
    np.testing.assert_allclose(K.mlp_per_sample(x[:1], ws, bs, zero_skip=zero_skip, split_images=split_images),
                               K.mlp_per_sample_reference(x[:1], ws, bs), rtol=1e-4, atol=1e-4)
    z = np.zeros((3, 37), np.float32)
    np.testing.assert_allclose(K.mlp_per_sample(z, ws, bs, zero_skip=zero_skip, split_images=split_images),
                               K.mlp_per_sample_reference(z, ws, bs), rtol=1e-4, atol=1e-4)


def test_mlp_per_sample_errors(rng):
    ws, bs = _mlp(rng, [8, 16, 4])
    x = rng.random((3, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="weights\\[1\\] has 15 inputs"):
        K.mlp_per_sample(x, [ws[0], ws[1][:15]], bs)
    with pytest.raises(ValueError, match="masks\\[0\\] has length 15"):
        K.mlp_per_sample(x, ws, bs, masks=[np.ones(15, np.uint8), None])
    with pytest.raises(ValueError, match="shared per-neuron mask"):
        K.mlp_per_sample(x, ws, bs, masks=[np.ones((3, 16), np.uint8), None])
    with pytest.raises(ValueError, match="one entry per layer"):
        K.mlp_per_sample(x, ws, bs, masks=[None])
    with pytest.raises(ValueError, match="x must have shape"):
        K.mlp_per_sample(x[:, :7].copy(), ws, bs)
