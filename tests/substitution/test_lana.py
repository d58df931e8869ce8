"""LANA: block_io, distillation with one shared teacher pass per step, and the scores of
swapped networks (equal to evaluating the swapped network in full)."""
import numpy as np
import pytest

from pyann import nn
from pyann.train import evaluate
from pyann.substitution import lana
from pyann.substitution.lana import LanaConfig, LanaEntry, block_io, lana_initialise, lana_scores, substituted


@pytest.fixture(scope="module")
def teacher():
    """A tiny WRN-16-1 at 8x8 whose BN running statistics are not the initial ones (so eval mode
    differs from train mode); blocks 1..6: 16->16, 16->16, 16->32 s2, 32->32, 32->64 s2, 64->64."""
    model = nn.build("wrn", depth=16, width=1, input_size=8, rng=0)
    x = np.random.default_rng(1).standard_normal((64, 3, 8, 8)).astype(np.float32)
    for _ in range(3):
        model.forward(x)
    return model.eval()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2)
    return rng.standard_normal((96, 3, 8, 8)).astype(np.float32), rng.integers(0, 10, 96)


def state_of(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_block_io_matches_the_teachers_own_forward(teacher, data):
    x = data[0][:5]
    before = state_of(teacher)
    teacher.train()
    io = block_io(teacher, x, [3, 1])
    assert teacher.training                       # the mode is restored
    assert sorted(io) == [1, 3]
    teacher.eval()
    h = dict(teacher.children())["stem"].forward(x)
    np.testing.assert_array_equal(io[1][0], h)
    for pos in (1, 2, 3):
        out = teacher.block(pos).forward(h)
        if pos in io:
            np.testing.assert_array_equal(io[pos][0], h)
            np.testing.assert_array_equal(io[pos][1], out)
        h = out
    assert io[3][1].shape == (5, 32, 4, 4)
    assert_same_state(before, state_of(teacher))  # no running statistic moved
    with pytest.raises(ValueError, match="out of range"):
        block_io(teacher, x, [7])
    with pytest.raises(ValueError, match="dtype uint8"):
        block_io(teacher, x.astype(np.uint8), [1])


def test_distillation_reduces_the_loss(teacher, data):
    before = state_of(teacher)
    config = LanaConfig(steps=40, batch_size=16, lr=3e-2, seed=0)
    entries = lana_initialise(teacher, data[0], [(1, "conv_bn_e1")], config, progress=False)
    entry = entries[(1, "conv_bn_e1")]
    assert isinstance(entry, LanaEntry) and isinstance(entry.module, nn.ConvBNBlock)
    assert len(entry.losses) == 40 and entry.seconds > 0
    start = np.mean(entry.losses[:3])
    assert start > 0.8                                            # a fresh block is far off
    # about halved (~1.0 -> ~0.5); ending in a ReLU, the block cannot copy the negative part of
    # a pre-activation block's output, so it does not go to 0
    assert entry.final_loss < 0.6 * start and np.mean(entry.losses[-5:]) < 0.6 * start
    assert entry.module.training and entry.module.input_grad     # ready to go into a network
    assert_same_state(before, state_of(teacher))                  # the teacher stays frozen
    # the same seed gives the same result
    again = lana_initialise(teacher, data[0], [(1, "conv_bn_e1")], config, progress=False)
    assert again[(1, "conv_bn_e1")].losses == entry.losses


def test_one_teacher_pass_per_step_feeds_every_candidate(teacher, data, monkeypatch):
    stem = dict(teacher.children())["stem"]
    calls = []
    run = stem.forward
    monkeypatch.setattr(stem, "forward", lambda x: calls.append(len(x)) or run(x))
    pairs = [(1, "conv_bn_e1"), (1, "inverted_residual"), (3, "basic_e2"), (6, "bottleneck_e2"),
             (4, "identity"), (4, "original"), (6, "conv_bn_e2")]
    entries = lana_initialise(teacher, data[0], pairs, LanaConfig(steps=3, batch_size=8, lr=1e-3),
                              progress=False)
    # 3 training passes and 1 over the held-out batch, not 3 x 5 trained candidates
    assert calls == [8, 8, 8, 8]
    assert set(entries) == set(pairs)
    assert [len(entries[p].losses) for p in pairs] == [3, 3, 3, 3, 0, 0, 3]


def test_original_has_zero_loss_and_the_teachers_accuracy(teacher, data):
    x, y = data
    entries = lana_initialise(teacher, x, [(5, "original"), (2, "identity")],
                              LanaConfig(steps=5, batch_size=16, lr=1e-3), progress=False)
    original = entries[(5, "original")]
    assert original.losses == [] and original.final_loss == pytest.approx(0.0, abs=1e-12)
    assert original.module is not teacher.block(5)
    assert entries[(2, "identity")].final_loss > 0
    scores = lana_scores(teacher, entries, x, y, batch_size=32)
    assert scores[(5, "original")] == evaluate(teacher, x, y, batch_size=32)["accuracy"]


def test_scores_equal_plain_evaluation_of_the_swapped_network(teacher, data):
    x, y = data
    pairs = [(1, "conv_bn_e1"), (3, "inverted_residual"), (3, "bottleneck_e2"), (6, "identity"),
             (6, "conv_bn_e2")]
    entries = lana_initialise(teacher, x, pairs, LanaConfig(steps=4, batch_size=16, lr=1e-2), progress=False)
    before = state_of(teacher)
    modes = {key: e.module.training for key, e in entries.items()}
    scores = lana_scores(teacher, entries, x, y, batch_size=40)   # 40: a last batch of 16
    for (pos, name), entry in entries.items():
        swapped = substituted(teacher, {pos: entry.module})
        assert scores[(pos, name)] == evaluate(swapped, x, y, batch_size=40)["accuracy"], (pos, name)
        assert 0.0 <= scores[(pos, name)] <= 1.0
    assert_same_state(before, state_of(teacher))                  # never mutated
    assert not any(isinstance(b, (nn.ConvBNBlock, nn.Identity)) for b in teacher.blocks())
    assert {key: e.module.training for key, e in entries.items()} == modes
    # plain modules are accepted as well as LanaEntry values
    plain = lana_scores(teacher, {(1, "conv_bn_e1"): entries[(1, "conv_bn_e1")].module}, x, y, 40)
    assert plain[(1, "conv_bn_e1")] == scores[(1, "conv_bn_e1")]


def test_substituted_copies(teacher):
    block = nn.ConvBNBlock(16, 16, 1, rng=0)
    model = substituted(teacher, {2: block})
    assert model is not teacher and model.block(2) is not block
    assert isinstance(model.block(2), nn.ConvBNBlock) and isinstance(teacher.block(2), nn.PreActBlock)


def test_bad_input_is_a_clear_error(teacher, data):
    x, y = data
    config = LanaConfig(steps=1, batch_size=4, lr=1e-3)
    with pytest.raises(ValueError, match="unknown candidate 'nope'"):
        lana_initialise(teacher, x, [(1, "nope")], config)
    with pytest.raises(ValueError, match="position 9 is out of range"):
        lana_initialise(teacher, x, [(9, "conv_bn_e1")], config)
    with pytest.raises(ValueError, match="'identity' is not available at position 3"):
        lana_initialise(teacher, x, [(3, "identity")], config)
    with pytest.raises(ValueError, match="repeat"):
        lana_initialise(teacher, x, [(1, "identity"), (1, "identity")], config)
    with pytest.raises(ValueError, match="no replacements"):
        lana_initialise(teacher, x, [], config)
    with pytest.raises(ValueError, match="pair"):
        lana_initialise(teacher, x, [1], config)
    with pytest.raises(ValueError, match="at least 2 training images"):
        lana_initialise(teacher, x[:1], [(1, "identity")], config)
    with pytest.raises(ValueError, match="LanaConfig"):
        lana_initialise(teacher, x, [(1, "identity")], {"steps": 1})
    for bad in ({"steps": -1}, {"batch_size": 0}, {"lr": 0.0}, {"steps": 1.5}):
        with pytest.raises(ValueError, match="LanaConfig"):
            LanaConfig(**({"steps": 1, "batch_size": 4, "lr": 1e-3} | bad))
    with pytest.raises(ValueError, match="diverged"), np.errstate(all="ignore"):
        lana_initialise(teacher, x, [(1, "conv_bn_e1")], LanaConfig(steps=3, batch_size=4, lr=1e300))
    with pytest.raises(ValueError, match="must be non-empty and match"):
        lana_scores(teacher, {(1, "identity"): nn.Identity()}, x, y[:5])
    with pytest.raises(ValueError, match="no entries"):
        lana_scores(teacher, {}, x, y)
    with pytest.raises(ValueError, match="out of range"):
        lana_scores(teacher, {(0, "identity"): nn.Identity()}, x, y)


def test_a_users_candidate_is_distilled_too(teacher, data):
    from pyann.substitution import candidates
    candidates.register_candidate(
        "dw_sep", lambda slot, rng: nn.Sequential(
            nn.Conv2d(slot.in_channels, slot.in_channels, 3, slot.stride, 1, groups=slot.in_channels, rng=rng),
            nn.BatchNorm2d(slot.in_channels), nn.Conv2d(slot.in_channels, slot.out_channels, 1, rng=rng)),
        description="depthwise 3x3, BN, pointwise 1x1 (no expand)")
    try:
        entries = lana_initialise(teacher, data[0], [(3, "dw_sep")],
                                  LanaConfig(steps=30, batch_size=16, lr=3e-2), progress=False)
    finally:
        candidates.unregister_candidate("dw_sep")
    entry = entries[(3, "dw_sep")]
    assert len(entry.losses) == 30 and entry.final_loss < 0.8 * np.mean(entry.losses[:3])
    assert entry.module[0].input_grad        # the input gradient is back on for fine-tuning


def test_progress_bar_can_be_forced(teacher, data, capsys):
    lana_initialise(teacher, data[0], [(2, "conv_bn_e1")], LanaConfig(steps=2, batch_size=8, lr=1e-3),
                    progress=True)
    assert "LANA distillation" in capsys.readouterr().err
