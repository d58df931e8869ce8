"""Conv2d, BatchNorm2d, pools, Dropout layers; residual blocks; cnn3. Gradients in float64."""
import numpy as np
import pytest

from pyann import nn
from pyann.gradcheck import max_relative_error, numerical_gradient


def to_float64(model):
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    for mod in _modules(model):
        for k, b in mod._buffers.items():
            mod._buffers[k] = b.astype(np.float64)
    return model


def _modules(model):
    yield model
    for _, child in model.children():
        yield from _modules(child)


def check_module_gradients(model, x, rng, before=lambda: None, tol=1e-5):
    """Compare backward() with central differences for the input and every parameter."""
    def f(_):
        before()
        return model.forward(x)
    before()
    y = model.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = model.backward(dy)
    assert max_relative_error(dx, numerical_gradient(f, x, dy)) < tol
    for name, p in model.named_parameters():
        grad = p.grad.copy()
        num = numerical_gradient(f, p.data, dy)
        assert max_relative_error(grad, num) < tol, name


def test_conv_layer_gradients_grouped_and_depthwise(rng):
    for layer in (nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, rng=1),
                  nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4, rng=2),
                  nn.Conv2d(4, 3, 1, rng=3)):
        to_float64(layer)
        check_module_gradients(layer, rng.standard_normal((2, 4, 5, 5)), rng)


def test_bn_layer_train_gradients_and_buffers(rng):
    bn = to_float64(nn.BatchNorm2d(3))
    bn.gamma.data[:] = rng.standard_normal(3)
    check_module_gradients(bn, rng.standard_normal((4, 3, 3, 3)), rng)
    assert not bn.gamma.decay and not bn.beta.decay
    assert set(dict(bn.named_buffers())) == {"running_mean", "running_var"}


def test_bn_relu_layer_gradients_and_state_names(rng):
    layer = to_float64(nn.BatchNormReLU2d(3))
    layer.gamma.data[:] = rng.standard_normal(3)
    check_module_gradients(layer, rng.standard_normal((4, 3, 3, 3)), rng)
    assert set(layer.state_dict()) == set(nn.BatchNorm2d(3).state_dict())


def test_bn_eval_is_affine_in_running_stats(rng):
    bn = nn.BatchNorm2d(2)
    x = (rng.standard_normal((64, 2, 4, 4)) * 2 + 3).astype(np.float32)
    for _ in range(200):
        bn.forward(x)
    bn.eval()
    y = bn.forward(x)   # running stats have converged to the batch stats
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=2e-3)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1, atol=2e-3)


def test_dropout_layer(rng):
    d = nn.Dropout(0.5, seed=3)
    x = rng.standard_normal((2, 3, 4, 4))
    check_module_gradients(d, x, rng, before=lambda: d.reseed(3))
    d.eval()
    assert d.forward(x) is x
    with pytest.raises(ValueError, match="probability"):
        nn.Dropout(1.5)


def test_pool_layers(rng):
    x = rng.permutation(2 * 2 * 6 * 6).reshape(2, 2, 6, 6) / 100.0
    for layer in (nn.MaxPool2d(2), nn.AvgPool2d(3, 2, 1), nn.GlobalAvgPool()):
        check_module_gradients(layer, x, rng)
    assert nn.MaxPool2d(2).forward(x).shape == (2, 2, 3, 3)
    assert nn.GlobalAvgPool().forward(x).shape == (2, 2)


def test_residual_container_with_projection(rng):
    block = to_float64(nn.basic_residual(3, 4, stride=2, rng=0))
    check_module_gradients(block, rng.standard_normal((2, 3, 5, 5)), rng)
    same = to_float64(nn.Residual(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, rng=1), nn.ReLU())))
    check_module_gradients(same, rng.standard_normal((2, 3, 4, 4)), rng)
    rebuilt = nn.Module.from_spec(block.spec())
    assert rebuilt.spec() == block.spec()


@pytest.mark.parametrize("cin,cout,stride,drop", [(4, 4, 1, 0.0), (3, 5, 2, 0.3)])
def test_preact_block_gradients(cin, cout, stride, drop, rng):
    block = to_float64(nn.PreActBlock(cin, cout, stride, dropout=drop, rng=0, seed=7))
    before = (lambda: block.drop.reseed(7)) if drop else (lambda: None)
    check_module_gradients(block, rng.standard_normal((2, cin, 5, 5)), rng, before)
    assert (block.shortcut is None) == (cin == cout and stride == 1)


def sampled_gradient(f, a, dy, idx, h=1e-6):
    """Central differences of sum(f() * dy) for the flat indices idx of array a only."""
    out = []
    for i in idx:
        old = a.flat[i]
        a.flat[i] = old + h
        plus = np.sum(f() * dy)
        a.flat[i] = old - h
        minus = np.sum(f() * dy)
        a.flat[i] = old
        out.append((plus - minus) / (2 * h))
    return np.array(out)


def test_tiny_wrn_gradients(rng):
    model = to_float64(nn.WideResNet(depth=10, width=1, classes=3, in_channels=2, input_size=6, rng=0))
    x = rng.standard_normal((2, 2, 6, 6))
    y = model.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = model.backward(dy)
    assert max_relative_error(dx, numerical_gradient(lambda v: model.forward(v), x, dy)) < 1e-5
    params = dict(model.named_parameters())
    for name in ("stem.weight", "block1.bn1.gamma", "block2.conv1.weight", "block3.shortcut.weight",
                 "block3.bn2.beta", "bn.gamma", "fc.weight"):
        p = params[name]
        idx = rng.choice(p.data.size, size=min(p.data.size, 12), replace=False)
        num = sampled_gradient(lambda: model.forward(x), p.data, dy, idx)
        assert max_relative_error(p.grad.ravel()[idx], num) < 1e-5, name


def test_layer_errors():
    conv = nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(6, 8, 3, groups=4)
    with pytest.raises(ValueError, match="rank 4"):
        conv.forward(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="3 input channels, got 1"):
        conv.forward(np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="4 input channels"):
        nn.BatchNorm2d(4).forward(np.zeros((2, 3, 2, 2), np.float32))


def test_cnn3_shapes_and_float32():
    model = nn.build("cnn3", rng=0)
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    y = model.forward(x)
    assert y.shape == (3, 10) and y.dtype == np.float32
    assert model.backward(np.ones_like(y)).dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in model.parameters())
    assert model[-1].in_features == 3136
    rebuilt = nn.Module.from_spec(model.spec())
    rebuilt.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(rebuilt.forward(x), y)


@pytest.mark.parametrize("name, kwargs, shape", [("cnn3", {}, (3, 1, 28, 28)),
                                                 ("wrn", {"depth": 10, "width": 1}, (2, 3, 8, 8)),
                                                 ("mlp5", {}, (3, 1, 28, 28))])
def test_set_input_grad_skips_the_input_gradient_only(name, kwargs, shape):
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    grads = []
    for enabled in (True, False):
        model = nn.build(name, rng=0, **kwargs)
        assert model.set_input_grad(enabled) is model
        y = model.forward(x)
        grads.append((model.backward(np.ones_like(y)), [p.grad.copy() for p in model.parameters()]))
    (dx, full), (skipped, partial) = grads
    assert dx.shape == x.shape and skipped is None
    for a, b in zip(full, partial):
        np.testing.assert_array_equal(b, a)


def test_set_input_grad_reaches_the_first_conv_only():
    model = nn.build("cnn3", rng=0).set_input_grad(False)
    assert [layer.input_grad for layer in model.layers[:4]] == [False, True, True, True]
    mlp = nn.build("mlp5", rng=0).set_input_grad(False)   # through Flatten to the first Linear
    assert [layer.input_grad for layer in mlp.layers[:4]] == [False, False, True, True]
    wrn = nn.build("wrn", depth=10, width=1).set_input_grad(False)
    assert [m.input_grad for m in wrn.modules() if isinstance(m, nn.Conv2d)][:3] == [False, True, True]
