"""Pruned weights never revive: SGD (momentum, Nesterov, weight decay) and Adam step by step, fit
with one and two workers (replicas share the parameter arrays), checkpoints that resume a
pruned run."""
import numpy as np
import pytest

from pyann import nn, ops, pruning
from pyann.optim import SGD, Adam
from pyann.parallel import DataParallel
from pyann.train import fit


def _data(n=64, seed=0, d=10, classes=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    return x, y % classes


def _cnn(seed=0):
    return nn.Sequential(nn.Conv2d(1, 4, 3, 1, 1, rng=seed), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 3 * 3, 3, rng=seed))


def _assert_held(model, masks):
    """Every masked weight is exactly +0 and the nonzeros never exceed the mask."""
    for name, layer in pruning.prunable_layers(model).items():
        w, mask = layer.weight.data, masks[name]
        assert np.array_equal(layer.weight.mask, mask)
        pruned = w[~mask]
        assert (pruned == 0).all() and not np.signbit(pruned).any()
        assert np.count_nonzero(w) <= np.count_nonzero(mask)


OPTIMISERS = {
    "sgd_momentum_nesterov_decay": lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-3),
    "sgd_momentum_decay": lambda ps: SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-2),
    "adam_decay": lambda ps: Adam(ps, lr=1e-2, weight_decay=1e-3),
}


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_many_steps_never_revive_a_pruned_weight(name):
    """Train dense first, so momentum / Adam's moments are large where the weights are then
    pruned (the case that revives weights in other libraries), then 300 steps pruned."""
    model = nn.zoo.mlp([10, 16, 3], rng=1)
    x, y = _data()
    opt = OPTIMISERS[name](model.parameters())

    def step(xb, yb):
        out = model.forward(xb)
        loss, cache = ops.softmax_cross_entropy_forward(out, yb)
        model.backward(ops.softmax_cross_entropy_backward(cache))
        opt.step()
        return loss

    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = rng.integers(0, len(x), 16)
        step(x[idx], y[idx])
    pruning.prune(model, fraction=0.7, scope="global")       # after the optimiser was built
    masks = pruning.masks(model)
    first = last = None
    for i in range(300):
        idx = rng.integers(0, len(x), 16)
        loss = step(x[idx], y[idx])
        first = loss if first is None else first
        last = loss
        _assert_held(model, masks)
    assert last < first                                       # it did train
    for name_, layer in pruning.prunable_layers(model).items():
        i = next(k for k, p in enumerate(opt.params) if p is layer.weight)
        for state in opt._slots(i):                           # no momentum left to push them
            assert not state[~masks[name_]].any()


def test_fit_needs_no_special_call_with_one_and_two_workers():
    x = np.random.default_rng(2).standard_normal((48, 1, 6, 6)).astype(np.float32)
    y = np.random.default_rng(3).integers(0, 3, 48)
    for workers in (1, 2):
        model = _cnn()
        pruning.prune(model, fraction=0.6)
        masks = pruning.masks(model)
        before = [layer.weight.data.copy() for layer in pruning.prunable_layers(model).values()]
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)
        fit(model, (x, y), epochs=3, optimizer=opt, batch_size=8, workers=workers, progress=False)
        _assert_held(model, masks)
        after = [layer.weight.data for layer in pruning.prunable_layers(model).values()]
        assert all(not np.array_equal(a, b) for a, b in zip(before, after))


def test_replicas_share_the_weights_and_the_optimiser_masks_their_summed_gradient():
    model = _cnn()
    pruning.prune(model, fraction=0.5)
    x = np.random.default_rng(4).standard_normal((6, 1, 6, 6)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    with DataParallel(model, 2) as dp:
        replica = dp.replicas[1]
        assert replica[0].weight.data is model[0].weight.data
        assert replica[0].weight.mask is not None          # rebuilt from the spec: masked too
        out = dp.forward(x)
        _, cache = ops.softmax_cross_entropy_forward(out, y)
        dp.backward(ops.softmax_cross_entropy_backward(cache))
    opt = SGD(model.parameters(), lr=1.0, momentum=0.9)
    opt.step()
    _assert_held(model, pruning.masks(model))


def test_gradients_of_pruned_weights_are_zero_after_backward():
    model = _cnn()
    pruning.prune(model, fraction=0.5)
    x = np.random.default_rng(5).standard_normal((4, 1, 6, 6)).astype(np.float32)
    out = model.forward(x)
    model.backward(np.ones_like(out))
    for layer in pruning.prunable_layers(model).values():
        assert not layer.weight.grad[~layer.weight.mask].any()
        assert layer.weight.grad[layer.weight.mask].any()


def test_a_pruned_run_resumes_from_its_checkpoint(tmp_path):
    x, y = _data(40)
    model = nn.zoo.mlp([10, 8, 3], rng=0)
    pruning.prune(model, fraction=0.5)
    masks = pruning.masks(model)
    fit(model, (x, y), epochs=2, optimizer=SGD(model.parameters(), lr=0.1, momentum=0.9),
        checkpoint_dir=tmp_path, progress=False, batch_size=8)
    straight = nn.zoo.mlp([10, 8, 3], rng=0)
    pruning.prune(straight, fraction=0.5)
    fit(straight, (x, y), epochs=3, optimizer=SGD(straight.parameters(), lr=0.1, momentum=0.9),
        progress=False, batch_size=8)
    resumed = nn.zoo.mlp([10, 8, 3], rng=0)
    pruning.prune(resumed, fraction=0.5)
    fit(resumed, (x, y), epochs=3, optimizer=SGD(resumed.parameters(), lr=0.1, momentum=0.9),
        checkpoint_dir=tmp_path, resume=True, progress=False, batch_size=8)
    _assert_held(resumed, masks)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
