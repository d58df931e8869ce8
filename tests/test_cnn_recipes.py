"""CNN recipes: a smoke run of cnn3 on a slice of real MNIST, and the time-budget helper."""
import numpy as np
import pytest

from pyann import cnn_recipes, nn
from pyann.data.augment import CropFlip


@pytest.mark.realdata
@pytest.mark.slow
def test_cnn3_mnist_smoke(data_root, tmp_path):
    result = cnn_recipes.cnn3_mnist(epochs=2, batch_size=64, limit=4096, root=data_root, out=tmp_path,
                                    progress=False)
    assert result["test"]["accuracy"] > 0.9
    assert (tmp_path / "results.json").exists() and (tmp_path / "cnn3_mnist.npz").exists()
    loaded = nn.load(tmp_path / "cnn3_mnist.npz")
    assert loaded.spec() == result["model"].spec()


def test_epochs_for_budget_fits_the_minutes():
    model = nn.build("wrn", depth=10, width=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    few = cnn_recipes._epochs_for_budget(model, x, y, 8, CropFlip(4), minutes=1e-4, steps=2)
    many = cnn_recipes._epochs_for_budget(model, x, y, 8, CropFlip(4), minutes=1e4, steps=2)
    assert few == 1 and many > 1
    assert cnn_recipes._epochs_for_budget(model, x, y, 8, CropFlip(4), minutes=1e-4, low_res_fraction=0.5,
                                          steps=2) == 1
