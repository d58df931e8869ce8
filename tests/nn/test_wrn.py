"""WideResNet: structure, block positions, replace_block, and save/load with BN running stats."""
import numpy as np
import pytest

from pyann import nn
from pyann.nn.serialization import load, load_into, save


def test_wrn_16_2_structure():
    model = nn.build("wrn", depth=16, width=2)
    assert model.num_blocks == 6
    assert [b.out_channels for b in model.blocks()] == [32, 32, 64, 64, 128, 128]
    assert [b.stride for b in model.blocks()] == [1, 1, 2, 1, 2, 1]
    # projection shortcuts exactly where the shape changes (positions 1, 3, 5)
    assert [b.shortcut is not None for b in model.blocks()] == [True, False, True, False, True, False]
    assert model.block_shapes[2] == ((32, 32, 32), (64, 16, 16))
    assert 0.68e6 < model.num_parameters() < 0.70e6       # WRN-16-2 has ~0.69M parameters
    assert nn.WideResNet(40, 2).num_blocks == 18
    bn_params = [p for name, p in model.named_parameters() if ".bn" in name or name.startswith("bn.")]
    assert bn_params and not any(p.decay for p in bn_params)
    with pytest.raises(ValueError, match="6n \\+ 4"):
        nn.WideResNet(depth=15)


def test_wrn_forward_backward_float32(rng):
    model = nn.build("wrn", depth=10, width=1, dropout=0.3)
    x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    y = model.forward(x)
    assert y.shape == (4, 10) and y.dtype == np.float32
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape and dx.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in model.parameters())
    with pytest.raises(ValueError, match="expects input"):
        model.forward(x[:, :1])


def test_replace_block_checks_shapes(rng):
    model = nn.build("wrn", depth=16, width=1, rng=0)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    before = dict(model.named_buffers())["block4.bn1.running_mean"].copy()
    # same input and output shape as position 4 (32 channels, 16x16, stride 1)
    new = nn.PreActBlock(32, 32, 1, rng=5)
    old = model.replace_block(4, new)
    assert isinstance(old, nn.PreActBlock) and model.block(4) is new
    assert list(dict(model.children()))[1:7] == [f"block{i}" for i in range(1, 7)]
    np.testing.assert_array_equal(dict(model.named_buffers())["block4.bn1.running_mean"], before)
    assert model.forward(x).shape == (2, 10)
    # a depthwise-separable candidate at the downsampling position 3 (16 -> 32 channels, stride 2)
    cand = nn.Sequential(nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 16, 3, 2, 1, groups=16),
                         nn.Conv2d(16, 32, 1))
    model.replace_block(3, cand)
    model.forward(x)
    model.backward(np.ones((2, 10), np.float32))
    with pytest.raises(ValueError, match=r"must output \(None, 32, 16, 16\)"):
        model.replace_block(4, nn.PreActBlock(32, 64, 1))
    with pytest.raises(ValueError, match="input shape"):
        model.replace_block(4, nn.PreActBlock(16, 32, 1))
    with pytest.raises(ValueError, match="1..6"):
        model.replace_block(7, nn.Identity())
    assert model.block(4) is new   # failed replacements change nothing
    # the architecture JSON carries the replacements
    rebuilt = nn.Module.from_spec(model.spec())
    rebuilt.load_state_dict(model.state_dict())
    model.eval(), rebuilt.eval()
    np.testing.assert_array_equal(rebuilt.forward(x), model.forward(x))


def test_save_load_round_trips_running_stats(tmp_path, rng):
    model = nn.build("wrn", depth=10, width=1, dropout=0.1, rng=3)
    x = (rng.standard_normal((8, 3, 32, 32)) * 2 + 1).astype(np.float32)
    for _ in range(3):   # train-mode passes move the running statistics
        model.forward(x)
    rm = dict(model.named_buffers())["block2.bn2.running_var"]
    assert not np.allclose(rm, 1.0)
    path = save(model, tmp_path / "wrn.npz")
    loaded = load(path)
    for (k, a), (k2, b) in zip(sorted(model.state_dict().items()), sorted(loaded.state_dict().items())):
        assert k == k2
        np.testing.assert_array_equal(a, b)
    model.eval(), loaded.eval()
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    fresh = nn.build("wrn", depth=10, width=1, dropout=0.1, rng=99)
    load_into(fresh, path)
    np.testing.assert_array_equal(dict(fresh.named_buffers())["block2.bn2.running_var"], rm)
    with pytest.raises(ValueError, match="another architecture"):
        load_into(nn.build("wrn", depth=10, width=2), path)
