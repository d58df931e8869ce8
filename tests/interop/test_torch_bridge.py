"""pyann <-> PyTorch: a torch-trained MLP predicts identically in pyann; state_dicts round-trip;
to_torch computes what the pyann model computes; mismatches are named errors."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pyann.interop import load_torch_state_dict, to_torch, torch_state_dict  # noqa: E402
from pyann.nn import zoo  # noqa: E402


def test_a_torch_trained_mlp_loads_and_predicts_identically():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.randn(256, 20)
    y = (x[:, :5] * 3).argmax(1)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    model = zoo.mlp([20, 32, 5], rng=9)
    load_torch_state_dict(model, net.state_dict())
    xs = torch.randn(500, 20)
    want = net(xs).detach().numpy()
    got = model.eval().forward(xs.numpy())
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))
    # and back: the pyann model's state loads into the torch network unchanged
    net2 = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5))
    net2.load_state_dict(torch_state_dict(model), strict=True)
    for (k, a), b in zip(net.state_dict().items(), net2.state_dict().values()):
        assert torch.equal(a, b), k


def test_state_dict_round_trip_and_to_torch(model_case):
    name, build, shape, x = model_case
    model = build(0)
    other = build(7)
    load_torch_state_dict(other, torch_state_dict(model))
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=k)
    net = to_torch(model).eval()
    np.testing.assert_allclose(net(torch.from_numpy(x)).detach().numpy(), model.forward(x), rtol=1e-4, atol=1e-5)
    third = build(8)
    load_torch_state_dict(third, net.state_dict())   # PyTorch's own state_dict, with its counters
    np.testing.assert_allclose(third.eval().forward(x), model.forward(x), rtol=1e-6, atol=1e-6)


def test_mismatches_are_named_and_change_nothing():
    model = zoo.mlp([20, 32, 5], rng=1)
    before = model.state_dict()
    state = torch_state_dict(zoo.mlp([20, 32, 5], rng=2))
    bad = dict(state)
    del bad["3.bias"]
    bad["4.weight"] = bad["3.weight"]
    with pytest.raises(ValueError, match=r"missing keys \['3.bias'\], unexpected keys \['4.weight'\]"):
        load_torch_state_dict(model, bad)
    bad = dict(state)
    bad["3.weight"] = torch.zeros(5, 31)
    with pytest.raises(ValueError, match="3.weight"):
        load_torch_state_dict(model, bad)
    bad = dict(state)
    bad["1.weight"] = torch.zeros(32, 20, 1)
    with pytest.raises(ValueError, match="must be 2-D"):
        load_torch_state_dict(model, bad)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
