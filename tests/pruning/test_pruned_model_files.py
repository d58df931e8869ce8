"""Pruned models in files: masks saved as <layer>.weight_mask and restored by nn.load with
identical predictions; loading into an unpruned model; every mismatch a ValueError that says why."""
import numpy as np
import pytest

from pyann import nn, pruning
from pyann.nn import Module


def _pruned_cnn3():
    model = nn.zoo.build("cnn3", rng=7)
    pruning.prune(model, ["0", "3"], fraction=0.5, block=(4, 1))
    pruning.prune(model, "7", threshold=0.02)
    return model


def _x(n=5):
    return np.random.default_rng(0).standard_normal((n, 1, 28, 28)).astype(np.float32)


def test_save_load_gives_identical_predictions_and_masks(tmp_path):
    model = _pruned_cnn3()
    path = nn.save(model, tmp_path / "pruned.npz")
    with np.load(path, allow_pickle=False) as f:
        assert {"0.weight_mask", "3.weight_mask", "7.weight_mask"} <= set(f.files)
        assert f["0.weight_mask"].dtype == np.bool_
    loaded = nn.load(path)
    np.testing.assert_array_equal(loaded.eval().forward(_x()), model.eval().forward(_x()))
    saved, restored = pruning.masks(model), pruning.masks(loaded)
    assert list(saved) == list(restored) == ["0", "3", "7"]
    for name in saved:
        np.testing.assert_array_equal(restored[name], saved[name])
    assert loaded.spec() == model.spec()
    assert pruning.sparsity_report(loaded, (1, 28, 28)).to_dict() == \
        pruning.sparsity_report(model, (1, 28, 28)).to_dict()


def test_declared_state_of_a_pruned_spec_lists_its_masks_without_allocating():
    model = _pruned_cnn3()
    declared = Module.declared_state(model.spec())
    assert declared == model.state_shapes()
    assert declared["3.weight_mask"] == ((64, 32, 3, 3), np.dtype(np.bool_))
    wrn = nn.zoo.build("wrn", depth=10, width=1, input_size=8)
    pruning.prune(wrn, ["block1.conv1", "fc"], fraction=0.5)        # masks below a non-container
    assert wrn.spec()["masks"] == ["block1.conv1.weight", "fc.weight"]
    assert Module.declared_state(wrn.spec()) == wrn.state_shapes()


def test_a_pruned_file_loads_into_a_fresh_unpruned_model(tmp_path):
    model = _pruned_cnn3()
    path = nn.save(model, tmp_path / "pruned.npz")
    fresh = nn.zoo.build("cnn3", rng=99)
    nn.load_into(fresh, path)
    np.testing.assert_array_equal(fresh.eval().forward(_x()), model.eval().forward(_x()))
    assert list(pruning.masks(fresh)) == ["0", "3", "7"]
    np.testing.assert_array_equal(fresh[3].weight.mask, model[3].weight.mask)


def test_an_unpruned_file_into_a_pruned_model_says_why_and_strict_false_keeps_the_masks(tmp_path):
    dense = nn.zoo.build("fcn2", rng=1)
    path = nn.save(dense, tmp_path / "dense.npz")
    pruned = nn.zoo.build("fcn2", rng=2)
    pruning.prune(pruned, fraction=0.5)
    before = pruned.state_dict()
    with pytest.raises(ValueError, match=r"missing keys \['1.weight_mask', '3.weight_mask', '5.weight_mask'\]"
                                         r".*the model is pruned .* but the file has no masks"):
        nn.load_into(pruned, path)
    for k, v in pruned.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    nn.load_into(pruned, path, strict=False)
    mask = pruned[1].weight.mask
    np.testing.assert_array_equal(pruned[1].weight.data[mask], dense[1].weight.data[mask])
    assert not pruned[1].weight.data[~mask].any()


def _save_state(path, model, state):
    from pyann.io import npz_writer, atomic_write
    meta = {"format": "pyann-model/1", "architecture": model.spec(), "metadata": {}}
    return atomic_write(path, npz_writer(state, meta))


def test_a_file_whose_pruned_weights_are_not_zero_is_refused(tmp_path):
    model = nn.zoo.build("fcn1", rng=0)
    pruning.prune(model, fraction=0.5)
    state = model.state_dict()
    state["1.weight"] = state["1.weight"].copy()
    state["1.weight"][~state["1.weight_mask"]] = 0.5
    path = _save_state(tmp_path / "bad.npz", model, state)
    with pytest.raises(ValueError, match=r"'1.weight' holds 3920 nonzero values where '1.weight_mask' is False"):
        nn.load(path)


def test_a_file_with_a_float_mask_is_refused(tmp_path):
    model = nn.zoo.build("fcn1", rng=0)
    pruning.prune(model, fraction=0.5)
    state = model.state_dict()
    state["1.weight_mask"] = state["1.weight_mask"].astype(np.float32)
    path = _save_state(tmp_path / "floatmask.npz", model, state)
    with pytest.raises(ValueError, match=r"dtype mismatch for '1.weight_mask': model has bool, state has float32"):
        nn.load(path)


def test_a_spec_that_masks_a_bias_or_a_missing_layer_is_refused():
    spec = nn.zoo.build("fcn1").spec()
    with pytest.raises(ValueError, match=r"cannot mask '1.bias': not a prunable parameter"):
        Module.from_spec(dict(spec, masks=["1.bias"]))
    with pytest.raises(ValueError, match=r"cannot mask '9.weight'"):
        Module.from_spec(dict(spec, masks=["9.weight"]))
    with pytest.raises(ValueError, match="'masks' must be a list of parameter names"):
        Module.from_spec(dict(spec, masks="1.weight"))


def test_state_dict_round_trip_and_strictness_with_masks():
    model = nn.zoo.build("fcn1", rng=0)
    pruning.prune(model, fraction=0.25)
    other = nn.zoo.build("fcn1", rng=1)
    with pytest.raises(KeyError, match=r"unexpected keys \['1.weight_mask'\]"):
        other.load_state_dict(model.state_dict())
    pruning.prune(other, fraction=0.9)
    other.load_state_dict(model.state_dict())                     # the mask is copied in
    np.testing.assert_array_equal(other[1].weight.mask, model[1].weight.mask)
    np.testing.assert_array_equal(other[1].weight.data, model[1].weight.data)
