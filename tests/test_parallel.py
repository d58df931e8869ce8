"""DataParallel: sharded forward/backward against the same model run on the whole batch (or on
each shard), shared parameters, averaged BatchNorm statistics, BLAS threads, errors."""
import numpy as np
import pytest
from threadpoolctl import threadpool_info

from pyann import nn, ops
from pyann.optim import SGD
from pyann.parallel import DataParallel
from pyann.train import evaluate, fit


def _cnn(seed=0, bn=False):
    layers = [nn.Conv2d(3, 6, 3, 1, 1, rng=seed)]
    layers += [nn.BatchNorm2d(6)] if bn else []
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 4 * 4, 5, rng=seed + 1)]
    return nn.Sequential(*layers)


def _batch(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, 8, 8)).astype(np.float32), rng.integers(0, 5, n)


def _step(runner, x, y):
    out = runner.forward(x)
    loss, cache = ops.softmax_cross_entropy_forward(out, y)
    runner.backward(ops.softmax_cross_entropy_backward(cache))
    return out, loss


@pytest.mark.parametrize("workers", [2, 3])
def test_outputs_and_gradients_equal_the_whole_batch(workers):
    serial, sharded = _cnn(), _cnn()
    x, y = _batch(10)
    out_ref, _ = _step(serial, x, y)
    with DataParallel(sharded, workers) as dp:
        out, _ = _step(dp, x, y)
    np.testing.assert_allclose(out, out_ref, rtol=1e-5, atol=1e-6)
    for p, q in zip(serial.parameters(), sharded.parameters()):
        np.testing.assert_allclose(q.grad, p.grad, rtol=1e-4, atol=1e-6)


def test_input_gradient_is_concatenated_over_shards():
    serial, sharded = _cnn(), _cnn()
    x, y = _batch(7)
    serial.forward(x)
    dout = np.random.default_rng(1).standard_normal((7, 5)).astype(np.float32)
    dx_ref = serial.backward(dout)
    with DataParallel(sharded, 2) as dp:
        dp.forward(x)
        dx = dp.backward(dout)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-6)


def test_batchnorm_uses_shard_statistics_and_averages_running_stats():
    reference, sharded = _cnn(bn=True), _cnn(bn=True)
    x, _ = _batch(8)
    with DataParallel(sharded, 2) as dp:
        out = dp.forward(x)
        replica_stats = [{k: b.copy() for k, b in r.named_buffers()} for r in dp.replicas]
    # the reference normalises each half on its own, starting both halves from the same statistics
    start = reference.state_dict()
    halves, stats = [], []
    for part in (x[:4], x[4:]):
        reference.load_state_dict(start)
        halves.append(reference.forward(part))
        stats.append({k: b.copy() for k, b in reference.named_buffers()})
    np.testing.assert_allclose(out, np.concatenate(halves), rtol=1e-5, atol=1e-5)
    for name in stats[0]:
        expected = (stats[0][name] + stats[1][name]) / 2
        for replica in replica_stats:
            np.testing.assert_allclose(replica[name], expected, rtol=1e-6)


def test_replicas_share_parameters_so_an_optimiser_step_reaches_all():
    model = _cnn()
    opt = SGD(model.parameters(), lr=0.1)
    x, y = _batch(6)
    with DataParallel(model, 2) as dp:
        _step(dp, x, y)
        opt.step()
        for p, q in zip(model.parameters(), dp.replicas[1].parameters()):
            assert q.data is p.data


def test_blas_is_limited_to_one_thread_inside_and_restored_after():
    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    with DataParallel(_cnn(), 2):
        inside = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    after = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    assert all(n == 1 for n in inside)
    assert after == before


def test_batch_smaller_than_workers_and_eval_mode():
    serial, sharded = _cnn(bn=True), _cnn(bn=True)
    x, _ = _batch(2)
    serial.eval()
    with DataParallel(sharded, 4) as dp:
        dp.eval()
        np.testing.assert_allclose(dp.forward(x), serial.forward(x), rtol=1e-5, atol=1e-6)
        assert not any(r.training for r in dp.replicas)


def test_fit_with_workers_learns_and_is_deterministic():
    def run():
        rng = np.random.default_rng(0)
        y = rng.integers(0, 5, 200)
        x = (rng.standard_normal((200, 3, 8, 8)) * 0.5 + y[:, None, None, None] - 2).astype(np.float32)
        model = _cnn(bn=True)
        history = fit(model, (x, y), 5, SGD(model.parameters(), lr=0.05, momentum=0.9), batch_size=20,
                      validation=(x, y), workers=2)
        return model, history, (x, y)
    a, history, data = run()
    b, _, _ = run()
    assert history.last()["val_acc"] > 0.9
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert evaluate(a, *data, workers=2) == evaluate(a, *data)


def test_bad_use_raises_clear_errors():
    with pytest.raises(ValueError, match="workers"):
        DataParallel(_cnn(), 0)
    dp = DataParallel(_cnn(), 2)
    with pytest.raises(RuntimeError, match="context"):
        dp.forward(_batch(4)[0])
    with DataParallel(_cnn(), 2) as dp:
        dp.forward(_batch(4)[0])
        with pytest.raises(ValueError, match="4"):
            dp.backward(np.zeros((3, 5), np.float32))
