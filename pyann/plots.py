"""Figures: one function per figure, each returning a matplotlib Figure.

The figures are built as `matplotlib.figure.Figure` objects and rendered with the Agg (PNG)
renderer, without pyplot: nothing here changes the global backend or keeps figures alive in a
global registry, so the functions are safe in scripts, tests and notebooks alike. Inputs are plain
lists and dicts (the sections of a study's results.json), so every figure can be redrawn from the
JSON alone. `save_figure` writes a PNG atomically.

ReLU-prediction study (paper 1):
    plot_accuracy        test accuracy per epoch, the paper's Table 1 marked
    plot_agreement       Figure 2: P(state at epoch e == state at epoch e-1) per layer, per dataset
    plot_active_share    Table 3: share of active neurons per layer, paper's bars beside ours
    plot_firing_rates    per-layer histograms of per-neuron firing rates (dead / rare / always on)

Connection-pruning study (paper 2, pyann.pruning.study):
    plot_weight_patterns     Figure 2: fcn1's ten weight patterns as 28x28 images, cross-sections
    plot_weight_histogram    Figure 3: weight histogram, all layers and per layer
    plot_pruning_sweep       Figure 4: accuracy vs share removed, without and with retraining
    plot_error_model         eq. 1-3 fitted on two points against the measured points
    plot_sensitivity         Figure 5: per-layer sensitivity before / after retraining
    plot_allocation_accuracy Figure 6: keep ratio vs accuracy after retraining, uniform / optimal

Training runs (CNN recipes):
    plot_training_curve  train and test accuracy against wall-clock minutes, progressive-resizing
                         stages shaded, a target line
"""
from __future__ import annotations

import io
from itertools import groupby
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from .io import atomic_write

PAPER_STYLE = dict(color="black", marker="x", linestyle="none", markersize=8, markeredgewidth=2)


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, path, dpi: int = 120) -> Path:
    """Render `fig` as PNG into `path` atomically (temporary file, then rename)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = buf.getvalue()
    return atomic_write(Path(path), lambda f: f.write(data))


def _legend_beside(ax, **kw):
    """The axes' legend to the right of its plotting area, where it cannot cover data (the
    constrained layout makes room for it)."""
    kw.setdefault("fontsize", 8)
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kw)


def _legend_below(fig: Figure, ax, ncols: int = 2, **kw):
    """One legend for a one-panel figure, under the axes and their labels, outside the plotting
    area (constrained layout's "outside" placement)."""
    kw.setdefault("fontsize", 8)
    handles, labels = ax.get_legend_handles_labels()
    return fig.legend(handles, labels, loc="outside lower center", ncols=min(ncols, max(1, len(labels))), **kw)


def legends(fig: Figure) -> list:
    """Every legend of a figure (its own and its axes')."""
    return list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]


def _renderer(fig: Figure):
    """Lay the figure out (constrained layout runs at draw time) and return its Agg renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


# label offsets tried in turn (points): above right, below right, above left, below left, higher up
_LABEL_OFFSETS = ((4, 3, "left", "bottom"), (4, -3, "left", "top"), (-4, 3, "right", "bottom"),
                  (-4, -3, "right", "top"), (0, 9, "center", "bottom"), (0, -9, "center", "top"))


def place_point_labels(fig: Figure, ax, labels, fontsize: float = 7, pad_px: float = 2.0) -> list:
    """Write labels beside data points so that no two overlap and none covers a data point
    other than its own: labels = [(text, x, y)] in priority order; each tries the offsets in
    _LABEL_OFFSETS and is left out when none is free (or its box leaves the axes). Returns the
    Annotation artists kept. The figure is laid out first: positions are final."""
    renderer = _renderer(fig)
    pts = np.concatenate([line.get_xydata() for line in ax.lines if len(line.get_xdata())] +
                         [c.get_offsets() for c in ax.collections if len(c.get_offsets())] or [np.zeros((0, 2))])
    disp = ax.transData.transform(pts) if len(pts) else np.zeros((0, 2))
    frame = ax.get_window_extent(renderer)
    kept, boxes = [], []
    for text, x, y in labels:
        own = ax.transData.transform([(x, y)])[0]
        for dx, dy, ha, va in _LABEL_OFFSETS:
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                              ha=ha, va=va, annotation_clip=True)
            ann.set_in_layout(False)
            box = ann.get_window_extent(renderer).padded(pad_px)
            inside = (frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1)
            others = [d for d in disp if np.hypot(*(d - own)) > 0.5]
            covers = any(box.contains(*d) for d in others)
            if inside and not covers and not any(box.overlaps(b) for b in boxes):
                kept.append(ann)
                boxes.append(box)
                break
            ann.remove()
    return kept


def _layer_colors(n: int):
    from matplotlib import colormaps
    cmap = colormaps["viridis"]
    return [cmap(0.1 + 0.8 * i / max(n - 1, 1)) for i in range(n)]


def plot_accuracy(epochs: Sequence[int], accuracy_pct: Sequence[float],
                  paper: Optional[Mapping[int, float]] = None, title: str = "Test accuracy while training",
                  label: str = "pyann") -> Figure:
    """Test accuracy (%) per epoch as a line; the paper's Table 1 values (epoch -> %) as crosses."""
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    ax.plot(list(epochs), list(accuracy_pct), marker="o", markersize=3, label=label)
    if paper:
        ax.plot(list(paper), list(paper.values()), label="paper (Table 1)", **PAPER_STYLE)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.set_xticks(_epoch_ticks(epochs))
    ax.grid(True, alpha=0.3)
    _legend_beside(ax)
    return fig


def _epoch_ticks(epochs: Sequence[int]) -> list:
    epochs = list(epochs)
    if not epochs:
        return []
    step = 1 if len(epochs) <= 10 else 2 if len(epochs) <= 24 else 5
    lo, hi = min(epochs), max(epochs)
    return [e for e in range(lo, hi + 1) if (e - lo) % step == 0]


def plot_agreement(curves: Mapping[str, Mapping], notes: Optional[Mapping[str, str]] = None,
                   highlight: Sequence[int] = (), title: str = "Figure 2: activation-state predictability") -> Figure:
    """Figure 2, one panel per dataset.

    curves: {dataset label: {"epochs": [e, ...], "agreement_pct": [[% per epoch] per hidden layer]}}
    where the % is the probability that a neuron's state (ReLU output > 0) at epoch e equals its
    state at epoch e-1, averaged over probe samples and neurons. notes: {label: text} printed in
    the panel (the paper gives Figure 2's shape in words, not numbers). highlight: 1-based layers
    drawn thicker (the layers the paper predicts).
    """
    labels = list(curves)
    if not labels:
        raise ValueError("plot_agreement needs at least one dataset")
    fig = _figure(5.6 * len(labels), 4.4)
    axes = fig.subplots(1, len(labels), sharey=True, squeeze=False)[0]
    lows = []
    for ax, label in zip(axes, labels):
        c = curves[label]
        layers = c["agreement_pct"]
        colors = _layer_colors(len(layers))
        for k, (ys, color) in enumerate(zip(layers, colors), start=1):
            thick = k in highlight
            ax.plot(c["epochs"], ys, marker="o", markersize=3, color=color, linewidth=2.4 if thick else 1.4,
                    label=f"hidden layer {k}" + (" (predicted in paper)" if thick else ""))
            lows.append(min(ys) if len(ys) else 100.0)
        # the paper's words go under the panel's title, not over the curves (which end near 100 %)
        ax.set_title(label + (f"\npaper: {notes[label]}" if notes and notes.get(label) else ""), fontsize=10)
        ax.set_xlabel("epoch e (compared with epoch e-1)")
        ax.set_xticks(_epoch_ticks(c["epochs"]))
        ax.grid(True, alpha=0.3)
    _legend_beside(axes[-1])   # the layers are the same in every panel: one legend, beside the last
    axes[0].set_ylabel("P(state at epoch e = state at epoch e−1) (%)")
    low = min(lows) if lows else 0.0
    axes[0].set_ylim(max(0.0, np.floor(low - 2.0)), 100.0)
    fig.suptitle(title)
    return fig


def plot_active_share(active_pct: Sequence[float], paper_pct: Optional[Sequence[float]] = None,
                      by_epoch: Optional[Mapping] = None, set_label: str = "test set",
                      title: str = "Table 3: share of active neurons per hidden layer") -> Figure:
    """Active share per hidden layer as bars (ours, and the paper's beside them when given).

    active_pct: % of (sample, neuron) states that are active, per hidden layer, final model.
    by_epoch: optional {"epochs": [...], "active_pct": [[% per epoch] per layer]} drawn in a
    second panel (the share on the probe set while training)."""
    fig = _figure(10.5 if by_epoch else 6.0, 4.2)
    axes = fig.subplots(1, 2 if by_epoch else 1, squeeze=False)[0]
    ax = axes[0]
    n = len(active_pct)
    x = np.arange(1, n + 1)
    width = 0.38 if paper_pct is not None else 0.6
    off = width / 2 if paper_pct is not None else 0.0
    bars = ax.bar(x - off, active_pct, width, label=f"pyann ({set_label})", color="tab:blue")
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    if paper_pct is not None:
        pbars = ax.bar(x + off, paper_pct, width, label="paper (Table 3)", color="lightgray",
                       edgecolor="black", hatch="//")
        ax.bar_label(pbars, fmt="%.1f", fontsize=8)
    ax.set_xticks(x, [f"{k}" for k in x])
    ax.set_xlabel("hidden layer")
    ax.set_ylabel("active neurons (%)")
    top = max(list(active_pct) + list(paper_pct or [])) if n else 100.0
    ax.set_ylim(0, min(100.0, top * 1.18 + 2))
    ax.set_title("final model")
    _legend_beside(ax) if not by_epoch else ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16),
                                                      fontsize=8, ncols=2, borderaxespad=0.0)
    ax.grid(True, axis="y", alpha=0.3)
    if by_epoch:
        ax2 = axes[1]
        for k, (ys, color) in enumerate(zip(by_epoch["active_pct"], _layer_colors(len(by_epoch["active_pct"]))), 1):
            ax2.plot(by_epoch["epochs"], ys, marker="o", markersize=3, color=color, label=f"hidden layer {k}")
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("active neurons on probe set (%)")
        ax2.set_xticks(_epoch_ticks(by_epoch["epochs"]))
        ax2.set_title("while training (probe set)")
        ax2.grid(True, alpha=0.3)
        _legend_beside(ax2)
    fig.suptitle(title)
    return fig


def plot_firing_rates(summaries: Mapping[str, Sequence[Mapping]],
                      title: str = "Per-neuron firing rates") -> Figure:
    """One panel per hidden layer: histogram of the share of inputs that activate each neuron.

    summaries: {set label (e.g. "train", "test"): [summary per hidden layer]}, each summary a
    dict from `pyann.relu_prediction.recorder.firing_rate_summary` (hist_counts, hist_edges,
    dead, rare, always, rare_below, always_above, neurons). The legend gives each set's counts
    of dead (never on), rarely on and always on neurons."""
    sets = list(summaries)
    if not sets:
        raise ValueError("plot_firing_rates needs at least one set of summaries")
    n_layers = len(summaries[sets[0]])
    cols = 2 if n_layers > 1 else 1
    rows = (n_layers + cols - 1) // cols
    fig = _figure(5.2 * cols, 4.0 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for k in range(n_layers):
        ax = axes[k]
        for s, color in zip(sets, colors):
            summ = summaries[s][k]
            edges = 100.0 * np.asarray(summ["hist_edges"])
            ax.stairs(summ["hist_counts"], edges, color=color, linewidth=1.6,
                      label=f"{s}: {summ['dead']} dead, {summ['rare']} rare, {summ['always']} always on")
        summ0 = summaries[sets[0]][k]
        ax.axvline(100 * summ0["rare_below"], color="gray", linestyle=":", linewidth=1)
        ax.axvline(100 * summ0["always_above"], color="gray", linestyle=":", linewidth=1)
        ax.set_title(f"hidden layer {k + 1} ({summ0['neurons']} neurons)")
        ax.set_xlabel("firing rate: inputs that activate the neuron (%)")
        ax.set_ylabel("neurons (symlog scale)")
        ax.set_yscale("symlog", linthresh=1, linscale=0.4)
        ax.set_ylim(0, summ0["neurons"] * 1.8)
        ax.set_xlim(0, 100)
        ax.grid(True, alpha=0.3)
        # under the panel: the counts differ per layer, and inside they would sit on the bars
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), borderaxespad=0.0)
    for ax in axes[n_layers:]:
        ax.set_visible(False)
    fig.suptitle(f"{title} (dotted lines: rarely-on < {100 * summ0['rare_below']:g} %, "
                 f"always-on > {100 * summ0['always_above']:g} %)")
    return fig


def plot_accuracy_vs_macs(curves: Mapping[str, Sequence[Mapping]], points: Optional[Mapping[str, Mapping]] = None,
                          paper: Optional[Mapping] = None,
                          title: str = "mlp5: accuracy vs executed multiply-adds") -> Figure:
    """Test accuracy (%) against the share of dense multiply-adds executed (%): one curve per
    predictor sweep (points with "mac_share", "accuracy" and their knob "tau" or "margin"),
    single reference points (dense, zero skipping) and the paper's point as a star.

    Knob values are written beside a point only where the curve has moved visibly since the
    last labelled point, so a cluster of settings with the same cost does not print on itself."""
    fig = _figure(8.0, 5.6)
    ax = fig.add_subplot()
    markers = "osd^v<>"
    labels = []   # (text, x, y): knob values, placed once the axes are final
    for i, (name, pts) in enumerate(curves.items()):
        xs = [100 * p["mac_share"] for p in pts]
        ys = [100 * p["accuracy"] for p in pts]
        ax.plot(xs, ys, marker=markers[i % len(markers)], markersize=4, label=name)
        # the ends of each curve first, then the rest: where labels would collide, the ends stay
        order = sorted(range(len(pts)), key=lambda j: (j not in (0, len(pts) - 1), j))
        labels += [(f"{pts[j].get('tau', pts[j].get('margin')):g}", xs[j], ys[j]) for j in order
                   if pts[j].get("tau", pts[j].get("margin")) is not None]
    for name, p in (points or {}).items():
        ax.scatter([100 * p["mac_share"]], [100 * p["accuracy"]], marker="x", s=50, label=name, zorder=3)
    if paper:
        ax.scatter([100 * paper["mac_share"]], [100 * paper["accuracy"]], marker="*", s=160, color="k",
                   label=paper["name"], zorder=4)
    ax.set_xlabel("multiply-adds executed (% of dense)")
    # settings that wreck the model (tens of points down) would squash every useful point into a
    # line at the top: the axis stops 8 points under the paper's (or the best) accuracy
    best = max([100 * p["accuracy"] for pts in curves.values() for p in pts]
               + [100 * p["accuracy"] for p in (points or {}).values()] + [0.0])
    floor = (100 * paper["accuracy"] if paper else best) - 8
    lowest = min([100 * p["accuracy"] for pts in curves.values() for p in pts] or [floor])
    if lowest < floor:
        top = max(best, 100 * paper["accuracy"] if paper else 0.0)   # the paper's star stays in view
        ax.set_ylim(floor, min(100.2, top + 1.0))
        ax.set_ylabel(f"test accuracy (%); axis cut at {floor:.0f} %")
    else:
        ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _legend_below(fig, ax, ncols=2, fontsize=7)
    # labels interleaved across curves, so no curve loses all of its labels to another
    place_point_labels(fig, ax, _interleave_labels(curves, labels))
    return fig


def _interleave_labels(curves, labels):
    """labels (curve after curve) reordered round-robin across the curves."""
    groups, k = [], 0
    for pts in curves.values():
        n = sum(1 for p in pts if p.get("tau", p.get("margin")) is not None)
        groups.append(labels[k:k + n])
        k += n
    out = []
    for rank in range(max((len(g) for g in groups), default=0)):
        out += [g[rank] for g in groups if rank < len(g)]
    return out


def plot_training_curve(history: Sequence[Mapping], target_pct: Optional[float] = None,
                        title: str = "Training curve", test_label: str = "test (at the epoch's image size)",
                        finals: Optional[Mapping[str, float]] = None,
                        train_label: str = "train (running mean over the epoch's batches)") -> Figure:
    """Train and test accuracy (%) at the end of each epoch against wall-clock minutes (training
    steps plus evaluation, from History records). Epochs trained at a reduced image size
    ("image_size" in the record) are shaded and labelled with it: their test accuracy is
    measured at that size. finals: {label: accuracy %} of final tests, drawn as markers after
    the last epoch."""
    fig = _figure(7.0, 5.0)
    ax = fig.add_subplot()
    ends = np.cumsum([e["seconds"] + e.get("eval_seconds", 0.0) for e in history]) / 60
    starts = np.concatenate([[0.0], ends[:-1]])
    epoch = 0
    for shade, (size, stage) in enumerate(groupby(e.get("image_size") for e in history)):
        first, epoch = epoch, epoch + len(list(stage))    # a stage: consecutive epochs of one size
        if size is not None:
            ax.axvspan(starts[first], ends[epoch - 1], color="tab:blue", alpha=0.06 * (shade + 1), lw=0)
            ax.text((starts[first] + ends[epoch - 1]) / 2, 0.02, f"{size} px", ha="center", va="bottom",
                    transform=ax.get_xaxis_transform(), fontsize=8, color="tab:blue")
    ax.plot(ends, [100 * e["train_acc"] for e in history], marker="o", markersize=3, linestyle="--",
            label=train_label)
    if any("val_acc" in e for e in history):
        ax.plot(ends, [100 * e["val_acc"] for e in history], marker="o", markersize=4,
                label=test_label)
    # the final tests just after the last epoch, one column each: never on the curve's last point
    # nor on one another
    step = 0.035 * max(ends[-1], 1e-9)
    for i, ((label, pct), marker) in enumerate(zip((finals or {}).items(), "sD^v"), start=1):
        ax.plot([ends[-1] + i * step], [pct], marker=marker, markersize=7, linestyle="none",
                label=f"{label}: {pct:.2f} %")
    ax.set_xlim(left=0.0, right=ends[-1] + (len(finals or {}) + 1) * step)
    if target_pct is not None:
        ax.axhline(target_pct, color="black", linestyle=":", label=f"target {target_pct:g} %")
    ax.set_xlabel("wall-clock minutes (training steps + evaluation)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if any(e.get("image_size") is not None for e in history):
        # a free band at the bottom for the stage labels: they never sit on a point
        values = [100 * e["train_acc"] for e in history] + [100 * e["val_acc"] for e in history if "val_acc" in e]
        values += list((finals or {}).values()) + ([target_pct] if target_pct is not None else [])
        lo, hi = min(values), max(values)
        span = max(hi - lo, 1.0)
        ax.set_ylim(lo - 0.16 * span, hi + 0.06 * span)
    _legend_below(fig, ax, ncols=2)
    return fig


# ---- connection-pruning study (paper 2; pyann.pruning.study) -------------------------------------

def plot_weight_patterns(patterns, rows: Sequence[int] = (7, 14, 21), digit: int = 0,
                         title: str = "fcn1: the ten weight patterns (Figure 2)") -> Figure:
    """Figure 2: FCN-1's ten weight patterns (10 x 28 x 28) as images on one symmetric colour
    scale (red positive, blue negative), and the cross-sections of `digit`'s pattern along the
    given image rows (marked on its image)."""
    p = np.asarray(patterns, dtype=float)
    fig = _figure(10.0, 6.6)
    grid = fig.add_gridspec(3, 5, height_ratios=[1, 1, 1.1])
    lim = float(np.abs(p).max()) or 1.0
    image = None
    for d in range(10):
        ax = fig.add_subplot(grid[d // 5, d % 5])
        image = ax.imshow(p[d], cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"digit {d}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if d == digit:
            for r, color in zip(rows, ("tab:green", "tab:orange", "tab:purple")):
                ax.axhline(r, color=color, linewidth=1.2)
    fig.colorbar(image, ax=fig.axes, location="right", shrink=0.6, label="weight")
    ax = fig.add_subplot(grid[2, :])
    for r, color in zip(rows, ("tab:green", "tab:orange", "tab:purple")):
        ax.plot(range(28), p[digit, r], marker="o", markersize=3, color=color, label=f"row {r}")
    ax.axhline(0, color="gray", linewidth=0.8)
    ax.set_xlabel("pixel column")
    ax.set_ylabel("weight")
    ax.set_title(f"cross-sections of digit {digit}'s pattern (rows marked on its image)", fontsize=9)
    ax.grid(alpha=0.3)
    _legend_beside(ax)
    fig.suptitle(title)
    return fig


def plot_weight_histogram(edges: Sequence[float], layers: Mapping[str, Sequence[int]],
                          title: str = "fcn2: weight histogram (Figure 3)") -> Figure:
    """Figure 3: the histogram of all prunable weights together, and of each layer on its own
    (counts per bin on shared edges; each panel's own count scale)."""
    edges = np.asarray(edges, dtype=float)
    centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    panels = [("all layers", np.sum([np.asarray(c) for c in layers.values()], axis=0))]
    panels += [(f"layer {name}", np.asarray(c)) for name, c in layers.items()]
    fig = _figure(3.2 * len(panels), 3.4)
    for i, (label, counts) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.bar(centers, counts, width=width, color="tab:blue" if i == 0 else _layer_colors(len(panels) - 1)[i - 1])
        ax.set_title(f"{label} ({int(counts.sum()):,} weights)", fontsize=9)
        ax.set_xlabel("weight")
        if i == 0:
            ax.set_ylabel("weights per bin")
        nz = np.flatnonzero(counts)
        if nz.size:   # the occupied range, not the widest layer's
            ax.set_xlim(edges[nz[0]], edges[nz[-1] + 1])
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def plot_pruning_sweep(sweep: Sequence[Mapping], retrained: Sequence[Mapping], dense_pct: float,
                       paper_knee_removed: Optional[float] = None, paper_keep_retrained: Optional[float] = None,
                       title: str = "Accuracy against connections removed (Figure 4)") -> Figure:
    """Figure 4: test accuracy (%) against the share of connections removed (%): the |w|
    threshold sweep without retraining and the masked-retraining points (each row: "removed",
    "accuracy"); the dense accuracy as a line; the paper's knee and its retrained keep ratio
    as vertical dotted lines. A second panel zooms on the top 3 points."""
    fig = _figure(11.0, 4.6)
    for k, zoom in enumerate((False, True)):
        ax = fig.add_subplot(1, 2, k + 1)
        ax.plot([100 * r["removed"] for r in sweep], [100 * r["accuracy"] for r in sweep], marker="o",
                markersize=4, label="threshold sweep, no retraining")
        if retrained:
            ax.plot([100 * r["removed"] for r in retrained], [100 * r["accuracy"] for r in retrained], marker="s",
                    markersize=4, label="pruned + masked retraining")
        ax.axhline(dense_pct, color="black", linestyle="--", linewidth=1, label=f"dense {dense_pct:.2f} %")
        if paper_knee_removed is not None:
            ax.axvline(100 * paper_knee_removed, color="gray", linestyle=":",
                       label=f"paper: knee at {100 * paper_knee_removed:g} % removed")
        if paper_keep_retrained is not None:
            ax.axvline(100 * (1 - paper_keep_retrained), color="tab:red", linestyle=":",
                       label=f"paper: {100 * paper_keep_retrained:g} % kept with retraining")
        ax.set_xlabel("connections removed (%)")
        if zoom:
            top = max([dense_pct] + [100 * r["accuracy"] for r in list(sweep) + list(retrained)])
            ax.set_ylim(dense_pct - 3, top + 0.5)
            ax.set_ylabel("test accuracy (%)")
            ax.set_title("zoom: from 3 points under the dense accuracy up", fontsize=9)
        else:
            ax.set_ylabel("test accuracy (%)")
            ax.set_title("whole range", fontsize=9)
        ax.set_xlim(0, 100)
        ax.grid(alpha=0.3)
    _legend_below(fig, fig.axes[0], ncols=3)
    fig.suptitle(title)
    return fig


def plot_error_model(measured: Sequence[Sequence[float]], fitted: Sequence[Sequence[float]],
                     curve: Sequence[Sequence[float]], region: Optional[Sequence[float]] = None,
                     title: str = "Error model (eq. 1-3) against measurement") -> Figure:
    """The error model's accuracy (%) against the connections kept, beside the measured points:
    measured (c, error) pairs as dots, the two fitted on as large rings, the model's curve
    (c, error) as a line, solid in the fitted region (between the two points) and dashed
    outside it."""
    fig = _figure(7.0, 4.6)
    ax = fig.add_subplot()
    ax.plot([c for c, _ in measured], [100 * (1 - e) for _, e in measured], "o", markersize=4, label="measured")
    ax.plot([c for c, _ in fitted], [100 * (1 - e) for _, e in fitted], "o", markersize=12, markerfacecolor="none",
            markeredgewidth=1.5, color="tab:red", label="the two points of eq. 2")
    cs = np.asarray([c for c, _ in curve], dtype=float)
    acc = np.asarray([100 * (1 - e) for _, e in curve], dtype=float)
    if region is not None:
        inside = (cs >= region[0]) & (cs <= region[1])
        ax.plot(cs, np.where(inside, np.nan, acc), "--", color="tab:green", label="model outside its region")
        ax.plot(cs, np.where(inside, acc, np.nan), "-", color="tab:green", label="model, fitted region")
    else:
        ax.plot(cs, acc, "-", color="tab:green", label="model")
    lows = [100 * (1 - e) for _, e in measured]
    ax.set_ylim(max(min(lows) - 5, -2), max(lows) + 2)
    ax.set_xlabel("connections kept")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _legend_below(fig, ax, ncols=2)
    return fig


def plot_sensitivity(curves: Mapping[str, Mapping[str, Sequence[Sequence[float]]]], dense_pct: float,
                     paper_ratios: Optional[Mapping[str, float]] = None,
                     title: str = "Per-layer sensitivity (Figure 5)") -> Figure:
    """Figure 5: one panel per phase ("before" / "after" retraining): each layer pruned alone,
    test accuracy (%) against the layer's keep ratio (log axis); the dense accuracy dashed; the
    paper's per-layer keep ratios as ticks on the axis (same colour as their layer)."""
    phases = list(curves)
    names = {"before": "before retraining", "after": "after retraining"}
    fig = _figure(5.2 * len(phases) + 1.6, 4.4)
    layers = list(next(iter(curves.values()))) if curves else []
    colors = dict(zip(layers, ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"] * 9))
    # a layer pruned to nothing falls to chance: the axis stops 15 points under the dense accuracy
    floor = dense_pct - 15
    lowest = min([100 * a for v in curves.values() for pts in v.values() for _, a in pts] or [floor])
    for i, phase in enumerate(phases):
        ax = fig.add_subplot(1, len(phases), i + 1)
        for layer, pts in curves[phase].items():
            ax.plot([d for d, _ in pts], [100 * a for _, a in pts], marker="o", markersize=3, color=colors[layer],
                    label=f"layer {layer}")
            if paper_ratios and layer in paper_ratios:
                ax.axvline(paper_ratios[layer], color=colors[layer], linestyle=":", linewidth=1,
                           label=f"paper's keep ratio, layer {layer}: {paper_ratios[layer]:g}")
        ax.axhline(dense_pct, color="black", linestyle="--", linewidth=1, label=f"dense {dense_pct:.2f} %")
        ax.set_xscale("log")
        _plain_log_ticks(ax, [d for pts in curves[phase].values() for d, _ in pts])
        ax.set_xlabel("keep ratio of the pruned layer (log)")
        if lowest < floor:
            ax.set_ylim(floor, dense_pct + 2)
            ax.set_ylabel(f"test accuracy (%); axis cut at {floor:.0f} %")
        else:
            ax.set_ylabel("test accuracy (%)")
        ax.set_title(names.get(phase, phase), fontsize=9)
        ax.grid(alpha=0.3, which="both")
    if fig.axes:
        _legend_beside(fig.axes[-1])
    fig.suptitle(title)
    return fig


def _plain_log_ticks(ax, values, axis="x"):
    """Ticks of a log axis at 1-2-5 steps within the data, written as plain numbers (0.05, not 5x10^-2)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator
    values = [v for v in values if v > 0]
    if not values:
        return
    lo, hi = min(values), max(values)
    ticks = [m * 10.0 ** e for e in range(-4, 3) for m in (1, 2, 5) if lo * 0.999 <= m * 10.0 ** e <= hi * 1.001]
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(FixedLocator(ticks))
    target.set_major_formatter(lambda v, _: f"{v:g}")
    target.set_minor_locator(NullLocator())
    target.set_minor_formatter(NullFormatter())


def plot_allocation_accuracy(points: Sequence[Mapping], retrained: Sequence[Mapping], dense_pct: float,
                             title: str = "Keep ratio against accuracy after retraining (Figure 6)") -> Figure:
    """Figure 6: test accuracy after retraining (%) against the share of weights kept (%, log
    axis): the uniform (eq. 4) and optimal allocations (points with "method", "label", "keep",
    "accuracy"), each labelled with its budget, and the global-threshold retraining sweep
    ("keep" = kept/weights as "removed") as a line for reference; the dense accuracy dashed."""
    fig = _figure(7.6, 4.8)
    ax = fig.add_subplot()
    if retrained:
        ax.plot([100 * (1 - r["removed"]) for r in retrained], [100 * r["accuracy"] for r in retrained],
                marker=".", color="gray", label="global |w| pruning, iterative retraining (Figure 4)")
    # uniform as a large ring, optimal as a small filled square: both stay visible where they coincide
    styles = {"uniform": dict(marker="o", s=110, facecolors="none", edgecolors="tab:blue", linewidths=2),
              "optimal": dict(marker="s", s=40, color="tab:orange")}
    labels = []
    for method, style in styles.items():
        pts = [p for p in points if p["method"] == method]
        if pts:
            tag = method[0].upper()
            ax.scatter([100 * p["keep"] for p in pts], [100 * p["accuracy"] for p in pts], zorder=3,
                       label=f"{tag}: {method} allocation" + (" (eq. 4)" if method == "uniform" else " (exact DP)")
                       + ", labelled with its budget", **style)
            labels += [(f"{tag} {100 * p['budget']:g} pt", 100 * p["keep"], 100 * p["accuracy"]) for p in pts]
    ax.axhline(dense_pct, color="black", linestyle="--", linewidth=1, label=f"dense {dense_pct:.2f} %")
    ax.set_xscale("log")
    _plain_log_ticks(ax, [100 * p["keep"] for p in points] + [100 * (1 - r["removed"]) for r in retrained])
    ax.set_xlabel("weights kept (%, log)")
    ax.set_ylabel("test accuracy after retraining (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    _legend_below(fig, ax, ncols=2)
    place_point_labels(fig, ax, labels)
    return fig


def plot_sparse_speedup(panels: Sequence[Mapping], reference: str = "NumPy/OpenBLAS dense",
                        title: str = "Sparse layer speedup against dense") -> Figure:
    """Speedup against a dense reference (x, log) vs weight density (%, log), one panel per
    entry of `panels` (a layer shape in a mode): {"title", "series": [{"label", "densities"
    (fractions), "speedups", "break_even" (a density, or None when outside the measured range)}],
    "references": {label: speedup} drawn as dotted horizontal lines}; a series may carry
    "break_even_text" ("above 60 %") for the key. The reference itself is the solid line at 1;
    each series' break-even is a diamond on it, and a small key in the panel (where it covers the
    fewest points) gives each series' break-even density in its colour and marker. One legend
    under the panels names the series; a series keeps its colour in every panel."""
    if not panels:
        raise ValueError("plot_sparse_speedup needs at least one panel")
    labels = list(dict.fromkeys(s["label"] for p in panels for s in p["series"]))
    refs = list(dict.fromkeys(k for p in panels for k in p.get("references", {})))
    from matplotlib import colormaps
    from matplotlib.lines import Line2D
    colors = {label: colormaps["tab10"](i) for i, label in enumerate(labels)}
    markers = dict(zip(labels, "osv^<>Ph*"))
    cols = 2 if len(panels) > 1 else 1
    rows = -(-len(panels) // cols)
    fig = _figure(5.2 * cols, 3.6 * rows + 1.0)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    ys, xs = [1.0], []
    for p in panels:
        for s in p["series"]:
            ys += list(s["speedups"])
            xs += [100 * d for d in s["densities"]]
        ys += list(p.get("references", {}).values())
    lo, hi = min(ys) / 1.4, max(ys) * 1.4
    for ax, p in zip(axes, panels):
        ax.axhline(1.0, color="black", linewidth=1.2, label=f"{reference} (= 1)")
        for k, (name, v) in enumerate(p.get("references", {}).items()):
            ax.axhline(v, color="gray", linestyle=(0, (1, 1.5 + k)), linewidth=1.2, label=f"{name} ({v:.2f}x)"
                       if len(panels) == 1 else name)
        keys = []   # the panel's break-even densities, one entry per series in its colour and marker
        for s in p["series"]:
            c = colors[s["label"]]
            ax.plot([100 * d for d in s["densities"]], s["speedups"], marker=markers[s["label"]], markersize=4,
                    color=c, label=s["label"])
            be = s.get("break_even")
            if be is not None:
                ax.plot([100 * be], [1.0], marker="D", markersize=7, color=c, markeredgecolor="black",
                        linestyle="none", zorder=4)
            text = s.get("break_even_text") or (f"{100 * be:.3g} %" if be is not None else "outside the range")
            keys.append((Line2D([], [], marker=markers[s["label"]], markersize=4, color=c), text))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(lo, hi)
        from matplotlib.ticker import FixedLocator, NullLocator
        ax.xaxis.set_major_locator(FixedLocator(sorted(set(xs))))   # at the measured densities
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_minor_locator(NullLocator())
        _plain_log_ticks(ax, [lo, hi], axis="y")
        ax.set_title(p["title"], fontsize=10)
        ax.set_xlabel("weight density (%, log)")
        ax.set_ylabel(f"speedup vs {reference.split('/')[-1]} (x)")
        ax.grid(alpha=0.3, which="both")
        if keys:   # inside the panel where it covers the fewest points ("best"): the values, not the series
            ax.add_artist(ax.legend([h for h, _ in keys], [t for _, t in keys], title="break-even", loc="best",
                                    fontsize=7, title_fontsize=7, framealpha=0.9))
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles = {}
    for ax in axes[:len(panels)]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    handles["break-even: sparse as fast as the reference"] = Line2D([], [], marker="D", color="gray",
                                                                    markeredgecolor="black", linestyle="none")
    fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center", ncols=2, fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig
