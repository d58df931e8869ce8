"""report.md and the figures of a prune-study, from its results dict (results.json) alone.

write_outputs(out, results) draws every figure the results hold (PNG, pyann.plots) and writes
report.md: each table beside the paper's numbers; where a piece was not measured (a quick run,
fcn1 has no per-layer study) a sentence says so instead of an empty table.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from ..io import write_text


def _pct(v, digits=2) -> str:
    return "-" if v is None else f"{100 * v:.{digits}f}"


def _table(headers, rows) -> str:
    """A Markdown table; never called with no rows (the callers say why instead)."""
    assert rows, "an empty table"
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def write_figures(out, results: dict) -> Dict[str, str]:
    from .. import plots
    out = Path(out)
    model = results["model"]
    files = {}

    def save(name, fig):
        plots.save_figure(fig, out / name)
        files[name[:-4]] = name

    if results.get("figure2", {}).get("patterns"):
        f2 = results["figure2"]
        save("figure2-weight-patterns.png", plots.plot_weight_patterns(
            f2["patterns"], f2["rows"], f2["digit"], title=f"{model}: the ten weight patterns (Figure 2)"))
    f3 = results["figure3"]
    save("figure3-weight-histogram.png", plots.plot_weight_histogram(
        f3["edges"], {k: v["counts"] for k, v in f3["layers"].items()},
        title=f"{model}: histogram of the dense weights (Figure 3)"))
    f4 = results["figure4"]
    paper = results["paper"]
    save("figure4-accuracy-vs-removed.png", plots.plot_pruning_sweep(
        f4["sweep"], f4["retrained"], 100 * results["dense"]["accuracy"],
        paper.get("knee_removed"), paper.get("keep_with_retraining"),
        title=f"{model}: test accuracy against connections removed (Figure 4)"))
    for phase, em in results["error_model"].items():
        fit = em.get("exp")
        if not fit or "why" in fit:
            continue
        measured = [(p["c"], p["measured"]) for p in fit["held_out"]["points"]] + [tuple(p) for p in fit["fitted_on"]]
        save(f"error-model-{phase.replace('_', '-')}.png", plots.plot_error_model(
            sorted(measured), fit["fitted_on"], fit["curve"], fit["region"],
            title=f"{model}: error model e(c) = a exp(-s c) {phase.replace('_', ' ')}"))
    f5 = results.get("figure5")
    if f5:
        save("figure5-sensitivity.png", plots.plot_sensitivity(
            {k: {l: [tuple(p) for p in pts] for l, pts in v.items()} for k, v in f5["curves"].items()},
            100 * f5["dense_accuracy"], paper.get("ratios"),
            title=f"{model}: per-layer sensitivity, each layer pruned alone (Figure 5)"))
    if results.get("allocations"):
        save("figure6-allocation-accuracy.png", plots.plot_allocation_accuracy(
            results["allocations"], f4["retrained"], 100 * results["dense"]["accuracy"],
            title=f"{model}: keep ratio against accuracy after retraining (Figure 6)"))
    return files


def _sparsity_text(d: dict) -> str:
    rows = [(r["layer"], r["kind"], "x".join(map(str, r["shape"])), f"{r['weights']:,}", f"{r['nonzeros']:,}",
             f"{r['density']:.4f}", f"{r['dense_macs']:,}", f"{r['pruned_macs']:,}") for r in d["layers"]]
    t = d["total"]
    rows.append(("total", "", "", f"{t['weights']:,}", f"{t['nonzeros']:,}", f"{t['density']:.4f}",
                 f"{t['dense_macs']:,}", f"{t['pruned_macs']:,}"))
    return _table(("layer", "type", "weight", "weights", "nonzeros", "density", "dense MACs", "pruned MACs"),
                  rows) + f"\n\nc'/c (MACs) = {t['gain']:.4f}"


def report_text(results: dict) -> str:
    model, cfg, dense, paper = results["model"], results["config"], results["dense"], results["paper"]
    lines: List[str] = [f"# Connection pruning study: {model} on MNIST"
                        + (" (QUICK run: tiny data, not a result)" if results.get("quick") else ""), ""]
    lines += [f"Dense model: {dense['source']}. Test accuracy {_pct(dense['accuracy'])} % on "
              f"{dense['test_images']:,} test images (paper: > {_pct(paper['dense_accuracy'], 0)} %). "
              f"Accuracies are final-epoch test accuracies (never the best seen), in %.", ""]
    conns = dense["connections"]
    pc = paper.get("connections", {})
    lines += ["## Connections per layer (dense multiply-adds per sample; conv: kernel size x output positions)", "",
              _table(("layer", "connections (pyann)", "paper"),
                     [(k, f"{v:,}", f"{pc[k]:,}" if k in pc else "-") for k, v in conns.items()]), ""]

    # targets
    tr = results["target_result"]
    best = tr["best"]
    lines += ["## Target", ""]
    verdict = "met" if tr["met"] else "missed"
    if best is None:
        lines += [f"No retrained point stayed within {100 * tr['loss_at_most']:.1f} points of the dense accuracy: "
                  f"target (keep <= {100 * tr['keep_at_most']:g} %) **missed**.", ""]
    else:
        lines += [_table(("target: keep at most", "at a loss of at most", "fewest kept within the loss", "its accuracy",
                          "loss (points)", "verdict"),
                         [(f"{100 * tr['keep_at_most']:g} %", f"{100 * tr['loss_at_most']:.1f} points",
                           f"{100 * best['keep']:.2f} %", _pct(best["accuracy"]), f"{best['loss_points']:.2f}",
                           f"**{verdict}**" + ("" if tr.get("stretch_met") is None else
                                               f" (stretch <= 4 %: {'met' if tr['stretch_met'] else 'missed'})"))]),
                  "", f"Sparsity report of that model ({best['model_file']}):", ""]
        if tr.get("sparsity"):
            lines += [_sparsity_text(tr["sparsity"]), ""]
        lines += ["The smallest keep ratio measured bounds this: a point past the last one measured might "
                  "still be within the loss.", ""]

    # Figure 4
    f4 = results["figure4"]
    lines += ["## Figure 4: accuracy against connections removed", "",
              "Without retraining: one global |w| threshold over every layer (the paper's method).", "",
              _table(("removed (%)", "threshold", "kept", "accuracy (%)", "drop (points)"),
                     [(f"{100 * r['removed']:.1f}", f"{r['threshold']:.4g}", f"{r['kept']:,}", _pct(r["accuracy"]),
                       f"{100 * (dense['accuracy'] - r['accuracy']):.2f}") for r in f4["sweep"]]), ""]
    if model == "fcn1":
        knee = [r for r in f4["sweep"] if dense["accuracy"] - r["accuracy"] <= 0.01]
        if knee:
            lines += [f"Paper: FCN-1 keeps its accuracy until ~30 % removed, then falls fast. Here the last "
                      f"point within 1 point of dense is {100 * max(r['removed'] for r in knee):.0f} % removed.", ""]
    if f4["retrained"]:
        lines += [f"With masked retraining: iterative global magnitude pruning, largest keep ratio first, each "
                  f"point pruned from the previous retrained one and retrained {cfg['retrain_epochs']} epoch(s) "
                  f"(SGD + Nesterov, weight decay {cfg['weight_decay']:g}, cosine lr from {cfg['lr']:g}).", "",
                  _table(("keep (%)", "kept", "c'/c (MACs)", "accuracy before retraining (%)", "after (%)",
                          "drop (points)", "per-layer density"),
                         [(f"{100 * (1 - r['removed']):.2f}", f"{r['kept']:,}", f"{r['gain']:.4f}",
                           _pct(r["accuracy_before_retraining"]), _pct(r["accuracy"]),
                           f"{100 * (dense['accuracy'] - r['accuracy']):.2f}",
                           ", ".join(f"{k}: {v:.3f}" for k, v in r["densities"].items())) for r in f4["retrained"]]),
                  ""]
        if model == "fcn1":
            ten = [r for r in f4["retrained"] if abs(r["kept"] / dense["weights"] - 0.10) < 0.005]
            lines += ["Paper: with retraining FCN-1 keeps its accuracy (> 90 %) with about 10 % of its connections."
                      + (f" Here, at 10 % kept: {_pct(ten[0]['accuracy'])} %." if ten else ""), ""]

    # error model
    lines += ["## Error model (eq. 1-3)", "",
              "e(c) = a exp(-s c) (exp) or a c^-s (power), c = connections kept, fitted on two measured points: "
              "before the knee (the fewest connections whose error is within 1 point (no retraining) or 0.2 "
              "points (with retraining) of the densest point's) and after it (the first point more than 5 or "
              "2 points worse than the densest). Held-out error: |model - measured| accuracy, in points.", ""]
    rows = []
    whys = []
    for phase, em in results["error_model"].items():
        if "why" in em:
            whys.append(f"{phase.replace('_', ' ')}: not fitted ({em['why']})")
            continue
        for form in ("exp", "power"):
            f = em.get(form)
            if not f or "why" in f:
                whys.append(f"{phase.replace('_', ' ')} ({form}): {f.get('why') if f else 'not fitted'}")
                continue
            h = f["held_out"]

            def st(s):
                return "-" if not s["n"] else f"{s['n']} pts, max {s['max_error_points']:.2f}, mean {s['mean_error_points']:.2f}"
            rows.append((phase.replace("_", " "), form, f"{f['s']:.4g}", f"{f['a']:.4g}",
                         f"{f['fitted_on'][0][0]:,.0f} / {f['fitted_on'][1][0]:,.0f}", st(h["in_region"]),
                         st(h["outside"]),
                         ("yes" if not h["in_region"]["n"] or h["in_region"]["max_error_points"] <= 1.0 else "**no**")
                         if h["in_region"]["n"] else "no held-out point in the region"))
    if rows:
        lines += [_table(("curve", "form", "s", "a", "fitted at c (before / after knee)",
                          "held out, in region (points)", "held out, outside (points)", "within 1 point in region"),
                         rows), ""]
    lines += [f"- {w}" for w in whys] + ([""] if whys else [])
    lines += ["The region is the stretch between the two fitted points, where the paper uses the model to "
              "interpolate; outside it the model extrapolates.", ""]

    # Figure 5 and allocations
    f5 = results.get("figure5")
    if not f5:
        lines += ["## Figure 5 and allocation", "",
                  ("fcn1 has one layer: the per-layer study and the allocation are the sweep itself." if model == "fcn1"
                   else "Not measured in this run (the configuration has no sensitivity densities)."), ""]
    else:
        lines += ["## Figure 5: per-layer sensitivity", "",
                  f"Each layer pruned alone by magnitude, the others dense; accuracy on {f5['test_images']:,} test "
                  f"images (dense: {_pct(f5['dense_accuracy'])} %). After retraining: {f5['retrain']['epochs']} "
                  f"epoch(s) over {f5['retrain']['images']:,} training images per point. CSV: "
                  + ", ".join(f5["csv"]) + " (Distiller's columns parameter, density, accuracy, loss).", ""]
        for phase, curves in f5["curves"].items():
            dens = sorted({d for pts in curves.values() for d, _ in pts}, reverse=True)
            table = [(f"{d:g}",) + tuple(next((_pct(a) for dd, a in pts if dd == d), "-") for pts in curves.values())
                     for d in dens]
            lines += [f"### {phase} retraining", "", _table(("keep ratio",) + tuple(f"layer {k} (%)" for k in curves), table), ""]
        lines += _allocation_section(results)
    # scaling and timing
    t = results["timing"]
    lines += ["## What was scaled to fit the time budget", ""]
    dense_imgs = "" if not cfg.get("dense_train_limit") else f" over the first {cfg['dense_train_limit']:,} training images"
    per_layer = "" if not cfg["sens_densities"] else (
        f"{len(cfg['sens_densities'])} sensitivity densities per layer, the after-retraining curves at "
        f"{cfg['sens_retrain_epochs']} epoch(s) over "
        f"{'all' if cfg['sens_retrain_limit'] is None else format(cfg['sens_retrain_limit'], ',')} training images; "
        f"sensitivity measured on {'all' if cfg['sens_test_limit'] is None else format(cfg['sens_test_limit'], ',')} "
        f"test images; each allocation retrained {cfg['alloc_retrain_epochs']} epoch(s); ")
    lines += [f"- configuration `{cfg['name']}`: dense model {cfg['dense_epochs']} epochs{dense_imgs}; {len(cfg['sweep_removed'])} "
              f"sweep points; {len(cfg['retrain_keep'])} retrained keep ratios at {cfg['retrain_epochs']} epoch(s) "
              f"each (the paper retrains with the whole original procedure); " + per_layer + "training images "
              f"{'all' if cfg['train_limit'] is None else format(cfg['train_limit'], ',')}, final test images "
              f"{'all' if cfg['test_limit'] is None else format(cfg['test_limit'], ',')}.",
              "- the sensitivity curves and the allocations are measured on test images, as in the paper "
              "(no separate validation split).", ""]
    stages = t.get("points_seconds_by_stage") or {}
    rows = [(k, f"{v:.0f}") for k, v in stages.items()]
    rows.append(("**the study's points, all runs together**", f"**{t.get('all_points_seconds', 0):.0f}**"))
    lines += ["## Time (wall-clock seconds, on the machine as loaded at the time)", "",
              _table(("stage", "seconds"), rows), ""]
    r = results.get("resume", {})
    lines += [f"This run: {r.get('computed', 0)} points computed, {r.get('reused', 0)} reused from earlier runs; "
              f"{t.get('this_run_seconds', 0):.0f} s wall, {t.get('this_run_cpu_seconds', 0):.0f} s CPU. The dense "
              f"model's training is not counted when it came from the cache.", ""]
    files = results.get("files") or {}
    if files:
        pngs = [(k, v) for k, v in files.items() if v.endswith(".png")]
        if pngs:
            lines += ["## Figures", ""] + [f"![{k}]({v})" for k, v in pngs] + [""]
    return "\n".join(lines)


def _allocation_section(results: dict) -> List[str]:
    model, paper = results["model"], results["paper"]
    allocs = results.get("allocations") or []
    lines = ["## Allocation: uniform (eq. 4) against optimal (exact DP), c'/c (eq. 5)", "",
             "The paper's budget is allocated on the curves without retraining (its method), the \"no loss\" "
             "budget (0.1 points) on the curves after retraining, measured from their own reference (the dense "
             "model retrained the same way). Each allocation is then pruned (per-layer "
             "magnitude) and retrained; the accuracy it reaches is the check of eq. 4's prediction.", ""]
    if not allocs:
        return lines + ["No allocation was computed in this run.", ""]
    for label in dict.fromkeys(a["label"] for a in allocs):
        group = {a["method"]: a for a in allocs if a["label"] == label}
        any_a = next(iter(group.values()))
        layers = [r["layer"] for r in any_a["allocation"]["layers"]]
        title = (f"paper's budget: {100 * any_a['budget']:g} points" if label == "paper"
                 else f"\"no loss\": {100 * any_a['budget']:g} points")
        headers = ["layer", "connections c"] + (["paper c'/c"] if label == "paper" and paper.get("ratios") else []) + \
            [f"{m} c'/c" for m in group] + [f"{m} kept c'" for m in group]
        rows = []
        for i, layer in enumerate(layers):
            row = [layer, f"{any_a['allocation']['layers'][i]['connections']:,}"]
            if label == "paper" and paper.get("ratios"):
                row.append(f"{paper['ratios'][layer]:.3f}")
            row += [f"{g['allocation']['layers'][i]['density']:.3f}" for g in group.values()]
            row += [f"{g['allocation']['layers'][i]['kept']:,}" for g in group.values()]
            rows.append(row)
        total = ["total c'/c (MACs, eq. 5)", f"{sum(r['connections'] for r in any_a['allocation']['layers']):,}"]
        if label == "paper" and paper.get("ratios"):
            pcs = paper["connections"]
            total.append(f"{sum(paper['ratios'][k] * pcs[k] for k in pcs) / sum(pcs.values()):.3f}")
        total += [f"**{g['allocation']['gain']:.3f}**" for g in group.values()] + [
            f"{sum(r['kept'] for r in g['allocation']['layers']):,}" for g in group.values()]
        rows.append(total)
        lines += [f"### {title} ({any_a['curves']} retraining curves)", "", _table(headers, rows), ""]
        acc_rows = []
        for m, g in group.items():
            acc_rows.append((m, f"{g['allocation']['gain']:.4f}", f"{100 * g['keep']:.2f}",
                             _pct(g["allocation"]["predicted_accuracy"]), _pct(g["accuracy_before_retraining"]),
                             _pct(g["accuracy"]), f"{100 * (results['dense']['accuracy'] - g['accuracy']):.2f}",
                             g["epochs"]))
        if label == "paper":
            acc_rows.append(("paper (uniform)", "-", "-", _pct(paper["dense_accuracy"] - paper["budget"], 0), "-", "-",
                             f"{100 * paper['budget']:g}", "-"))
        lines += [_table(("method", "c'/c (MACs)", "weights kept (%)", "eq. 4 predicted (%)",
                          "pruned, before retraining (%)", "after retraining (%)", "drop after retraining (points)",
                          "epochs"), acc_rows), ""]
        if "uniform" in group and "optimal" in group:
            u, o = group["uniform"]["allocation"]["gain"], group["optimal"]["allocation"]["gain"]
            lines += [f"Optimal c'/c {o:.3f} against uniform {u:.3f}: "
                      + ("**smaller** (target met)" if o < u else "**not smaller** (target missed)")
                      + f"; after retraining {_pct(group['optimal']['accuracy'])} % against "
                        f"{_pct(group['uniform']['accuracy'])} %.", ""]
        for m, g in group.items():
            lines += [f"Sparsity report, {m} allocation after retraining ({g['model_file']}):", "",
                      _sparsity_text(g["sparsity"]), ""]
    return lines


def write_outputs(out, results: dict) -> Dict[str, str]:
    """Draw the figures, write report.md; returns {name: file name} of everything written."""
    out = Path(out)
    files = write_figures(out, results)
    results["files"] = dict(files)
    text = report_text(results)
    write_text(out / "report.md", text)
    files["report"] = "report.md"
    if results.get("figure5"):
        for name in results["figure5"]["csv"]:
            files[name[:-4]] = name
    return files
