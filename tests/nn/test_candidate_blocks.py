"""The substitution study's candidate blocks: float64 gradients (train mode, BN batch statistics)
for the input and every parameter, their structure, and spec / model-file round trips."""
import numpy as np
import pytest

from pyann import nn
from pyann.gradcheck import max_relative_error, numerical_gradient

BLOCKS = (nn.InvertedResidual, nn.ConvBNBlock, nn.BasicBlock, nn.Bottleneck)


def to_float64(model):
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    for mod in model.modules():
        for k, b in mod._buffers.items():
            mod._buffers[k] = b.astype(np.float64)
    return model


def check_module_gradients(model, x, rng, tol=1e-5):
    """backward() against central differences, for the input and every parameter."""
    y = model.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = model.backward(dy)
    f = lambda _: model.forward(x)   # noqa: E731  (numerical_gradient perturbs the array in place)
    assert max_relative_error(dx, numerical_gradient(f, x, dy)) < tol, "input"
    grads = {name: p.grad.copy() for name, p in model.named_parameters()}
    for name, p in model.named_parameters():
        assert max_relative_error(grads[name], numerical_gradient(f, p.data, dy)) < tol, name


def randomise_bn(model, rng):
    """BN's gamma 1 and beta 0 would hide mistakes in their gradients' wiring."""
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.gamma.data[:] = rng.uniform(0.5, 1.5, mod.num_features)
            mod.beta.data[:] = rng.uniform(-0.3, 0.3, mod.num_features)


# (in, out, stride, expand): a shape-keeping configuration and a stride-2 channel-changing one
CONFIGS = [(4, 4, 1, 2), (3, 5, 2, 2), (4, 4, 1, 1), (3, 5, 2, 1)]


@pytest.mark.parametrize("cls", BLOCKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("cin,cout,stride,expand", CONFIGS)
def test_candidate_block_gradients(cls, cin, cout, stride, expand, rng):
    block = to_float64(cls(cin, cout, stride, expand=expand, rng=0))
    randomise_bn(block, rng)
    assert block.training
    x = rng.standard_normal((2, cin, 5, 5))
    assert block.forward(x).shape == (2, cout, 3 if stride == 2 else 5, 3 if stride == 2 else 5)
    check_module_gradients(block, x, rng)


def child_names(block):
    return [name for name, _ in block.children()]


def test_inverted_residual_structure():
    same = nn.InvertedResidual(8, 8, 1)            # t = 6: hidden = 48 = 6 x in_channels
    assert child_names(same) == ["expand_conv", "bn1", "relu1", "dw", "bn2", "relu2", "project", "bn3"]
    assert same.expand_conv.weight.data.shape == (48, 8, 1, 1)
    assert same.dw.groups == 48 and same.dw.weight.data.shape == (48, 1, 3, 3)
    assert same._skip == "identity"
    assert isinstance(same.relu1, nn.ReLU6) and not hasattr(same, "relu3")   # linear projection
    down = nn.InvertedResidual(8, 16, 2)
    assert down._skip is None and down.dw.stride == 2
    # expand 1 has no expansion conv, as in MobileNetV2
    assert child_names(nn.InvertedResidual(8, 8, 1, expand=1))[0] == "dw"


def test_conv_bn_block_structure():
    e1 = nn.ConvBNBlock(8, 16, 2, expand=1)
    assert child_names(e1) == ["conv1", "bn1", "relu1"]
    assert e1.conv1.weight.data.shape == (16, 8, 3, 3) and e1.conv1.stride == 2
    e2 = nn.ConvBNBlock(8, 16, 2, expand=2)   # 3x3 to 2 x out, then 1x1 back to out
    assert child_names(e2) == ["conv1", "bn1", "relu1", "conv2", "bn2"]
    assert e2.conv1.weight.data.shape == (32, 8, 3, 3) and e2.conv2.weight.data.shape == (16, 32, 1, 1)
    assert e1._skip is None and nn.ConvBNBlock(8, 8, 1)._skip is None    # never a residual


def test_basic_and_bottleneck_structure():
    basic = nn.BasicBlock(8, 16, 2)           # middle = 2 x out
    assert basic.conv1.weight.data.shape == (32, 8, 3, 3) and basic.conv2.weight.data.shape == (16, 32, 3, 3)
    assert basic.shortcut[0].weight.data.shape == (16, 8, 1, 1) and basic.shortcut[0].stride == 2
    assert nn.BasicBlock(16, 16, 1)._skip == "identity"
    bottle = nn.Bottleneck(8, 16, 2)          # inner = out / 2
    assert [bottle.conv1.weight.data.shape, bottle.conv2.weight.data.shape, bottle.conv3.weight.data.shape] == \
        [(8, 8, 1, 1), (8, 8, 3, 3), (16, 8, 1, 1)]
    assert bottle.conv2.stride == 2 and isinstance(bottle.shortcut, nn.Sequential)
    assert nn.Bottleneck(16, 16, 1, expand=4).conv1.out_channels == 4
    assert nn.Bottleneck(3, 3, 1, expand=4).conv1.out_channels == 1    # never 0 channels
    # the ReLU after the sum: outputs are never negative
    x = np.random.default_rng(0).standard_normal((2, 16, 4, 4)).astype(np.float32)
    assert nn.BasicBlock(16, 16, 1).forward(x).min() >= 0


@pytest.mark.parametrize("cls", BLOCKS, ids=lambda c: c.__name__)
def test_input_grad_off_keeps_parameter_gradients(cls, rng):
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    for cin_cout_stride in ((4, 4, 1), (4, 6, 2)):
        full, lean = cls(*cin_cout_stride, rng=3), cls(*cin_cout_stride, rng=3)
        lean.set_input_grad(False)
        dy = rng.standard_normal(full.forward(x).shape).astype(np.float32)
        lean.forward(x)
        assert full.backward(dy) is not None and lean.backward(dy) is None
        for (name, a), (_, b) in zip(full.named_parameters(), lean.named_parameters()):
            np.testing.assert_allclose(a.grad, b.grad, rtol=1e-5, atol=1e-6, err_msg=name)


def train_a_little(block, x):
    for _ in range(2):   # train-mode passes move BN's running statistics
        block.forward(x)
    return block


@pytest.mark.parametrize("cls", BLOCKS, ids=lambda c: c.__name__)
def test_spec_and_model_file_round_trip(cls, tmp_path, rng):
    x = (rng.standard_normal((4, 4, 6, 6)) + 1).astype(np.float32)
    block = train_a_little(cls(4, 6, 2, expand=3, rng=1), x)
    spec = block.spec()
    assert spec == {"type": cls.__name__,
                    "config": {"in_channels": 4, "out_channels": 6, "stride": 2, "expand": 3}}
    rebuilt = nn.Module.from_spec(spec)
    assert rebuilt.spec() == spec and rebuilt.state_shapes() == block.state_shapes()
    loaded = nn.load(nn.save(block, tmp_path / "block.npz"))
    block.eval(), loaded.eval()
    np.testing.assert_array_equal(loaded.forward(x), block.forward(x))


def test_blocks_inside_a_wrn_save_and_load(tmp_path, rng):
    model = nn.WideResNet(depth=10, width=1, input_size=8, rng=0)
    # positions 1 (16 -> 16, stride 1), 2 (16 -> 32, stride 2), 3 (32 -> 64, stride 2)
    model.replace_block(1, nn.InvertedResidual(16, 16, 1, rng=1))
    model.replace_block(2, nn.Bottleneck(16, 32, 2, rng=2))
    model.replace_block(3, nn.ConvBNBlock(32, 64, 2, expand=2, rng=3))
    x = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    model.forward(x)
    model.backward(np.ones((3, 10), np.float32))
    loaded = nn.load(nn.save(model, tmp_path / "wrn.npz"))
    model.eval(), loaded.eval()
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    assert isinstance(loaded.block(2), nn.Bottleneck)


@pytest.mark.parametrize("cls", BLOCKS, ids=lambda c: c.__name__)
def test_bad_sizes_are_clear_errors(cls):
    with pytest.raises(ValueError, match="expand must be an integer >= 1"):
        cls(4, 4, 1, expand=0)
    with pytest.raises(ValueError, match="stride"):
        nn.Module.from_spec({"type": cls.__name__, "config": {"in_channels": 4, "out_channels": 4,
                                                               "stride": "2", "expand": 2}})
