"""Layers, Sequential, the MLP zoo, state dicts and model files."""
import json
import zipfile

import numpy as np
import pytest

from pyann import nn
from pyann.gradcheck import max_relative_error, numerical_gradient


def _float64(model):
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    return model


def test_sequential_mlp_gradients(rng):
    model = _float64(nn.Sequential(nn.Linear(6, 5, rng=1), nn.ReLU(), nn.Linear(5, 3, rng=2)))
    x = rng.standard_normal((4, 6))
    dy = rng.standard_normal((4, 3))
    model.forward(x)
    dx = model.backward(dy)
    assert max_relative_error(dx, numerical_gradient(model.forward, x, dy)) < 1e-6
    w = model[0].weight
    model.forward(x)
    model.backward(dy)
    analytic = w.grad.copy()

    def f(_):
        return model.forward(x)
    assert max_relative_error(analytic, numerical_gradient(f, w.data, dy)) < 1e-6


def test_same_seed_same_weights_and_different_seed_differs():
    a, b, c = nn.build("mlp5", rng=7), nn.build("mlp5", rng=7), nn.build("mlp5", rng=8)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])
    assert not np.array_equal(a[1].weight.data, c[1].weight.data)


@pytest.mark.parametrize("name, sizes", [("mlp5", [784, 512, 512, 512, 512, 10]), ("fcn1", [784, 10]),
                                         ("fcn2", [784, 300, 100, 10])])
def test_zoo_shapes(name, sizes):
    model = nn.build(name)
    linears = [m for m in model.layers if isinstance(m, nn.Linear)]
    assert [l.in_features for l in linears] + [linears[-1].out_features] == sizes
    assert model.forward(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    assert all(p.data.dtype == np.float32 for p in model.parameters())


def test_zoo_unknown_model():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        nn.build("nope")


def test_he_init_variance():
    w = nn.Linear(1000, 500, rng=0).weight.data
    assert w.std() == pytest.approx(np.sqrt(2 / 1000), rel=0.02)


def test_linear_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match=r"expects input \(N, 4\)"):
        nn.Linear(4, 2).forward(np.zeros((3, 5), np.float32))


def test_bias_is_not_decayed_weight_is():
    layer = nn.Linear(3, 2)
    assert layer.weight.decay and not layer.bias.decay


def test_state_dict_strict_names_missing_and_unexpected():
    model = nn.build("fcn2")
    state = model.state_dict()
    state["extra.weight"] = np.zeros(1)
    del state["1.bias"]
    with pytest.raises(KeyError) as err:
        model.load_state_dict(state)
    assert "'1.bias'" in str(err.value) and "'extra.weight'" in str(err.value)


def test_state_dict_shape_mismatch_changes_nothing():
    model = nn.build("fcn2", rng=0)
    before = model.state_dict()
    state = nn.build("fcn2", rng=1).state_dict()
    state["3.weight"] = np.zeros((1, 1), np.float32)
    with pytest.raises(ValueError, match="3.weight"):
        model.load_state_dict(state)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_save_load_round_trip(tmp_path):
    model = nn.build("mlp5", rng=3)
    path = nn.save(model, tmp_path / "m.npz", metadata={"note": "hi"})
    loaded = nn.load(path)
    x = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    np.testing.assert_array_equal(model.forward(x), loaded.forward(x))
    assert nn.serialization.read_metadata(path) == {"note": "hi"}
    assert not list(tmp_path.glob(".*tmp")), "atomic write left a temporary file"


def test_model_file_is_plain_npz_without_pickle(tmp_path):
    path = nn.save(nn.build("fcn1"), tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["__meta__"]))
    assert meta["architecture"]["type"] == "Sequential"


def test_load_into_other_architecture_names_keys(tmp_path):
    path = nn.save(nn.build("mlp5"), tmp_path / "mlp5.npz")
    target = nn.build("fcn2", rng=0)
    before = target.state_dict()
    with pytest.raises(ValueError, match="saved for another architecture.*unexpected keys.*7.weight"):
        nn.load_into(target, path)
    np.testing.assert_array_equal(target[1].weight.data, before["1.weight"])


def test_truncated_and_garbage_model_files(tmp_path):
    path = nn.save(nn.build("fcn1"), tmp_path / "m.npz")
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.npz is not a readable pyann .npz"):
        nn.load(tmp_path / "cut.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="junk.npz"):
        nn.load(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        nn.load(tmp_path / "missing.npz")


def test_object_array_model_file_is_refused(tmp_path):
    # an .npz holding a pickled object array must never be unpickled
    path = tmp_path / "evil.npz"
    np.savez(path, **{"__meta__": np.array("{}"), "w": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError, match="refusing to load"):
        nn.load(path)


def test_unknown_module_type_in_architecture():
    with pytest.raises(ValueError, match="unknown module type 'Bogus'"):
        nn.Module.from_spec({"type": "Bogus", "config": {}})


def test_sequential_setitem_and_bounds():
    model = nn.build("fcn2")
    model[2] = nn.ReLU6()
    assert isinstance(model[2], nn.ReLU6)
    with pytest.raises(IndexError):
        model[10] = nn.ReLU()


def test_relu_activity_penalty_trains_only_and_round_trips(tmp_path, rng):
    from pyann import nn
    from pyann.nn import zoo
    model = zoo.mlp([6, 5, 4], rng=0, activity_l1=0.1)
    relu = model.layers[2]
    assert isinstance(relu, nn.ReLU) and relu.activity_l1 == 0.1
    x = rng.standard_normal((3, 6)).astype(np.float32)
    plain = zoo.mlp([6, 5, 4], rng=0)
    dy = rng.standard_normal((3, 4)).astype(np.float32)
    # training: the penalty's gradient joins the data gradient at the hidden layer
    model.train(), plain.train()
    model.forward(x), plain.forward(x)
    h = np.maximum(x @ model.layers[1].weight.data + model.layers[1].bias.data, 0)
    model.backward(dy), plain.backward(dy)
    extra = model.layers[1].weight.grad - plain.layers[1].weight.grad
    np.testing.assert_allclose(extra, x.T @ ((h > 0) * np.float32(0.1 / 3)), rtol=1e-5, atol=1e-6)
    assert relu.last_penalty == pytest.approx(0.1 * h.sum() / 3, rel=1e-5)
    # eval: a plain ReLU
    model.eval(), plain.eval()
    model.forward(x), plain.forward(x)
    model.backward(dy), plain.backward(dy)
    np.testing.assert_array_equal(model.layers[1].weight.grad, plain.layers[1].weight.grad)
    nn.save(model, tmp_path / "m.npz")
    assert nn.load(tmp_path / "m.npz").layers[2].activity_l1 == 0.1
    with pytest.raises(ValueError, match="activity_l1 must be >= 0"):
        nn.ReLU(-1.0)
