"""The candidate registry: names, availability, shapes at every WRN position, "original" as a
weight copy, costs, users' candidates and the errors users can cause."""
import numpy as np
import pytest

from pyann import nn
from pyann.nn.summary import summary
from pyann.substitution import candidates as cands
from pyann.substitution.candidates import (candidate_cost, candidate_for, candidate_names, describe_candidate,
                                           is_available, paper_number, register_candidate)

PAPER = ["original", "identity", "inverted_residual", "conv_bn_e1", "conv_bn_e2", "basic_e2",
         "bottleneck_e2"]


@pytest.fixture
def wrn():
    # WRN-10-1 at 8x8: blocks 1 (16 -> 16), 2 (16 -> 32, stride 2), 3 (32 -> 64, stride 2)
    model = nn.WideResNet(depth=10, width=1, input_size=8, rng=0)
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    model.forward(x)   # running statistics away from their initial values
    return model


@pytest.fixture
def user_candidate():
    register_candidate("sep_conv", lambda slot, rng: nn.Sequential(
        nn.Conv2d(slot.in_channels, slot.in_channels, 3, slot.stride, 1, groups=slot.in_channels, rng=rng),
        nn.Conv2d(slot.in_channels, slot.out_channels, 1, rng=rng)),
        description="depthwise 3x3 then pointwise 1x1 (no expand)")
    yield "sep_conv"
    cands.unregister_candidate("sep_conv")


def test_the_papers_seven_in_order():
    assert candidate_names()[:7] == PAPER
    assert [paper_number(n) for n in PAPER] == list(range(1, 8))
    for name in PAPER:
        line = describe_candidate(name)
        assert "\n" not in line and ("expand" in line)


def test_availability():
    same, change = ((16, 8, 8), (16, 8, 8)), ((16, 8, 8), (32, 4, 4))
    assert all(is_available(n, *same) for n in PAPER)
    assert [n for n in PAPER if not is_available(n, *change)] == ["identity"]


@pytest.mark.parametrize("name", PAPER)
def test_every_candidate_fits_every_position(wrn, name, rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    for pos in range(1, wrn.num_blocks + 1):
        in_shape, out_shape = wrn.block_shapes[pos - 1]
        if not is_available(name, in_shape, out_shape):
            continue
        module = candidate_for(wrn, pos, name, rng=1)
        assert module.training
        h = rng.standard_normal((2,) + in_shape).astype(np.float32)
        assert module.forward(h).shape == (2,) + out_shape
        swapped = nn.Module.from_spec(wrn.spec())
        swapped.replace_block(pos, module)
        assert swapped.forward(x).shape == (2, 10)


def test_expected_block_types_and_sizes(wrn):
    assert isinstance(candidate_for(wrn, 1, "identity"), nn.Identity)
    ir = candidate_for(wrn, 2, "inverted_residual")
    assert isinstance(ir, nn.InvertedResidual) and (ir.in_channels, ir.out_channels, ir.stride, ir.expand) == (16, 32, 2, 6)
    assert candidate_for(wrn, 3, "conv_bn_e2").expand == 2
    assert isinstance(candidate_for(wrn, 2, "basic_e2"), nn.BasicBlock)
    assert isinstance(candidate_for(wrn, 2, "bottleneck_e2"), nn.Bottleneck)
    # seeded: the same rng gives the same weights
    a, b = candidate_for(wrn, 2, "basic_e2", rng=4), candidate_for(wrn, 2, "basic_e2", rng=4)
    assert all(np.array_equal(p.data, q.data) for p, q in zip(a.parameters(), b.parameters()))


def test_original_is_an_independent_copy_with_the_trained_weights(wrn, rng):
    block = wrn.block(2)
    copy = candidate_for(wrn, 2, "original")
    assert copy is not block and type(copy) is type(block) and copy.spec() == block.spec()
    for (k, a), (k2, b) in zip(sorted(block.state_dict().items()), sorted(copy.state_dict().items())):
        assert k == k2
        np.testing.assert_array_equal(a, b)
    h = rng.standard_normal((2, 16, 8, 8)).astype(np.float32)
    copy.eval(), block.eval()
    np.testing.assert_array_equal(copy.forward(h), block.forward(h))
    copy.parameters()[0].data[...] = 0            # changing the copy leaves the teacher alone
    assert np.any(block.parameters()[0].data != 0)


def test_costs_match_the_summary_and_hand_counts(wrn):
    # conv_bn_e1 at position 2: 3x3 conv 16 -> 32 at 4x4 output, plus BN (gamma, beta)
    assert candidate_cost(wrn, 2, "conv_bn_e1") == {"params": 16 * 32 * 9 + 2 * 32,
                                                    "macs": 32 * 4 * 4 * 16 * 9}
    assert candidate_cost(wrn, 1, "identity") == {"params": 0, "macs": 0}
    original = candidate_cost(wrn, 3, "original")
    assert original["params"] == wrn.block(3).num_parameters()
    assert original["macs"] == summary(wrn.block(3), wrn.block_shapes[2][0]).total_macs
    # inverted residual at position 1: 1x1 16 -> 96, 3x3 depthwise 96, 1x1 96 -> 16, all at 8x8
    ir = candidate_cost(wrn, 1, "inverted_residual")
    assert ir["macs"] == 64 * (16 * 96 + 96 * 9 + 96 * 16)
    assert ir["params"] == 16 * 96 + 96 * 9 + 96 * 16 + 2 * (96 + 96 + 16)


def test_a_users_candidate(wrn, user_candidate):
    assert candidate_names()[-1] == "sep_conv" and paper_number("sep_conv") is None
    assert "pointwise" in describe_candidate("sep_conv")
    module = candidate_for(wrn, 3, "sep_conv", rng=0)
    assert module.forward(np.zeros((1, 32, 4, 4), np.float32)).shape == (1, 64, 2, 2)
    assert candidate_cost(wrn, 3, "sep_conv")["params"] == 32 * 9 + 32 + 32 * 64 + 64
    with pytest.raises(ValueError, match="already registered"):
        register_candidate("sep_conv", lambda slot, rng: nn.Identity(), description="again")
    with pytest.raises(ValueError, match="already registered"):
        register_candidate("identity", lambda slot, rng: nn.Identity(), description="again")


def test_a_users_candidate_of_the_wrong_shape_is_refused(wrn):
    register_candidate("too_wide", lambda slot, rng: nn.Conv2d(slot.in_channels, 99, 1), description="bad")
    try:
        with pytest.raises(ValueError, match=r"'too_wide' maps block 1's input \(16, 8, 8\) to \(99, 8, 8\)"):
            candidate_for(wrn, 1, "too_wide")
    finally:
        cands.unregister_candidate("too_wide")
    with pytest.raises(ValueError, match="cannot be removed"):
        cands.unregister_candidate("identity")


def test_bad_input_is_a_clear_error(wrn):
    with pytest.raises(ValueError, match="unknown candidate 'mobilenet'; known: original, identity, "
                                         "inverted_residual"):
        candidate_for(wrn, 1, "mobilenet")
    with pytest.raises(ValueError, match="unknown candidate"):
        is_available("nope", (1, 2, 2), (1, 2, 2))
    with pytest.raises(ValueError, match=r"position 4 is out of range: this network has blocks 1..3"):
        candidate_for(wrn, 4, "conv_bn_e1")
    with pytest.raises(ValueError, match="out of range"):
        candidate_for(wrn, 0, "conv_bn_e1")
    with pytest.raises(ValueError, match=r"must be an integer in 1..3, got '2'"):
        candidate_for(wrn, "2", "conv_bn_e1")
    with pytest.raises(ValueError, match=r"'identity' is not available at position 2: the block changes "
                                         r"the shape \(16, 8, 8\) -> \(32, 4, 4\)"):
        candidate_for(wrn, 2, "identity")
    with pytest.raises(ValueError, match="out of range"):
        candidate_cost(wrn, 9, "identity")
    with pytest.raises(ValueError, match="WideResNet"):
        candidate_for(nn.build("mlp5"), 1, "identity")
