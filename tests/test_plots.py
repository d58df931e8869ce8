"""Each figure function returns a Figure with the expected axes and lines; save_figure writes PNG."""
import numpy as np
import pytest
from matplotlib.figure import Figure

from pyann import plots
from pyann.relu_prediction.recorder import firing_rate_summary


def _curves(layers=4, epochs=5, base=90.0):
    return {"epochs": list(range(2, epochs + 1)),
            "agreement_pct": [[base + k + 0.5 * i for i in range(epochs - 1)] for k in range(layers)]}


def test_plot_accuracy_marks_the_paper():
    fig = plots.plot_accuracy(range(1, 21), np.linspace(90, 98, 20), paper={4: 94.96, 8: 95.47, 20: 98.41})
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert len(ax.lines) == 2
    assert list(ax.lines[1].get_xdata()) == [4, 8, 20]
    assert "accuracy" in ax.get_ylabel() and "%" in ax.get_ylabel() and ax.get_xlabel() == "epoch"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["pyann", "paper (Table 1)"]
    assert len(plots.plot_accuracy([1, 2], [50, 60]).axes[0].lines) == 1   # no paper row


def test_plot_agreement_one_panel_per_dataset_one_line_per_layer():
    fig = plots.plot_agreement({"MNIST": _curves(), "Fashion-MNIST": _curves(base=80)},
                               notes={"MNIST": "higher in deeper layers"}, highlight=(3, 4))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    for ax, title in zip(fig.axes, ["MNIST", "Fashion-MNIST"]):
        assert ax.get_title().split("\n")[0] == title
        assert len(ax.lines) == 4
        assert list(ax.lines[0].get_xdata()) == [2, 3, 4, 5]
        assert "epoch" in ax.get_xlabel()
    assert "(%)" in fig.axes[0].get_ylabel()
    assert fig.axes[0].lines[2].get_linewidth() > fig.axes[0].lines[0].get_linewidth()
    assert fig.axes[0].get_title() == "MNIST\npaper: higher in deeper layers"   # under the title, off the curves
    with pytest.raises(ValueError):
        plots.plot_agreement({})


def test_plot_active_share_bars_with_paper_and_epoch_panel():
    by_epoch = {"epochs": [1, 2, 3], "active_pct": [[60, 55, 50], [40, 38, 35], [20, 18, 15], [12, 11, 10]]}
    fig = plots.plot_active_share([50.0, 35.0, 15.0, 10.0], [67.31, 44.73, 15.78, 10.21], by_epoch=by_epoch)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    bars, lines = fig.axes
    assert len(bars.patches) == 8                          # 4 ours + 4 paper
    assert bars.patches[4].get_height() == pytest.approx(67.31)
    assert "(%)" in bars.get_ylabel() and bars.get_xlabel() == "hidden layer"
    assert len(lines.lines) == 4
    fig1 = plots.plot_active_share([50.0, 35.0])
    assert len(fig1.axes) == 1 and len(fig1.axes[0].patches) == 2


def test_plot_firing_rates_one_panel_per_layer():
    rng = np.random.default_rng(0)
    summ = {s: [firing_rate_summary(rng.random(64) ** 3) for _ in range(3)] for s in ("train", "test")}
    fig = plots.plot_firing_rates(summ)
    assert isinstance(fig, Figure)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3                               # 2x2 grid, the fourth hidden
    for ax in visible:
        assert len(ax.patches) == 2                        # one histogram (stairs) per set
        assert "%" in ax.get_xlabel() and ax.get_ylabel().startswith("neurons")
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels[0].startswith("train:") and "dead" in labels[0]


def test_save_figure_writes_png_atomically(tmp_path):
    fig = plots.plot_accuracy([1, 2, 3], [80, 85, 90])
    path = plots.save_figure(fig, tmp_path / "sub" / "acc.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["acc.png"]


def test_accuracy_vs_macs_cuts_the_axis_under_wrecked_settings():
    good = [{"mac_share": 0.5, "accuracy": 0.98, "tau": 0.1}, {"mac_share": 0.3, "accuracy": 0.975, "tau": 0.2}]
    wrecked = good + [{"mac_share": 0.05, "accuracy": 0.11, "tau": 0.7}]
    paper = {"name": "paper", "mac_share": 0.62, "accuracy": 0.974}
    (ax,) = plots.plot_accuracy_vs_macs({"history": good}, paper=paper).axes
    assert "cut" not in ax.get_ylabel()
    (ax,) = plots.plot_accuracy_vs_macs({"history": wrecked}, paper=paper).axes
    low, high = ax.get_ylim()
    assert low == pytest.approx(97.4 - 8) and 98 < high <= 100.2 and "cut at 89" in ax.get_ylabel()


def test_training_curve_against_wall_clock_with_stages_shaded():
    history = [{"epoch": e + 1, "train_acc": 0.3 + 0.1 * e, "val_acc": 0.25 + 0.1 * e, "seconds": 60.0,
                "eval_seconds": 30.0, "image_size": size} for e, size in enumerate([16, 16, 24, 32])]
    fig = plots.plot_training_curve(history, target_pct=85, title="t")
    ax = fig.axes[0]
    train, test = ax.lines[0], ax.lines[1]
    assert list(test.get_xdata()) == [1.5, 3.0, 4.5, 6.0]             # minutes, evaluation included
    assert list(test.get_ydata()) == pytest.approx([25, 35, 45, 55])
    assert list(train.get_ydata()) == pytest.approx([30, 40, 50, 60])
    assert [t.get_text() for t in ax.texts] == ["16 px", "24 px", "32 px"]   # one label per stage
    assert ax.lines[2].get_ydata()[0] == 85                             # the target line
    fig = plots.plot_training_curve(history, 85, "t", "test (first 2000 images)", {"final": 54.5, "flip": 55.5})
    finals = fig.axes[0].lines[2:4]
    (x1,), (x2,) = finals[0].get_xdata(), finals[1].get_xdata()
    assert 6.0 < x1 < x2 and [f.get_ydata()[0] for f in finals] == [54.5, 55.5]   # after the last epoch, apart
    assert plots.legends(fig)[0].get_texts()[1].get_text() == "test (first 2000 images)"


def _speedup_panels():
    dens = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6]
    def series(label, k, be):
        return {"label": label, "densities": dens, "speedups": [k / d for d in dens], "break_even": be}
    return [{"title": "784x300 layer, batched",
             "series": [series("pyann sparse, unstructured", 0.25, 0.25), series("scipy.sparse CSR, unstructured", 0.05, 0.05),
                        series("pyann 4x1 blocked, 4x1-pruned weights", 0.7, None)],
             "references": {"pyann dense": 0.9}},
            {"title": "784x300 layer, one image at a time",
             "series": [series("pyann sparse, unstructured", 0.1, 0.1)], "references": {"pyann dense": 1.3}},
            {"title": "512x512 layer, batched", "series": [series("pyann sparse, unstructured", 0.3, 0.3)],
             "references": {"pyann dense": 1.0}}]


def test_plot_sparse_speedup_panels_break_even_and_legend(tmp_path):
    fig = plots.plot_sparse_speedup(_speedup_panels(), title="t")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3 and len(fig.axes) == 4             # 2x2 grid, the spare panel hidden
    ax = visible[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log" and "density" in ax.get_xlabel()
    assert ax.get_title() == "784x300 layer, batched"
    # the measured densities are the x ticks, written plainly
    assert [t for t in ax.get_xticks()] == pytest.approx([1, 2, 5, 10, 20, 30, 40, 60])
    # each series with a break-even has a diamond on the speedup-1 line at its density (in %)
    diamonds = [line for line in ax.lines if line.get_marker() == "D"]
    assert sorted(line.get_xdata()[0] for line in diamonds) == pytest.approx([5, 25])
    assert all(line.get_ydata()[0] == 1.0 for line in diamonds)
    # the panel's key gives each series' break-even: the density, or why there is none
    keys = [a for a in ax.artists if hasattr(a, "get_texts")] or [ax.get_legend()]
    texts = [t.get_text() for k in keys for t in k.get_texts()]
    assert texts == ["25 %", "5 %", "outside the range"]
    # a series keeps its colour across panels
    colour = lambda a, name: next(l.get_color() for l in a.lines if l.get_label() == name)
    assert colour(visible[0], "pyann sparse, unstructured") == colour(visible[2], "pyann sparse, unstructured")
    # one legend for the figure, naming every series once, under the panels (covering none)
    (legend,) = fig.legends
    names = [t.get_text() for t in legend.get_texts()]
    assert len(names) == len(set(names)) and "scipy.sparse CSR, unstructured" in names
    assert any(n.startswith("break-even") for n in names)
    renderer = plots._renderer(fig)
    box = legend.get_window_extent(renderer)
    assert not any(box.overlaps(a.get_window_extent(renderer)) for a in visible)
    assert plots.save_figure(fig, tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError):
        plots.plot_sparse_speedup([])
