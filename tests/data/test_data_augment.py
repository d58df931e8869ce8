"""Augmentation: random crop with padding (reflect/zero), flips, normalisation; all seeded."""
import numpy as np
import pytest

from pyann.data.augment import CropFlip, ProgressiveResize, normalize, random_crop, random_flip, resize


def batch(n=6, c=3, h=8, w=8):
    return np.arange(n * c * h * w, dtype=np.float32).reshape(n, c, h, w)


@pytest.mark.parametrize("mode", ["reflect", "zero"])
def test_random_crop_is_a_shifted_window_of_the_padded_image(mode):
    x = batch()
    y = random_crop(x, np.random.default_rng(0), padding=2, mode=mode)
    assert y.shape == x.shape and y.dtype == np.float32
    xp = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect" if mode == "reflect" else "constant")
    for i in range(len(x)):
        hits = [(a, b) for a in range(5) for b in range(5) if np.array_equal(xp[i, :, a:a + 8, b:b + 8], y[i])]
        assert hits, f"image {i} is not a crop"
    if mode == "zero":
        assert (y == 0).sum() > 0   # some crop reaches into the zero border (seeded)


def test_same_seed_same_batch_and_offsets_vary():
    x = batch(32)
    a = CropFlip(4)(x, np.random.default_rng(7))
    b = CropFlip(4)(x, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, CropFlip(4)(x, np.random.default_rng(8)))


def test_random_flip():
    x = batch(200, 1, 2, 3)
    y = random_flip(x, np.random.default_rng(0))
    flipped = np.array([np.array_equal(y[i], x[i, :, :, ::-1]) for i in range(200)])
    same = np.array([np.array_equal(y[i], x[i]) for i in range(200)])
    assert np.all(flipped | same) and 70 < flipped.sum() < 130
    np.testing.assert_array_equal(random_flip(x, np.random.default_rng(0), p=0.0), x)


def test_normalize():
    x = np.random.default_rng(0).random((10, 3, 4, 4), dtype=np.float32)
    mean, std = x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))
    y = normalize(x, mean, std)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1, atol=1e-4)
    with pytest.raises(ValueError, match="3 means"):
        normalize(x, [0.5], [1.0])


def test_errors():
    with pytest.raises(ValueError, match="mode"):
        random_crop(batch(), np.random.default_rng(0), mode="wrap")
    with pytest.raises(ValueError, match="batch"):
        random_flip(np.zeros((3, 4, 4)), np.random.default_rng(0))


def _resize_reference(x, size):
    """Each output pixel: the overlap-weighted mean of the input pixels its box covers."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, size, size))
    for i in range(size):
        for j in range(size):
            total = 0.0
            for u in range(h):
                for v in range(w):
                    oy = max(0.0, min((i + 1) * h / size, u + 1) - max(i * h / size, u))
                    ox = max(0.0, min((j + 1) * w / size, v + 1) - max(j * w / size, v))
                    out[:, :, i, j] += oy * ox * x[:, :, u, v]
                    total += oy * ox
            out[:, :, i, j] /= total
    return out


def test_resize_matches_the_area_reference():
    x = batch(2, 3, 8, 8)
    for size in (6, 4, 3, 8, 11):
        y = resize(x, size)
        assert y.shape == (2, 3, size, size) and y.dtype == np.float32
        np.testing.assert_allclose(y, _resize_reference(x.astype(np.float64), size), rtol=1e-5, atol=1e-4)
    assert resize(x, 4)[1, 2, 1, 2] == pytest.approx(x[1, 2, 2:4, 4:6].mean())   # factor 2: block means
    with pytest.raises(ValueError, match="size >= 1"):
        resize(x, 0)


def test_progressive_resize_follows_the_epoch_fit_gives_it():
    from pyann import nn, optim
    from pyann.train import fit
    seen = []
    aug = ProgressiveResize(lambda xb, rng: seen.append(xb.shape[2]) or xb, stages=[(4, 1), (6, 2)])
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.GlobalAvgPool(), nn.Linear(2, 3, rng=0))
    x, y = batch(8, 1, 8, 8) / 512, np.arange(8) % 3
    shapes = []
    model.forward = (lambda f: lambda xb: shapes.append(xb.shape[2]) or f(xb))(model.forward)
    history = fit(model, (x, y), 4, optim.SGD(model.parameters(), lr=0.01), batch_size=4, augment=aug,
                  validation=(x, y), eval_batch_size=8, progress=False)
    assert seen == [8] * 8                      # the inner augment always sees full size
    # per epoch: two training batches, then one validation batch at the same size
    assert shapes == [4, 4, 4, 6, 6, 6, 6, 6, 6, 8, 8, 8]
    assert history.column("image_size") == [4, 6, 6, 8]
    with pytest.raises(ValueError, match="size >= 1 and epochs >= 0"):
        ProgressiveResize(None, stages=[(16, -1)])
