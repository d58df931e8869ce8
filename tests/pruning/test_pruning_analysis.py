"""The paper's measurements on a tiny model and synthetic data: the sweep without retraining,
masked retraining, per-layer sensitivity and its CSV, the error model (eq. 1-3), and the
allocations (eq. 4 uniform, exact DP optimal) with their gain (eq. 5)."""
import itertools
import math

import numpy as np
import pytest

from pyann import nn, pruning
from pyann.optim import SGD
from pyann.train import evaluate, fit


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 8)).astype(np.float32)
    y = (x[:, 0] - x[:, 1] + 0.5 * x[:, 2] > 0).astype(np.int64) + (x[:, 3] > 0.7)
    model = nn.zoo.mlp([8, 16, 3], rng=1)
    fit(model, (x, y), 15, SGD(model.parameters(), lr=0.1, momentum=0.9), batch_size=32, progress=False)
    return model, x, y


def test_sweep_without_retraining(trained):
    model, x, y = trained
    before = {k: v.copy() for k, v in model.state_dict().items()}
    dense = evaluate(model, x, y)
    points = pruning.sweep(model, x, y, fractions=[0.0, 0.25, 0.5, 0.75, 1.0])
    assert [p.removed for p in points] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [p.kept for p in points] == [176, 132, 88, 44, 0]
    assert points[0].accuracy == dense["accuracy"] and points[0].loss == pytest.approx(dense["loss"])
    assert points[0].accuracy > 0.9 and points[-1].accuracy < 0.6
    # every weight 0: the logits are the last bias, the same class for every sample
    logits = model[3].bias.data
    assert points[-1].accuracy == pytest.approx(np.mean(y == np.argmax(logits)))
    for k, v in model.state_dict().items():                   # the model itself is untouched
        np.testing.assert_array_equal(v, before[k])
    assert pruning.masks(model) == {}
    by_t = pruning.sweep(model, x, y, thresholds=[0.0, 1e9])
    assert [p.removed for p in by_t] == [0.0, 1.0] and by_t[0].criterion == "threshold"
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0"):
        pruning.sweep(model, x, y, thresholds=[-1.0])


def test_masked_retraining_recovers_accuracy(trained):
    model, x, y = trained
    pruned_only = pruning.sweep(model, x, y, fractions=[0.85])[0].accuracy
    retrained, history = pruning.prune_and_retrain(
        model, (x, y), fraction=0.85, scope="global", epochs=8, batch_size=32, progress=False,
        make_optimizer=lambda ps: SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-4))
    acc = evaluate(retrained, x, y)["accuracy"]
    assert acc > pruned_only + 0.05 and len(history.epochs) == 8
    assert sum(np.count_nonzero(m) for m in pruning.masks(retrained).values()) == round(0.15 * 176)
    for layer in pruning.prunable_layers(retrained).values():
        assert not layer.weight.data[~layer.weight.mask].any()
    assert pruning.masks(model) == {}


def test_sensitivity_prunes_each_layer_alone_and_writes_distillers_csv(trained, tmp_path):
    model, x, y = trained
    dense = evaluate(model, x, y)
    rows = pruning.sensitivity(model, x, y, [1.0, 0.5, 0.0])
    assert [(r.parameter, r.density) for r in rows] == [
        ("1.weight", 1.0), ("1.weight", 0.5), ("1.weight", 0.0),
        ("3.weight", 1.0), ("3.weight", 0.5), ("3.weight", 0.0)]
    assert rows[0].accuracy == rows[3].accuracy == dense["accuracy"]
    # the last layer pruned to nothing: logits are its bias, whatever the first layer does
    assert rows[5].accuracy == pytest.approx(np.mean(y == np.argmax(model[3].bias.data)))
    # the first layer pruned alone to 50%: the same as pruning that copy by hand
    copy = pruning.clone(model)
    pruning.prune_to_density(copy, {"1": 0.5})
    assert rows[1].accuracy == evaluate(copy, x, y)["accuracy"]
    path = pruning.write_sensitivity_csv(rows, tmp_path / "sens.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "parameter,density,accuracy,loss" and len(lines) == 7
    assert lines[1].startswith("1.weight,1.0,")
    assert pruning.read_sensitivity_csv(path) == rows
    assert pruning.curves(rows)["3"] == [(0.0, rows[5].accuracy), (0.5, rows[4].accuracy), (1.0, rows[3].accuracy)]
    retrained = pruning.sensitivity(model, x, y, [0.3], layers="1", retrain=lambda m: fit(
        m, (x, y), 3, SGD(m.parameters(), lr=0.05, momentum=0.9), batch_size=32, progress=False))
    assert retrained[0].accuracy >= pruning.sensitivity(model, x, y, [0.3], layers="1")[0].accuracy


def test_sensitivity_csv_reader_names_bad_lines(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("parameter,density,accuracy,loss\n1.weight,0.5,1.7,0.3\n")
    with pytest.raises(ValueError, match="line 2: need density and accuracy in"):
        pruning.read_sensitivity_csv(bad)
    bad.write_text("parameter,density,top1\n")
    with pytest.raises(ValueError, match=r"missing columns \['accuracy', 'loss'\]"):
        pruning.read_sensitivity_csv(bad)


# ---- error model ---------------------------------------------------------------------------------

def test_error_model_fit_by_hand():
    # (1000, 0.08) before the knee, (500, 0.32) after: s = ln 4 / 500, a = 0.08 * 4^2 = 1.28
    m = pruning.ErrorModel.fit(1000, 0.08, 500, 0.32)
    assert m.s == pytest.approx(math.log(4) / 500) and m.a == pytest.approx(1.28)
    assert m.error(1000) == pytest.approx(0.08) and m.error(500) == pytest.approx(0.32)
    assert m.error(750) == pytest.approx(0.16)                # halfway in c: the geometric mean
    assert m.connections_for(0.16) == pytest.approx(750)
    assert m.accuracy(750) == pytest.approx(0.84)
    power = pruning.ErrorModel.fit(1000, 0.08, 500, 0.32, form="power")
    assert power.s == pytest.approx(2.0) and power.error(750) == pytest.approx(0.08 * (1000 / 750) ** 2)


def test_error_model_reports_held_out_error_in_points():
    m = pruning.ErrorModel.fit(1000, 0.08, 500, 0.32)
    report = m.held_out([(1000, 0.08), (750, 0.17), (600, 0.2398), (2000, 0.05), (500, 0.32)])
    assert [p["c"] for p in report["points"]] == [750, 600, 2000]    # the fitted two are left out
    assert report["points"][0]["error_points"] == pytest.approx(1.0)
    assert report["in_region"]["n"] == 2
    assert report["in_region"]["max_error_points"] == pytest.approx(1.0)
    assert report["points"][1]["error_points"] == pytest.approx(100 * abs(1.28 * 4 ** -1.2 - 0.2398))
    assert report["outside"]["n"] == 1 and report["points"][2]["in_region"] is False


def test_error_model_recovers_its_own_curve_and_picks_knee_points():
    truth = pruning.ErrorModel(a=0.5, s=5.0, form="exp", fitted_on=((1, 0), (0, 0)))
    measured = [(c, truth.error(c)) for c in (1.0, 0.8, 0.6, 0.4, 0.2)]
    before, after = pruning.knee_points([(1.0, 0.0034), (0.8, 0.0036), (0.6, 0.0250), (0.4, 0.07)], 0.001)
    assert before == (0.8, 0.0036) and after == (0.6, 0.0250)
    m = pruning.ErrorModel.fit(*measured[1], *measured[3])
    assert m.a == pytest.approx(0.5) and m.s == pytest.approx(5.0)
    assert m.held_out(measured)["in_region"]["max_error_points"] == pytest.approx(0.0, abs=1e-9)


def test_error_model_refuses_points_it_cannot_fit():
    with pytest.raises(ValueError, match="c_before > c_after > 0"):
        pruning.ErrorModel.fit(500, 0.08, 1000, 0.32)
    with pytest.raises(ValueError, match="0 < e_before < e_after"):
        pruning.ErrorModel.fit(1000, 0.0, 500, 0.32)
    with pytest.raises(ValueError, match="no measured point lies past the knee"):
        pruning.knee_points([(1.0, 0.02), (0.5, 0.021)], 0.01)


# ---- allocation ----------------------------------------------------------------------------------

# layer A is expensive and tolerant, layer B cheap and touchy at its first step
CURVES = {"A": [(1.0, 0.95), (0.5, 0.93), (0.1, 0.91)],
          "B": [(1.0, 0.95), (0.1, 0.949)]}
COSTS = {"A": 100, "B": 10}


def test_optimal_allocation_beats_the_uniform_split_by_hand():
    # budget 4 points: uniform gives each layer 2 -> A at 0.5 (drop 2), B at 0.1 (drop 0.1):
    # c' = 50 + 1 = 51 of 110. The optimum spends it all on A -> A at 0.1 (drop 4), B dense:
    # c' = 10 + 10 = 20 of 110 (A 0.1 with B 0.1 would drop 4.1 points: over budget)
    uni = pruning.uniform(CURVES, COSTS, 0.04)
    opt = pruning.optimal(CURVES, COSTS, 0.04)
    assert uni.densities == {"A": 0.5, "B": 0.1} and uni.gain == pytest.approx(51 / 110)
    assert opt.densities == {"A": 0.1, "B": 1.0} and opt.gain == pytest.approx(20 / 110)
    assert opt.predicted_drop == pytest.approx(0.04) and uni.predicted_drop == pytest.approx(0.021)
    assert uni.kept == {"A": 50, "B": 1} and opt.predicted_accuracy == pytest.approx(0.91)
    assert pruning.optimal(CURVES, COSTS, 0.041).densities == {"A": 0.1, "B": 0.1}
    assert pruning.optimal(CURVES, COSTS, 0.0).densities == {"A": 1.0, "B": 1.0}
    both = pruning.allocate(CURVES, COSTS, 0.04)
    assert both["optimal"].gain < both["uniform"].gain
    data = opt.to_dict()
    assert data["gain"] == pytest.approx(20 / 110) and data["layers"][0] == {
        "layer": "A", "connections": 100, "density": 0.1, "kept": 10, "drop": pytest.approx(0.04)}
    assert "c'/c" in str(uni)


def test_uniform_split_is_eq4_budget_over_layers():
    curves = {k: [(1.0, 0.90), (0.6, 0.895), (0.3, 0.891), (0.1, 0.85)] for k in "xyz"}
    alloc = pruning.uniform(curves, {"x": 10, "y": 20, "z": 30}, 0.03)     # 1 point each
    assert alloc.densities == {"x": 0.3, "y": 0.3, "z": 0.3} and alloc.gain == pytest.approx(0.3)
    # a measured gain (accuracy above the dense one) counts as no drop, not as credit
    noisy = {"x": [(1.0, 0.90), (0.5, 0.92)], "y": [(1.0, 0.90), (0.5, 0.85)]}
    assert pruning.optimal(noisy, {"x": 1, "y": 1}, 0.04).densities == {"x": 0.5, "y": 1.0}


def test_optimal_allocation_is_exact_against_brute_force():
    rng = np.random.default_rng(3)
    for trial in range(20):
        names = [f"L{i}" for i in range(4)]
        curves = {k: [(1.0, 0.9)] + [(round(d, 3), 0.9 - rng.uniform(0, 0.05))
                                     for d in sorted(rng.uniform(0.05, 0.95, 5))] for k in names}
        costs = {k: int(rng.integers(10, 1000)) for k in names}
        budget = float(rng.uniform(0.0, 0.08))
        best = math.inf
        for combo in itertools.product(*(curves[k] for k in names)):
            drop = sum(0.9 - a for _, a in combo)
            if drop <= budget + 1e-12:
                best = min(best, sum(d * costs[k] for (d, _), k in zip(combo, names)))
        alloc = pruning.optimal(curves, costs, budget)
        assert alloc.predicted_drop <= budget + 1e-12
        assert alloc.gain * sum(costs.values()) == pytest.approx(best)
        assert alloc.gain <= pruning.uniform(curves, costs, budget).gain + 1e-12


def test_allocation_refuses_bad_input_and_applies_to_a_model():
    with pytest.raises(ValueError, match="budget must be a finite accuracy drop >= 0"):
        pruning.optimal(CURVES, COSTS, -0.01)
    with pytest.raises(ValueError, match=r"no connection count \(cost\) for layers \['B'\]"):
        pruning.uniform(CURVES, {"A": 100}, 0.01)
    with pytest.raises(ValueError, match="no density-1.0 point"):
        pruning.uniform({"A": [(0.5, 0.9)]}, {"A": 1}, 0.01)
    model = nn.zoo.build("fcn2", rng=0)
    report = pruning.sparsity_report(model)
    costs = {r.layer: r.dense_macs for r in report.rows}
    curves = {"1": [(1.0, 0.93), (0.2, 0.92)], "3": [(1.0, 0.93), (0.4, 0.925)], "5": [(1.0, 0.93), (0.5, 0.9)]}
    alloc = pruning.optimal(curves, costs, 0.02)
    assert alloc.densities == {"1": 0.2, "3": 0.4, "5": 1.0}
    pruning.apply_allocation(model, alloc)
    assert pruning.density(model) == {"1": 0.2, "3": 0.4, "5": 1.0}
    assert pruning.sparsity_report(model).gain == pytest.approx(alloc.gain)


def test_a_dense_point_below_the_baseline_leaves_the_layer_dense_not_infeasible():
    # a retrained curve whose density-1.0 point lies 0.5 points under the dense model: with a
    # share of 0.2 points per layer, the layer can still stay dense (min() of nothing before)
    from pyann.pruning import allocate
    curves = {"a": [(1.0, 0.975), (0.5, 0.97), (0.1, 0.90)], "b": [(1.0, 0.98), (0.5, 0.979), (0.1, 0.95)]}
    both = allocate(curves, {"a": 100, "b": 100}, budget=0.004, baseline=0.98)
    assert both["uniform"].densities == {"a": 1.0, "b": 0.5}
    assert both["optimal"].densities["b"] == 0.5
