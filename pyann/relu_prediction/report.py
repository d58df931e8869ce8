"""report.md for the activation study: markdown tables with the paper's numbers side by side.

`render_report(results)` turns the dict returned by `pyann.relu_prediction.study.run_study` (or
read back from its results.json) into markdown; every number it prints is in that dict. The
paper's numbers come from `pyann.relu_prediction.paper`, copied into results by the study.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

from . import paper


DATASET_LABELS = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


def _f(x, nd: int = 2, signed: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x:+.{nd}f}" if signed else f"{x:.{nd}f}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Optional[str] = None) -> str:
    """A GitHub markdown table. align: one char per column, 'l' or 'r' (default: first l, rest r)."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _yes_no(v) -> str:
    return "–" if v is None else ("yes" if v else "no")


def _epochs_text(epochs) -> str:
    epochs = [str(e) for e in epochs]
    if not epochs:
        return "none"
    return epochs[0] if len(epochs) == 1 else ", ".join(epochs[:-1]) + " and " + epochs[-1]


def _trained_epochs(results: dict) -> int:
    return len(results.get("table1", {}).get("all_epochs") or []) or results.get("recipe", {}).get("epochs", 0)


def render_report(results: dict) -> str:
    name = results["dataset"]
    label = DATASET_LABELS.get(name, name)
    t1, f2, t3, fr = results["table1"], results["figure2"], results["table3"], results["firing_rates"]
    probe = results["probe"]
    files = results.get("files", {})
    rec = results["recipe"]
    out: List[str] = []
    add = out.append

    add(f"# ReLU-prediction activation study: {label}\n")
    add(f"Paper: *{results['paper']}*. Our numbers come from one training run of `{results['model']}` "
        f"(hidden widths {results['hidden_widths']}) with `{rec['name']}` ({rec['optimizer']}, batch "
        f"{rec['batch_size']}, peak lr {rec['lr']}), {rec['epochs']} epochs, seed {rec['seed']}. "
        + (f"Final test accuracy: **{_f(results['final_test_accuracy_pct'])} %**."
           if results.get("final_test_accuracy_pct") is not None else "The test accuracy was not measured."))
    if not results.get("official_data", True):
        add("\n**Data note:** the dataset files are not the official ones (checksum mismatch or custom arrays); "
            "numbers are not comparable with the paper's.")
    add(f"\nProbe set for the per-epoch activation states: **{probe['images']} {probe['set']} images** "
        f"(fixed, drawn from seed {probe['seed']}). {probe['why']}\n")

    # Table 1
    add("## Table 1: test accuracy while training (%)\n")
    n_epochs = _trained_epochs(results)
    missing = [e for e in paper.TABLE1_EPOCHS if e not in t1["epochs"]]
    if not t1["epochs"]:
        add(f"Not comparable with the paper: its Table 1 reports epochs {_epochs_text(paper.TABLE1_EPOCHS)}, "
            f"and this run trained {n_epochs} epoch{'s' if n_epochs != 1 else ''}, so it reached none of them. "
            "The accuracy at every epoch the run has is below.\n")
    else:
        header = ["epoch"] + [str(e) for e in t1["epochs"]]
        rows = [["pyann"] + [_f(a) for a in t1["accuracy_pct"]]]
        if t1.get("paper_pct"):
            rows.append(["paper"] + [_f(a) for a in t1["paper_pct"]])
            rows.append(["difference (points)"] + [_f(d, signed=True) for d in t1["diff_pct"]])
        add(md_table(header, rows))
        if not t1.get("paper_pct"):
            add(f"\nThe paper's Table 1 has no values for {label} (it reports MNIST and Fashion-MNIST).")
        if missing:
            add(f"\nEpoch{'s' if len(missing) > 1 else ''} {_epochs_text(missing)} of the paper's table "
                f"{'were' if len(missing) > 1 else 'was'} not reached: this run trained {n_epochs} epochs.")
    if files.get("accuracy"):
        add(f"\n![test accuracy per epoch]({files['accuracy']})\n")
    measured = [(e, a) for e, a in zip(t1["all_epochs"], t1["all_accuracy_pct"]) if a is not None]
    if measured:
        add("Accuracy at every epoch (%): " + ", ".join(f"{e}: {_f(a)}" for e, a in measured) + "\n")
    else:
        add("No epoch's test accuracy was measured (the run had no validation set).\n")

    # Figure 2
    add("## Figure 2: probability that a neuron's state equals its state at the previous epoch (%)\n")
    add(f"For hidden layer k and epoch e ≥ 2: the mean over the {probe['images']} probe images and the "
        "layer's neurons of [state at the end of epoch e == state at the end of epoch e−1], state = "
        "ReLU output > 0. The `off→off` columns give P(off at e | off at e−1), the event a "
        "skip-if-it-was-off predictor relies on.\n")
    n_layers = len(f2["agreement_pct"])
    lrs = f2.get("lr") or [None] * len(f2["epochs"])
    header = (["epoch", "lr at end"] + [f"layer {k}" for k in range(1, n_layers + 1)]
              + [f"off→off {k}" for k in range(1, n_layers + 1)])
    rows = []
    for i, e in enumerate(f2["epochs"]):
        rows.append([str(e), "–" if lrs[i] is None else f"{lrs[i]:.2e}"]
                    + [_f(f2["agreement_pct"][k][i]) for k in range(n_layers)]
                    + [_f(f2["stay_off_pct"][k][i]) for k in range(n_layers)])
    if rows:
        add(md_table(header, rows))
    else:
        add(f"Not computed: each value compares a neuron's state at one epoch with its state at the epoch "
            f"before, so it needs at least 2 epochs; this run trained {n_epochs}.")
    if files.get("figure2") and rows:
        add(f"\n![Figure 2]({files['figure2']})\n")
    checks = f2.get("checks", {})
    add("\nThe paper gives Figure 2 as a picture without numbers; its text says: "
        f"*{f2.get('paper_shape') or 'nothing for this dataset'}*. On our curves:\n")
    if checks.get("rises_with_training") is None:
        add(f"- neither statement could be checked: both compare epochs of the curves, which needs values at "
            f"2 or more epochs (a run of at least 3 epochs); this run has {len(f2['epochs'])} "
            f"(it trained {n_epochs} epoch{'s' if n_epochs != 1 else ''}).")
    else:
        add(f"- rises with training (last epoch above epoch {f2['epochs'][0]} in every layer): "
            f"**{_yes_no(checks.get('rises_with_training'))}**"
            + (f" (per layer: {', '.join(_yes_no(r) for r in checks['rises_by_layer'])})" if checks.get("rises_by_layer") else ""))
        add(f"- higher in deeper layers (mean over epochs {f2['epochs'][0]}–{f2['epochs'][-1]} strictly increasing "
            f"from layer 1 to {n_layers}): **{_yes_no(checks.get('deeper_is_higher'))}**; means "
            + ", ".join(_f(v) for v in checks["mean_by_layer_pct"])
            + f" %, spread {_f(checks['layer_spread_pct'])} points; last epoch "
            + ", ".join(_f(v) for v in checks["final_by_layer_pct"]) + " %")
    if len(f2.get("lr") or []) >= 2 and f2["lr"][-1] is not None and f2["lr"][0]:
        add(f"- caveat: the recipe's cosine schedule takes the learning rate from {f2['lr'][0]:.2e} "
            f"(end of epoch {f2['epochs'][0]}) to {f2['lr'][-1]:.2e} (end of epoch {f2['epochs'][-1]}); "
            "the weights move less and less, so part of the late rise toward 100 % is the schedule, not "
            "only the network settling. The paper does not state its schedule.")
    add("")

    # Table 3
    add("## Table 3: share of active neurons per hidden layer (%)\n")
    add(f"Final model; share of (image, neuron) pairs with ReLU output > 0, over the full test set "
        f"({t3['images']} images) and, for comparison, the full training set "
        f"({fr['train_images']} images).\n")
    header = ["", *[f"layer {k}" for k in range(1, len(t3["active_pct"]) + 1)]]
    rows = [[f"pyann, test ({t3['images']})"] + [_f(v) for v in t3["active_pct"]],
            [f"pyann, train ({fr['train_images']})"] + [_f(v) for v in t3["train_active_pct"]]]
    if t3.get("paper_pct"):
        rows.append(["paper (MNIST test)"] + [_f(v) for v in t3["paper_pct"]])
        rows.append(["difference, test (points)"] + [_f(d, signed=True) for d in t3["diff_pct"]])
    add(md_table(header, rows))
    t3c = t3.get("checks") or {}
    if not t3.get("paper_pct"):
        add("\nThe paper's Table 3 is measured on MNIST only (section 2.4); it has no values for this dataset.")
    if t3c.get("decreases_with_depth") is not None:
        add(f"\nActive share falls with depth (each layer below the one before): "
            f"**{_yes_no(t3c['decreases_with_depth'])}**"
            + (f"; in the paper: **{_yes_no(t3c['paper_decreases_with_depth'])}**."
               if t3c.get("paper_decreases_with_depth") is not None else "."))
    if files.get("active_share"):
        add(f"\n![active share per layer]({files['active_share']})\n")

    # firing rates
    add("## Per-neuron firing rates (final model)\n")
    s0 = fr["train"][0]
    add(f"Firing rate of a neuron = share of the set's images on which it is active. dead: 0 %; "
        f"rarely on: above 0 and below {100 * s0['rare_below']:g} %; always on: above "
        f"{100 * s0['always_above']:g} % (never off: exactly 100 %). The training set is what a "
        "history predictor is built from, the test set is what it is applied to.\n")
    header = ["layer", "set", "neurons", "dead", "rarely on", "always on", "never off", "mean rate (%)", "median rate (%)"]
    rows = []
    for k in range(len(fr["train"])):
        for s in ("train", "test"):
            d = fr[s][k]
            rows.append([str(k + 1), f"{s} ({fr[s + '_images']})", str(d["neurons"]), str(d["dead"]), str(d["rare"]),
                         str(d["always"]), str(d["never_off"]), _f(100 * d["mean"]), _f(100 * d["median"])])
    add(md_table(header, rows, align="llrrrrrrr"))
    if files.get("firing_rates"):
        add(f"\n![firing-rate histograms]({files['firing_rates']})\n")

    # sweep
    add("## Accuracy vs executed multiply-adds per predictor\n")
    sweep = results.get("sweep") or {}
    if sweep.get("status", "").startswith("skipped"):
        add(f"Not computed: {sweep['status']}.\n")
    elif sweep.get("status", "").startswith(("not available", "failed")):
        add(f"Not included ({sweep['status']}). The study calls "
            "`pyann.relu_prediction.study.sweep_hook`, which picks it up once it exists.\n")
    else:
        add(_render_sweep(sweep))

    add("## Files\n")
    add("\n".join(f"- `{v}`" for v in files.values()) or "- (none written)")
    secs = results.get("seconds", {})
    if secs.get("train_and_record") is not None and secs.get("total") is not None:
        add(f"\nTraining and recording took {_f(secs['train_and_record'], 0)} s; the whole study "
            f"{_f(secs['total'], 0)} s.")
    return "\n".join(out) + "\n"


def _render_sweep(sweep: dict) -> str:
    """The sweep's own markdown when it provides one ("markdown"), else its figure and a note."""
    parts = []
    if sweep.get("markdown"):
        parts.append(sweep["markdown"])
    if sweep.get("figure"):
        parts.append(f"![accuracy vs multiply-adds]({sweep['figure']})\n")
    if not parts:
        parts.append("The sweep ran; its numbers are under `sweep` in results.json.")
    return "\n\n".join(parts) + "\n"


def render_combined_report(combined: dict) -> str:
    """report.md for `combine_studies`: the datasets side by side, as in the paper."""
    out: List[str] = []
    add = out.append
    names = combined["datasets"]
    add("# ReLU-prediction activation study: datasets side by side\n")
    add(f"Paper: *{combined['paper']}*. Each dataset's full report is in its own folder"
        + (": " + ", ".join(f"`{f}`" for f in combined["folders"] if f) if any(combined["folders"]) else "") + ".\n")
    add("## Table 1: test accuracy while training (%)\n")
    epochs = sorted({e for n in names for e in combined["table1"][n]["epochs"]})
    rows = []
    for n in names:
        t1 = combined["table1"][n]
        ours = dict(zip(t1["epochs"], t1["accuracy_pct"]))
        theirs = dict(zip(t1["epochs"], t1["paper_pct"] or []))
        label = DATASET_LABELS.get(n, n)
        rows.append([f"{label}, pyann"] + [_f(ours.get(e)) for e in epochs])
        if t1.get("paper_pct"):
            rows.append([f"{label}, paper"] + [_f(theirs.get(e)) for e in epochs])
    if epochs:
        add(md_table(["epoch"] + [str(e) for e in epochs], rows))
    else:
        add(f"Not comparable with the paper: its Table 1 reports epochs {_epochs_text(paper.TABLE1_EPOCHS)}, "
            "and these runs reached none of them; each dataset's report lists the accuracy at every epoch.")
    add("\n## Figure 2: probability that a neuron's state equals its state at the previous epoch (%)\n")
    if any(combined["figure2"][n]["epochs"] for n in names):
        add(f"![Figure 2, both datasets]({combined['files']['figure2']})\n")
    header = ["dataset", "epoch"]
    n_layers = max(len(combined["figure2"][n]["agreement_pct"]) for n in names)
    header += [f"layer {k}" for k in range(1, n_layers + 1)]
    rows = []
    for n in names:
        f2 = combined["figure2"][n]
        if not f2["epochs"]:
            continue
        for i in sorted({0, len(f2["epochs"]) // 2, len(f2["epochs"]) - 1}):
            rows.append([DATASET_LABELS.get(n, n), str(f2["epochs"][i])] + [_f(layer[i]) for layer in f2["agreement_pct"]])
    if rows:
        add(md_table(header, rows, align="ll" + "r" * n_layers))
    else:
        add("Not computed: each value compares an epoch with the one before, so it needs runs of at least 2 epochs.")
    add("\nThe paper (no numbers, text only): " + "; ".join(
        f"{DATASET_LABELS.get(n, n)}: *{combined['figure2'][n].get('paper_shape') or '–'}*" for n in names) + ".\n")
    add("## Table 3: share of active neurons per hidden layer, test set (%)\n")
    n_layers = max(len(combined["table3"][n]["active_pct"]) for n in names)
    rows = []
    for n in names:
        t3 = combined["table3"][n]
        label = DATASET_LABELS.get(n, n)
        rows.append([f"{label}, pyann"] + [_f(v) for v in t3["active_pct"]])
        if t3.get("paper_pct"):
            rows.append([f"{label}, paper"] + [_f(v) for v in t3["paper_pct"]])
    add(md_table([""] + [f"layer {k}" for k in range(1, n_layers + 1)], rows))
    return "\n".join(out) + "\n"


def terminal_summary(results: dict) -> str:
    """The lines `pyann relu-study` prints after a run: Table 1, Table 3 and Figure 2's last
    epoch, each beside the paper where it has a value, or a sentence saying why it is missing."""
    t1, t3, f2 = results["table1"], results["table3"], results["figure2"]
    n_epochs = _trained_epochs(results)
    lines = []
    if t1["epochs"]:
        lines.append("Table 1, test accuracy (%): " + ", ".join(
            f"epoch {e}: {_f(a)}" + (f" (paper {p:.2f})" if p is not None else "")
            for e, a, p in zip(t1["epochs"], t1["accuracy_pct"], t1["paper_pct"] or [None] * len(t1["epochs"]))))
    else:
        last = next((a for a in reversed(t1.get("all_accuracy_pct") or []) if a is not None), None)
        lines.append(f"Table 1: not comparable, the paper reports epochs {_epochs_text(paper.TABLE1_EPOCHS)} and this "
                     f"run trained {n_epochs}" + (f" (test accuracy {_f(last)} % at its last epoch)" if last is not None else ""))
    lines.append("Table 3, active neurons on the test set (%): " + ", ".join(
        f"layer {k}: {_f(a)}" + (f" (paper {p:.2f})" if p is not None else "")
        for k, (a, p) in enumerate(zip(t3["active_pct"], t3["paper_pct"] or [None] * len(t3["active_pct"])), 1)))
    if f2["epochs"]:
        lines.append(f"Figure 2, P(state_e = state_(e-1)) at epoch {f2['epochs'][-1]} (%): " + ", ".join(
            f"layer {k}: {_f(layer[-1])}" for k, layer in enumerate(f2["agreement_pct"], 1)))
    else:
        lines.append(f"Figure 2: not computed, it compares each epoch with the one before and needs at least 2 "
                     f"epochs (this run trained {n_epochs})")
    return "\n".join(lines)
