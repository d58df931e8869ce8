"""Figures a reader does not stumble over, tested on their geometry after layout (not pixels):
legends never cover a plotting area, point labels never overlap one another or sit on another
point, stage labels and final markers keep off the curves, the same series has the same name in
the bench's and the study's figure, and the cnn3 training curve describes cnn3."""
import numpy as np
import pytest

from pyann import plots
from pyann.relu_prediction.recorder import firing_rate_summary


def _agreement(base):
    e = list(range(2, 21))
    return {"epochs": e, "agreement_pct": [[min(99.9, base + k + 8 * (1 - np.exp(-i / 4))) for i in range(len(e))]
                                           for k in range(4)]}


def _sweep_curves():
    """Shaped like the real MNIST sweeps: a masked history curve that drops steeply at high tau,
    a combined one, a low-rank one whose margins cluster at nearly the same cost."""
    taus = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
    masked = [{"tau": t, "mac_share": 1 - 0.5 * t, "accuracy": 0.985 - (0.3 * t ** 3 if t < 0.5 else 0.2 * t)} for t in taus]
    combined = [{"tau": t, "mac_share": 0.4 - 0.3 * t, "accuracy": 0.985 - 0.1 * t ** 2} for t in taus]
    low = [{"margin": m, "mac_share": 0.35 + 0.002 * m, "accuracy": 0.985 - 0.0005 * (4 - m)}
           for m in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)]
    return ({"history mask, masked kernel (tau sweep), layers 3-4": masked,
             "history mask + zero skipping (tau sweep), layers 3-4": combined,
             "low-rank r=32 sign + zero skipping (margin sweep), layers 3-4": low},
            {"dense": {"mac_share": 1.0, "accuracy": 0.985}, "zero skipping (exact)": {"mac_share": 0.42, "accuracy": 0.985}})


def _training_history(sizes=(16, 16, 24, 24, 32, 32)):
    return [{"epoch": i + 1, "train_acc": 0.3 + 0.1 * i, "val_acc": 0.28 + 0.1 * i, "seconds": 60.0,
             "eval_seconds": 10.0, "image_size": s, "loss": 1.0, "lr": 0.01} for i, s in enumerate(sizes)]


def every_figure():
    rng = np.random.default_rng(0)
    curves, points = _sweep_curves()
    paper = {"name": "paper (history, layers 3-4)", "mac_share": 0.618, "accuracy": 0.974}
    by_epoch = {"epochs": list(range(1, 21)), "active_pct": [[60 - 10 * k - 0.3 * i for i in range(20)] for k in range(4)]}
    rates = {f"{s} (10000)": [firing_rate_summary(rng.random(512) ** (1 + k)) for k in range(4)] for s in ("train", "test")}
    return {   # name -> a function drawing it (each test draws only what it looks at)
        "accuracy": lambda: plots.plot_accuracy(range(1, 21), np.linspace(95, 98.5, 20),
                                                paper={4: 94.96, 8: 95.47, 12: 96.85, 16: 97.12, 20: 98.41}),
        "figure2": lambda: plots.plot_agreement({"MNIST": _agreement(90), "Fashion-MNIST": _agreement(88)},
                                                notes={"MNIST": "rises with training; higher in deeper layers"},
                                                highlight=(3, 4)),
        "active_share": lambda: plots.plot_active_share([41, 60, 71, 68], [67.31, 44.73, 15.78, 10.21],
                                                        by_epoch=by_epoch),
        "firing_rates": lambda: plots.plot_firing_rates(rates),
        "accuracy_vs_macs": lambda: plots.plot_accuracy_vs_macs(curves, points=points, paper=paper),
        "training_curve": lambda: plots.plot_training_curve(_training_history(), 85, "t",
                                                            finals={"final": 78.0, "flip": 79.0}),
    }


def _layout(fig):
    return plots._renderer(fig)


@pytest.mark.parametrize("name", list(every_figure()))
def test_legends_never_cover_a_plotting_area(name):
    fig = every_figure()[name]()
    renderer = _layout(fig)
    found = plots.legends(fig)
    assert found, "every figure has a legend"
    for legend in found:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            if ax.get_visible():
                assert not box.overlaps(ax.get_window_extent(renderer)), f"{name}: legend over an axes"
        fig_box = fig.bbox
        assert fig_box.x0 <= box.x0 and box.x1 <= fig_box.x1 + 1 and fig_box.y0 <= box.y0 + 1, "legend cut off"


def _data_points(ax):
    pts = [line.get_xydata() for line in ax.lines if len(line.get_xdata())]
    pts += [c.get_offsets() for c in ax.collections if len(c.get_offsets())]
    return ax.transData.transform(np.concatenate(pts))


def test_point_labels_never_overlap_nor_cover_other_points():
    fig = every_figure()["accuracy_vs_macs"]()
    renderer = _layout(fig)
    (ax,) = fig.axes
    anns = [t for t in ax.texts if t.get_text()]
    assert len(anns) >= 6                                   # the sweeps are still labelled
    boxes = [a.get_window_extent(renderer) for a in anns]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), f"labels {anns[i].get_text()!r} and {anns[j].get_text()!r} overlap"
    pts = _data_points(ax)
    frame = ax.get_window_extent(renderer)
    for a, box in zip(anns, boxes):
        own = ax.transData.transform([a.xy])[0]
        assert frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
        covered = [p for p in pts if box.contains(*p) and np.hypot(*(p - own)) > 0.5]
        assert not covered, f"label {a.get_text()!r} sits on another point"
    texts = {a.get_text() for a in anns}
    assert not any("." in t and t.count(".") > 1 for t in texts)   # e.g. '0.0.10' was two labels on one another
    assert {"0.7", "4"} & texts                                   # the curves' far ends keep their labels


def test_labels_survive_the_png_resolution(tmp_path):
    fig = every_figure()["accuracy_vs_macs"]()
    plots.save_figure(fig, tmp_path / "a.png")                   # 120 dpi: the same layout, scaled
    renderer = plots._renderer(fig)
    boxes = [t.get_window_extent(renderer) for t in fig.axes[0].texts]
    assert all(not a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_training_curve_stage_labels_and_finals_keep_off_the_data():
    fig = every_figure()["training_curve"]()
    renderer = _layout(fig)
    ax = fig.axes[0]
    curve_pts = ax.transData.transform(np.concatenate([ax.lines[0].get_xydata(), ax.lines[1].get_xydata()]))
    for text in ax.texts:                                        # "16 px", "24 px", "32 px"
        box = text.get_window_extent(renderer).padded(3)
        assert not any(box.contains(*p) for p in curve_pts), f"stage label {text.get_text()!r} on a point"
    finals = [line for line in ax.lines if line.get_label().startswith(("final", "flip"))]
    assert len(finals) == 2
    spots = ax.transData.transform([f.get_xydata()[0] for f in finals])
    assert np.hypot(*(spots[0] - spots[1])) > 8                 # two markers, not one on the other
    assert all(np.hypot(*(s - p)) > 8 for s in spots for p in curve_pts)


def test_bench_and_study_name_the_same_series_alike():
    from pyann.relu_prediction import sweep as sw
    from pyann.relu_prediction.predictors import HistoryPredictor, LowRankPredictor
    hist, low = HistoryPredictor(0.5, (3, 4)), LowRankPredictor(32, 1.0, (3, 4))
    # the study draws history + zero skipping and low-rank + zero skipping; the bench those and
    # the masked-kernel history curve; both through sweep.series_name
    assert sw.series_name(hist, "combined") == "history mask + zero skipping (tau sweep), layers 3-4"
    assert sw.series_name(low, "combined") == "low-rank r=32 sign + zero skipping (margin sweep), layers 3-4"
    assert sw.series_name(hist, "masked") == "history mask, masked kernel (tau sweep), layers 3-4"
    assert sw.named_points({"dense": {}, "zeroskip": {}}) == {"dense": {}, "zero skipping (exact)": {}}


def test_study_and_bench_sweeps_give_identical_names(tmp_path, monkeypatch):
    """End to end: the study's sweep_hook and the bench's _sweeps on the same (untrained) model,
    the sweeps themselves replaced by one point each (only the names are under test)."""
    import argparse
    import bench.relu
    from pyann import nn
    from pyann.relu_prediction import study
    from pyann.relu_prediction import sweep as sw
    from pyann.relu_prediction.predictors import HistoryPredictor, LowRankPredictor
    from pyann.data import Dataset, to_float
    point = {"mac_share": 0.5, "accuracy": 0.5, "precision_inactive": 1.0, "recall_inactive": 1.0}
    monkeypatch.setattr(sw, "sweep_history", lambda *a, **k: [dict(point, tau=0.5)])
    monkeypatch.setattr(sw, "sweep_lowrank", lambda *a, **k: [dict(point, margin=1.0)])
    monkeypatch.setattr(sw, "reference_points", lambda *a, **k: {"dense": dict(point), "zeroskip": dict(point)})
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 300)
    x = (rng.random((300, 1, 28, 28)) < 0.1).astype(np.uint8) * 200
    x[np.arange(300), 0, 2 * y, :] = 255
    ds = Dataset(x[:200], y[:200], x[200:], y[200:], name="custom", source_path=None,
                 classes=tuple(map(str, range(10))), official=False)
    model = nn.build("mlp5", rng=0)
    got = study.sweep_hook(model, ds, tmp_path, 0)
    xt, xte = to_float(ds.x_train).reshape(200, -1), to_float(ds.x_test).reshape(100, -1)
    hp, lp = HistoryPredictor().fit(model, xt), LowRankPredictor(seed=0).fit(model, xt)
    args = argparse.Namespace(rank=lp.rank)
    bench_sweeps = bench.relu._sweeps(model, hp, lp, np.ascontiguousarray(xte), ds.y_test, args)
    assert got["status"] == "ok"
    assert set(got["curves"]) <= set(bench_sweeps["curves"])
    assert set(got["points"]) == set(bench_sweeps["points"])


def test_cnn3_training_curve_describes_cnn3(tmp_path):
    from pyann.cnn_recipes import curve_labels, write_report
    history = [{"epoch": e, "train_acc": 0.9 + 0.01 * e, "val_acc": 0.95 + 0.01 * e, "loss": 0.1, "lr": 0.01,
                "seconds": 30.0, "eval_seconds": 3.0} for e in (1, 2, 3)]
    result = {"recipe": "cnn3_mnist", "config": {"epochs": 3, "official_data": True}, "history": history,
              "target": 0.99, "test": {"accuracy": history[-1]["val_acc"], "loss": 0.1}}
    labels = curve_labels(result)
    assert labels["title"].startswith("cnn3 on MNIST")
    text = " ".join(labels.values()).lower()
    for wrong in ("wrn", "augmented", "image size", "cifar"):
        assert wrong not in text
    write_report(tmp_path, result)
    assert (tmp_path / "training-curve.png").stat().st_size > 5000
    fig = plots.plot_training_curve(history, 99, **labels)
    legend_texts = [t.get_text() for t in plots.legends(fig)[0].get_texts()]
    assert all("augmented" not in t and "image size" not in t for t in legend_texts)
    wrn = curve_labels({"recipe": "wrn16_2_cifar10", "config": {"depth": 16, "width": 2, "official_data": False,
                                                                "curve_images": 2000, "progressive": [[16, 3]]}})
    assert wrn["title"].startswith("WRN-16-2 on CIFAR-10 (JPEG-derived copy)") and "augmented" in wrn["train_label"]


def test_the_papers_point_stays_in_view_when_the_axis_is_cut():
    weak = [{"tau": t, "mac_share": 0.4 - 0.3 * t, "accuracy": 0.93 - 0.5 * t ** 2} for t in (0.0, 0.2, 0.5, 0.7)]
    paper = {"name": "paper", "mac_share": 0.618, "accuracy": 0.974}
    (ax,) = plots.plot_accuracy_vs_macs({"history": weak}, paper=paper).axes
    low, high = ax.get_ylim()
    assert "cut" in ax.get_ylabel() and low < 97.4 < high
