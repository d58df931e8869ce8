"""sparsity_report (the paper's connection counts, pruned multiply-adds, table and data) and the
gradual polynomial schedule as a fit callback."""
import numpy as np
import pytest

from pyann import nn, pruning
from pyann.optim import SGD
from pyann.train import fit


def test_report_counts_cnn3_connections_the_papers_way():
    model = nn.zoo.build("cnn3", rng=0)
    pruning.prune_to_density(model, {"3": 0.25})
    report = pruning.sparsity_report(model, (1, 28, 28))
    rows = {r.layer: r for r in report.rows}
    # the paper: 225,792 / 3,612,672 / 31,360 connections (kernel size x output positions)
    assert [r.dense_macs for r in report.rows] == [225_792, 3_612_672, 31_360]
    assert rows["3"].shape == (64, 32, 3, 3) and rows["3"].weights == 18_432
    assert rows["3"].nonzeros == 4_608 and rows["3"].density == 0.25
    assert rows["3"].pruned_macs == 4_608 * 14 * 14
    assert rows["0"].masked is False and rows["0"].pruned_macs == 225_792
    assert report.dense_macs == 3_869_824
    assert report.pruned_macs == 225_792 + 903_168 + 31_360
    assert report.gain == pytest.approx((225_792 + 903_168 + 31_360) / 3_869_824)
    data = report.to_dict()
    assert data["total"]["weights"] == 288 + 18_432 + 31_360
    assert data["layers"][1]["density"] == 0.25 and data["layers"][1]["shape"] == [64, 32, 3, 3]
    text = str(report)
    assert "903,168" in text and "3,612,672" in text and "total" in text and "c'/c = 0.2998" in text


def test_report_of_an_mlp_knows_its_input_and_of_a_cnn_without_one_leaves_macs_out():
    fcn2 = nn.zoo.build("fcn2", rng=0)
    pruning.prune(fcn2, "1", fraction=0.9)
    report = pruning.sparsity_report(fcn2)
    assert [r.dense_macs for r in report.rows] == [235_200, 30_000, 1_000]
    assert report.rows[0].nonzeros == report.rows[0].pruned_macs == 23_520
    cnn = pruning.sparsity_report(nn.zoo.build("cnn3"))
    assert cnn.input_shape is None and cnn.rows[0].dense_macs is None and cnn.gain is None
    assert "pass input_shape" in str(cnn)


def test_report_gives_the_exact_bytes_of_the_dense_and_the_compact_file(tmp_path):
    model = nn.build("fcn2", rng=0)
    pruning.prune_to_density(model, 0.1)
    report = pruning.sparsity_report(model)
    nn.save(model, tmp_path / "compact.npz", compact=True)
    nn.save(pruning.make_permanent(pruning.clone(model)), tmp_path / "dense.npz")
    assert report.compact_file_bytes == (tmp_path / "compact.npz").stat().st_size
    assert report.dense_file_bytes == (tmp_path / "dense.npz").stat().st_size
    assert report.compact_file_bytes < report.dense_file_bytes / 5
    assert report.to_dict()["file_bytes"] == {"dense": report.dense_file_bytes,
                                              "compact": report.compact_file_bytes}
    assert "bytes compact" in str(report)


def test_polynomial_schedule_values():
    s = pruning.polynomial_sparsity
    assert s(0, 0.8, 0, 4) == 0.0
    assert s(1, 0.8, 0, 4) == pytest.approx(0.8 - 0.8 * 0.75 ** 3)
    assert s(2, 0.8, 0, 4) == pytest.approx(0.7)
    assert s(4, 0.8, 0, 4) == s(9, 0.8, 0, 4) == 0.8
    assert s(1, 0.8, 2, 4) == 0.0                              # before it begins
    assert s(3, 0.9, 2, 4, initial=0.5, power=1) == pytest.approx(0.7)
    with pytest.raises(ValueError, match=r"final sparsity must be in \[0, 1\]"):
        s(1, 1.2, 0, 4)
    with pytest.raises(ValueError, match="begin <= end"):
        s(1, 0.5, 4, 2)


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 10)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def _run(epochs, tmp_path=None, resume=False):
    model = nn.zoo.mlp([10, 20, 2], rng=0)
    cb = pruning.GradualPruning(final=0.8, begin=0, end=4)
    history = fit(model, _data(), epochs, SGD(model.parameters(), lr=0.1, momentum=0.9), batch_size=16,
                  callbacks=[cb], progress=False, checkpoint_dir=tmp_path, resume=resume)
    return model, history


def test_gradual_pruning_follows_the_cubic_schedule_during_fit():
    model, history = _run(5)
    expected = [pruning.polynomial_sparsity(t, 0.8, 0, 4) for t in range(1, 6)]
    assert history.column("sparsity") == pytest.approx(expected)
    assert pruning.density(model) == {"1": 40 / 200, "3": 8 / 40}
    for layer in pruning.prunable_layers(model).values():
        assert not layer.weight.data[~layer.weight.mask].any()


def test_gradual_pruning_with_two_workers_holds_the_masks_it_adds_mid_fit():
    model = nn.zoo.mlp([10, 20, 2], rng=0)
    fit(model, _data(), 4, SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
        batch_size=16, workers=2, progress=False, callbacks=[pruning.GradualPruning(final=0.75, begin=1, end=3)])
    assert pruning.density(model) == {"1": 50 / 200, "3": 10 / 40}
    for layer in pruning.prunable_layers(model).values():
        assert not layer.weight.data[~layer.weight.mask].any()


def test_gradual_pruning_resumes_as_the_uninterrupted_run(tmp_path):
    straight, _ = _run(4)
    _run(2, tmp_path)
    resumed, _ = _run(4, tmp_path, resume=True)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    for name, mask in pruning.masks(straight).items():
        np.testing.assert_array_equal(pruning.masks(resumed)[name], mask)


def test_gradual_pruning_every_other_epoch_and_at_the_end():
    model = nn.zoo.mlp([10, 20, 2], rng=0)
    cb = pruning.GradualPruning(final=0.5, begin=1, end=4, frequency=2, power=1)
    history = fit(model, _data(), 5, SGD(model.parameters(), lr=0.1), batch_size=16, callbacks=[cb], progress=False)
    # epochs 1 and 3 prune (t - begin even; s(1) = 0, s(3) = 0.5 * 2/3), epoch 4 is the end,
    # epoch 2 keeps epoch 1's level
    assert history.column("sparsity") == pytest.approx([0.0, 0.0, 1 / 3, 0.5, 0.5])
    assert pruning.density(model) == {"1": 0.5, "3": 0.5}


def test_gradual_pruning_refuses_bad_settings():
    with pytest.raises(ValueError, match="frequency"):
        pruning.GradualPruning(final=0.5, frequency=0)
    model = nn.zoo.mlp([10, 20, 2])
    with pytest.raises(ValueError, match="no prunable layer named 'fc'"):
        fit(model, _data(), 1, SGD(model.parameters(), lr=0.1), progress=False,
            callbacks=[pruning.GradualPruning(final=0.5, layers=["fc"])])
