"""pyann.pruning.masks: which weights each criterion prunes (threshold, fraction, count; per layer
or global; blocks), compounding, biases, make_permanent, and a clear ValueError for bad input."""
import numpy as np
import pytest

from pyann import nn, pruning


def _mlp(seed=0):
    return nn.zoo.mlp([12, 8, 4], rng=seed)      # layers "1" (12x8) and "3" (8x4)


def _cnn(seed=0):
    return nn.Sequential(nn.Conv2d(2, 8, 3, 1, 1, rng=seed), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 4 * 4, 4, rng=seed))


def _set_weights(layer, values):
    layer.weight.data[...] = np.asarray(values, np.float32).reshape(layer.weight.data.shape)


def test_prunable_layers_are_the_linear_and_conv_layers_by_dotted_name():
    assert list(pruning.prunable_layers(_mlp())) == ["1", "3"]
    assert list(pruning.prunable_layers(_cnn())) == ["0", "3"]
    wrn = nn.zoo.build("wrn", depth=10, width=1, input_size=8)
    names = list(pruning.prunable_layers(wrn))
    assert names[0] == "stem" and "block1.conv1" in names and "block2.shortcut" in names and names[-1] == "fc"


def test_threshold_prunes_exactly_the_weights_below_it_and_never_the_bias():
    model = nn.Sequential(nn.Linear(2, 3))
    _set_weights(model[0], [[0.1, -0.5, 0.3], [-0.05, 0.2, -0.31]])
    model[0].bias.data[...] = [0.0, 0.01, -0.02]
    pruned = pruning.prune(model, threshold=0.3)
    assert pruned == {"0": 3}
    np.testing.assert_array_equal(model[0].weight.mask, [[False, True, True], [False, False, True]])
    np.testing.assert_array_equal(model[0].weight.data, np.float32([[0, -0.5, 0.3], [0, 0, -0.31]]))
    np.testing.assert_array_equal(model[0].bias.data, np.float32([0.0, 0.01, -0.02]))
    assert model[0].bias.mask is None


def test_fractions_compound_over_the_unpruned_weights_like_torch():
    model = nn.Sequential(nn.Linear(10, 10, rng=3))
    pruning.prune(model, fraction=0.5)
    assert np.count_nonzero(model[0].weight.mask) == 50
    pruning.prune(model, fraction=0.5)
    assert np.count_nonzero(model[0].weight.mask) == 25
    pruning.prune(model, fraction=0.2)          # 0.2 of the 25 left: 5 more
    assert np.count_nonzero(model[0].weight.mask) == 20
    # the survivors are the largest magnitudes of the original weights
    kept = np.abs(model[0].weight.data[model[0].weight.mask])
    assert kept.min() > 0


def test_fraction_keeps_the_largest_magnitudes():
    model = nn.Sequential(nn.Linear(1, 5))
    _set_weights(model[0], [0.5, -0.1, 0.4, -0.3, 0.2])
    pruning.prune(model, fraction=0.4)
    np.testing.assert_array_equal(model[0].weight.mask, [[True, False, True, True, False]])
    pruning.prune(model, count=1)              # the smallest survivor: -0.3
    np.testing.assert_array_equal(model[0].weight.mask, [[True, False, True, False, False]])


def test_one_layer_or_a_set_of_layers_leaves_the_others_alone():
    model = _mlp()
    assert pruning.prune(model, "3", count=10) == {"3": 10}
    assert model[1].weight.mask is None and np.count_nonzero(model[3].weight.mask) == 22
    assert set(pruning.prune(model, ["1.weight", "3"], fraction=0.5)) == {"1", "3"}   # Distiller names too
    assert pruning.density(model) == {"1": 0.5, "3": 11 / 32}


def test_global_scope_ranks_all_layers_together():
    model = nn.Sequential(nn.Linear(1, 4), nn.Linear(4, 1))
    _set_weights(model[0], [0.1, 0.2, 0.9, 0.8])
    _set_weights(model[1], [0.15, 0.7, 0.05, 0.6])
    pruned = pruning.prune(model, fraction=0.5, scope="global")
    assert pruned == {"0": 2, "1": 2}
    np.testing.assert_array_equal(model[0].weight.mask.ravel(), [False, False, True, True])
    np.testing.assert_array_equal(model[1].weight.mask.ravel(), [False, True, False, True])
    pruning.prune(model, count=3, scope="global")        # 0.6, 0.7, 0.8 go, 0.9 stays
    assert pruning.density(model) == {"0": 0.25, "1": 0.0}


def test_blocks_of_four_outputs_prune_whole_blocks_by_mean_magnitude():
    model = nn.Sequential(nn.Linear(2, 8))
    w = np.float32([[1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1],      # input 0: block of outputs 0-3, block 4-7
                    [0.2, 0.2, 0.2, 0.2, 3, -3, 0.01, 0.01]])
    _set_weights(model[0], w)
    pruning.prune(model, fraction=0.5, block=(4, 1))
    np.testing.assert_array_equal(model[0].weight.mask, np.array([[1, 1, 1, 1, 0, 0, 0, 0],
                                                                  [0, 0, 0, 0, 1, 1, 1, 1]], bool))
    # a threshold on blocks compares the block's mean |w|: 1, and (3 + 3 + 0.01 + 0.01) / 4 = 1.505
    pruning.prune(model, threshold=1.0, block=(4, 1))
    assert np.count_nonzero(model[0].weight.mask) == 8
    pruning.prune(model, threshold=1.5, block=(4, 1))
    np.testing.assert_array_equal(model[0].weight.mask, np.array([[0] * 8, [0, 0, 0, 0, 1, 1, 1, 1]], bool))
    np.testing.assert_array_equal(model[0].weight.data[1, 4:], np.float32([3, -3, 0.01, 0.01]))
    pruning.prune(model, threshold=1.51, block=(4, 1))
    assert not model[0].weight.mask.any() and not model[0].weight.data.any()


def test_conv_blocks_group_output_channels_at_one_input_position():
    model = _cnn()
    pruning.prune(model, "0", fraction=0.5, block=(4, 1))
    m = model[0].weight.mask.reshape(2, 4, -1)            # (out blocks, outputs in block, inputs)
    assert (m.all(axis=1) | ~m.any(axis=1)).all()          # each block is all kept or all pruned
    assert np.count_nonzero(model[0].weight.mask) == 8 * 2 * 9 // 2


def test_prune_to_density_keeps_the_largest_and_never_revives():
    model = _mlp()
    pruning.prune_to_density(model, {"1": 0.25, "3": 0.5})
    assert pruning.density(model) == {"1": 0.25, "3": 0.5}
    pruning.prune_to_density(model, 0.5)                     # already sparser: unchanged
    assert pruning.density(model) == {"1": 0.25, "3": 0.5}
    pruning.prune_to_density(model, 0.1, scope="global")
    total = sum(np.count_nonzero(m) for m in pruning.masks(model).values())
    assert total == round(0.1 * (96 + 32))


def test_set_masks_and_make_permanent():
    model = _mlp()
    mask = np.zeros((12, 8), bool)
    mask[:, 0] = True
    pruning.set_masks(model, {"1": mask})
    assert np.count_nonzero(model[1].weight.data) == 12
    assert model.spec()["masks"] == ["1.weight"]
    before = model[1].weight.data.copy()
    assert pruning.make_permanent(model) is model
    assert pruning.masks(model) == {} and "masks" not in model.spec()
    np.testing.assert_array_equal(model[1].weight.data, before)
    assert "1.weight_mask" not in model.state_dict()


def test_clone_is_independent():
    model = _mlp()
    pruning.prune(model, fraction=0.5)
    copy = pruning.clone(model)
    pruning.prune(copy, fraction=0.5)
    assert pruning.density(model) == {"1": 0.5, "3": 0.5}
    assert pruning.density(copy) == {"1": 0.25, "3": 0.25}


# ---- bad input: one test each ------------------------------------------------------------------

def test_mask_of_the_wrong_shape_is_refused():
    model = _mlp()
    with pytest.raises(ValueError, match=r"mask shape \(8, 12\) does not match the parameter's \(12, 8\)"):
        pruning.set_masks(model, {"1": np.ones((8, 12), bool)})
    assert pruning.masks(model) == {}


def test_mask_of_the_wrong_dtype_is_refused():
    model = _mlp()
    with pytest.raises(ValueError, match="must have dtype bool, got float32"):
        pruning.set_masks(model, {"1": np.ones((12, 8), np.float32)})
    with pytest.raises(ValueError, match="must have dtype bool, got int64"):
        model[1].set_mask("weight", np.ones((12, 8), np.int64))
    assert pruning.masks(model) == {}


@pytest.mark.parametrize("bad", [float("nan"), -0.1, float("inf")])
def test_threshold_nan_negative_or_infinite_is_refused(bad):
    model = _mlp()
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0"):
        pruning.prune(model, threshold=bad)
    assert pruning.masks(model) == {}


@pytest.mark.parametrize("bad", [-0.01, 1.5, float("nan")])
def test_fraction_outside_zero_one_is_refused(bad):
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\]"):
        pruning.prune(_mlp(), fraction=bad)


def test_unknown_layer_name_is_refused_naming_the_real_ones():
    model = _mlp()
    with pytest.raises(ValueError, match=r"no prunable layer named '2'; the prunable layers are \['1', '3'\]"):
        pruning.prune(model, ["1", "2"], fraction=0.5)
    with pytest.raises(ValueError, match="no prunable layer named 'fc'"):
        pruning.set_masks(model, {"fc": np.ones((12, 8), bool)})
    assert pruning.masks(model) == {}              # nothing changed, not even layer "1"


def test_block_that_does_not_divide_the_layer_is_refused():
    model = _mlp()                                   # layer "3" has 4 outputs, layer "1" 8
    with pytest.raises(ValueError, match=r"block \(3, 1\) does not divide layer '1': its weight is 8 outputs"):
        pruning.prune(model, fraction=0.5, block=(3, 1))
    with pytest.raises(ValueError, match="pair of positive integers"):
        pruning.prune(model, fraction=0.5, block=(0, 1))
    assert pruning.masks(model) == {}


def test_other_bad_calls():
    model = _mlp()
    with pytest.raises(ValueError, match="exactly one of threshold, fraction and count"):
        pruning.prune(model, threshold=0.1, fraction=0.5)
    with pytest.raises(ValueError, match="more than the 32 units still alive in layer '3'"):
        pruning.prune(model, "3", count=33)
    with pytest.raises(ValueError, match="scope must be"):
        pruning.prune(model, fraction=0.5, scope="model")
    with pytest.raises(ValueError, match="no prunable parameter 'bias'"):
        model[1].set_mask("bias", np.ones(8, bool))
    model[1].weight.data[0, 0] = np.nan
    with pytest.raises(ValueError, match="layer '1' holds NaN or Inf"):
        pruning.prune(model, fraction=0.5)
