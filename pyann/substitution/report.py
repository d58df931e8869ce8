"""report.md and the figures of a substitution study, from <out>/results.json alone.

write_report(out) reads results.json (the schema in the study's contract: preset, data, teacher,
costs, lana, trials, latency, selection, timing, provenance) and writes report.md with:
- Tables 2 and 3: test accuracy (%) per position (rows) and candidate (columns, paper numbers
  1..7) at each checkpoint, the baseline as mean ± std over its seeds, the paper's table below;
- each candidate's parameters and multiply-adds, LANA score and distillation loss per position;
- the paper's question answered: Kendall tau-b and Spearman rho between the LANA score (and
  the distillation loss) and the final accuracy, per position and pooled, and how many pairwise
  differences between candidates lie above the baseline's measured seed noise;
- the latency table, the accuracy/latency trade-off and the latency-budget selections;
- the data's name, the teacher, the preset's `scaled` paragraph and the timings.
Figures (PNG, pyann.plots.save_figure): accuracy per candidate and position with the baseline's
band; predicted latency against mean LANA score with the selections.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..io import read_json, write_text
from .correlation import rank_correlations

# the paper's candidates in its numbering (1..7): the names candidates.py registers them under
PAPER_CANDIDATES = ("original", "identity", "inverted_residual", "conv_bn_e1", "conv_bn_e2",
                    "basic_e2", "bottleneck_e2")
SHORT = {"original": "original", "identity": "identity", "inverted_residual": "inv. residual",
         "conv_bn_e1": "conv-BN e1", "conv_bn_e2": "conv-BN e2", "basic_e2": "basic e2",
         "bottleneck_e2": "bottleneck e2"}

# Seo & Lee, Tables 2 and 3 (../shared/papers/README.md section 2): WRN-40-2 on CIFAR-10, test
# accuracy (%) after 25 and 50 fine-tuning epochs; None where the candidate is not available.
# The baseline (candidate 1) is mean ± std over 3 runs and appears once per table.
PAPER_BASELINE = {25: (96.19, 0.16), 50: (96.12, 0.06)}
PAPER_TABLES = {
    25: {1: (None, 92.88, 94.66, 94.76, 93.84, 93.16),
         7: (None, 90.64, 91.98, 92.12, 94.25, 94.40),
         18: (96.13, 96.47, 96.47, 96.45, 96.47, 96.50)},
    50: {1: (None, 93.28, 95.30, 95.10, 95.46, 95.49),
         7: (None, 93.08, 93.96, 95.03, 95.03, 94.63),
         18: (95.93, 96.19, 96.32, 96.41, 96.34, 96.52)},
}   # columns: candidates 2..7

TICK_ROTATION = 40   # degrees: the candidates' names fit side by side only slanted
MAX_CLOUD = 50_000  # the trade-off figure draws every choice only up to this many (3 x 7 positions: 343)
NOISE_FACTOR = 2.0   # "above noise": |difference| > NOISE_FACTOR x the baseline's seed std
DASH = "–"


# ---- reading results.json ---------------------------------------------------------------------

def paper_number(name: str) -> Optional[int]:
    return PAPER_CANDIDATES.index(name) + 1 if name in PAPER_CANDIDATES else None


def candidate_label(name: str) -> str:
    n = paper_number(name)
    return name if n is None else f"{n} {name}"


def positions(r: dict) -> List[int]:
    return [int(p) for p in r["preset"]["positions"]]


def candidates(r: dict) -> List[str]:
    """The preset's candidates, then any other name the results mention (a user's own)."""
    names = list(r["preset"]["candidates"])
    for row in r.get("costs", []) + r.get("lana", []):
        if row["candidate"] not in names:
            names.append(row["candidate"])
    return names


def checkpoints(r: dict) -> List[int]:
    return [int(e) for e in r["preset"]["checkpoints"]]


def available(r: dict) -> set:
    """(pos, name) pairs the study built: a candidate has a cost or a LANA row where its shape
    fits; "original" is always available."""
    found = {(int(row["position"]), row["candidate"]) for row in r.get("costs", []) + r.get("lana", [])}
    return found | {(p, "original") for p in positions(r)}


def _by_key(rows: Sequence[dict], field: str) -> Dict[Tuple[int, str], float]:
    return {(int(row["position"]), row["candidate"]): row[field] for row in rows if row.get(field) is not None}


def baseline_runs(r: dict) -> Dict[int, List[float]]:
    """{epoch: [accuracy of each baseline seed]} (trials that replace nothing)."""
    out: Dict[int, List[float]] = {}
    for t in r.get("trials", []):
        if not t["replacements"]:
            for e, acc in t["accuracy"].items():
                out.setdefault(int(e), []).append(float(acc))
    return out


def baseline_stats(r: dict) -> Dict[int, Tuple[float, Optional[float], int]]:
    """{epoch: (mean, sample std (n - 1; None for one seed), n)} of the baseline."""
    return {e: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else None, len(v))
            for e, v in baseline_runs(r).items()}


def single_runs(r: dict) -> Dict[Tuple[int, str], Dict[int, List[float]]]:
    """{(pos, name): {epoch: [accuracy per seed]}} of the one-block substitution trials."""
    out: Dict[Tuple[int, str], Dict[int, List[float]]] = {}
    for t in r.get("trials", []):
        if len(t["replacements"]) == 1:
            ((pos, name),) = t["replacements"].items()
            for e, acc in t["accuracy"].items():
                out.setdefault((int(pos), name), {}).setdefault(int(e), []).append(float(acc))
    return out


def accuracy(r: dict, pos: int, name: str, epoch: int) -> Optional[float]:
    """Mean test accuracy of (pos, name) at epoch; the original is the baseline's mean."""
    if name == "original":
        s = baseline_stats(r).get(epoch)
        return None if s is None else s[0]
    runs = single_runs(r).get((pos, name), {}).get(epoch)
    return None if not runs else float(np.mean(runs))


# ---- tables -----------------------------------------------------------------------------------

def _pct(v: Optional[float], digits: int = 2) -> str:
    return "" if v is None else f"{100 * v:.{digits}f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence]) -> List[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


def _baseline_cell(r: dict, epoch: int) -> str:
    s = baseline_stats(r).get(epoch)
    if s is None:
        return "not run"
    mean, std, n = s
    return f"{100 * mean:.2f} (1 seed)" if std is None else f"{100 * mean:.2f} ± {100 * std:.2f} ({n} seeds)"


def accuracy_cell(r: dict, pos: int, name: str, epoch: int, first_row: bool) -> str:
    """A table cell: '–' not available here, 'not run' available but no trial yet, the
    baseline (mean ± std) in the original's column of the first row only (as in the paper)."""
    if (pos, name) not in available(r):
        return DASH
    if name == "original":
        return _baseline_cell(r, epoch) if first_row else ""
    runs = single_runs(r).get((pos, name), {}).get(epoch)
    if not runs:
        return "not run"
    return f"{100 * np.mean(runs):.2f}" + (f" ({len(runs)} seeds)" if len(runs) > 1 else "")


def _position_label(r: dict, pos: int) -> str:
    pp = dict(zip(positions(r), r["preset"].get("paper_positions", [])))
    return f"{pos} (paper {pp[pos]})" if pos in pp else str(pos)


def accuracy_table(r: dict, epoch: int) -> List[str]:
    names = candidates(r)
    rows = [[_position_label(r, p)] + [accuracy_cell(r, p, n, epoch, i == 0) for n in names]
            for i, p in enumerate(positions(r))]
    return _table(["position"] + [candidate_label(n) for n in names], rows)


def paper_table(epoch: int) -> List[str]:
    base = PAPER_BASELINE[epoch]
    rows = [[str(p), f"{base[0]:.2f} ± {base[1]:.2f} (3 runs)" if i == 0 else ""]
            + [DASH if v is None else f"{v:.2f}" for v in vals]
            for i, (p, vals) in enumerate(PAPER_TABLES[epoch].items())]
    return _table(["position"] + [candidate_label(n) for n in PAPER_CANDIDATES], rows)


def _matrix(r: dict, cell) -> List[str]:
    """positions x candidates, cell(pos, name) -> text, '–' where not available."""
    names = candidates(r)
    rows = [[_position_label(r, p)] + [cell(p, n) if (p, n) in available(r) else DASH for n in names]
            for p in positions(r)]
    return _table(["position"] + [candidate_label(n) for n in names], rows)


def _kv(d) -> str:
    """A config dict as 'key value, key value' (a reader's line, not a Python repr)."""
    if not isinstance(d, dict):
        return str(d)
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in d.items()) or "not recorded"


def _count(n) -> str:
    return "all" if n is None else f"{n:,}"


def _ms(v: float) -> str:
    """Latency with 3 significant-ish digits: 0.002, 0.83, 14.6, 2084."""
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _epochs(e: int) -> str:
    return f"{e} epoch" if e == 1 else f"{e} epochs"


def _or_blank(d: dict, key, fmt) -> str:
    return "" if d.get(key) is None else fmt(d[key])


# ---- the paper's question ---------------------------------------------------------------------

def _points(r: dict, pos: int, epoch: int, field: str) -> List[Tuple[str, float, float]]:
    """(name, LANA field, accuracy at epoch) of the substitutes at pos that have both. The
    original is left out: its LANA score is the teacher's own accuracy and its loss 0 by
    construction, a point that would lift every correlation without saying anything about how
    well LANA ranks the operations that replace it."""
    lana = _by_key(r.get("lana", []), field)
    out = []
    for name in candidates(r):
        if name == "original":
            continue
        acc = accuracy(r, pos, name, epoch)
        if (pos, name) in lana and acc is not None and (pos, name) in available(r):
            out.append((name, float(lana[(pos, name)]), acc))
    return out


def _corr_text(xs, ys) -> Tuple[str, str]:
    if len(xs) < 2:
        return "n < 2", "n < 2"
    c = rank_correlations(xs, ys)
    if c["undefined"]:
        return "nan", f"nan ({c['undefined']})"
    return f"{c['kendall_tau_b']:+.2f}", f"{c['spearman_rho']:+.2f}"


def correlation_rows(r: dict, epoch: int) -> List[List[str]]:
    """Per position and pooled: n, tau and rho of (score, accuracy) and (loss, accuracy)."""
    rows = []
    groups = [(_position_label(r, p), [p]) for p in positions(r)] + [("all positions pooled", positions(r))]
    for label, group in groups:
        cells = [label]
        for field in ("score", "loss"):
            pts = [pt for p in group for pt in _points(r, p, epoch, field)]
            cells += [str(len(pts)), *_corr_text([x for _, x, _ in pts], [y for _, _, y in pts])]
        rows.append(cells)
    return rows


def noise_counts(r: dict, pos: int, epoch: int) -> Optional[dict]:
    """Pairs of candidates at pos (the original as the baseline mean) whose accuracies differ by
    more than NOISE_FACTOR x the baseline's seed std at epoch, and of those, how many the LANA
    score orders the same way. None when the baseline has fewer than 2 seeds."""
    s = baseline_stats(r).get(epoch)
    if s is None or s[1] is None:
        return None
    threshold = NOISE_FACTOR * s[1]
    scores = _by_key(r.get("lana", []), "score")
    accs = {n: accuracy(r, pos, n, epoch) for n in candidates(r) if (pos, n) in available(r)}
    accs = {n: a for n, a in accs.items() if a is not None}
    pairs = list(itertools.combinations(accs, 2))
    above = [(a, b) for a, b in pairs if abs(accs[a] - accs[b]) > threshold]
    scored = [(a, b) for a, b in above if (pos, a) in scores and (pos, b) in scores]
    agree = sum(1 for a, b in scored if (scores[(pos, a)] - scores[(pos, b)]) * (accs[a] - accs[b]) > 0)
    return {"pairs": len(pairs), "above": len(above), "threshold": threshold, "scored": len(scored), "agree": agree}


def question_section(r: dict) -> List[str]:
    eps = checkpoints(r)
    lines = ["## The paper's question: is the accuracy change predictable?", "",
             "Rank correlations between what LANA knows before any fine-tuning and the test accuracy "
             "after it, over the substitute candidates at each position (the original left out: its score "
             "is the teacher's accuracy and its loss 0 by construction), and pooled over all positions "
             "(which mixes the positions' own levels). "
             "The distillation loss should correlate negatively (lower loss, higher accuracy). Kendall "
             "tau-b and Spearman rho both handle ties (pyann.substitution.correlation); 'nan' with a "
             "reason where one side is constant.", ""]
    for e in eps:
        lines += [f"Accuracy after {_epochs(e)} of fine-tuning:", ""]
        lines += _table(["position", "n", "tau (score)", "rho (score)", "n", "tau (loss)", "rho (loss)"],
                        correlation_rows(r, e))
    lines += noise_section(r) + findings_section(r)
    return lines


def noise_section(r: dict) -> List[str]:
    lines = [f"**Above noise** means |accuracy difference| > {NOISE_FACTOR:g} x the baseline's seed "
             "standard deviation (sample std over its seeds, at the same checkpoint), a difference "
             "between two single runs the baseline's own seed-to-seed spread rarely produces. Pairs: every "
             "two candidates at a position, the original counted at the baseline's mean; 'LANA agrees': "
             "of the pairs above noise, those whose LANA scores are in the same order as their accuracies.", ""]
    rows = []
    for e in checkpoints(r):
        for p in positions(r):
            c = noise_counts(r, p, e)
            if c is None:
                return lines + ["The baseline has fewer than 2 seeds here: its noise is not measured, so no "
                                "difference can be called above it.", ""]
            rows.append([str(e), _position_label(r, p), f"{100 * c['threshold']:.2f}", f"{c['above']} of {c['pairs']}",
                         f"{c['agree']} of {c['scored']}" if c["scored"] else DASH])
    return lines + _table(["epochs", "position", "threshold (points)", "pairs above noise", "LANA agrees"], rows)


def findings_section(r: dict) -> List[str]:
    """The paper's two concrete findings, checked on ours at the last checkpoint: candidates 4
    and 5 (conv + BN, expand 1 and 2) within one baseline std of each other except at the first
    position; at the last position the larger candidates beat the baseline."""
    e = checkpoints(r)[-1]
    s = baseline_stats(r).get(e)
    if s is None or s[1] is None:
        return []
    mean, std, _ = s
    rows = []
    for p in positions(r):
        a4, a5 = accuracy(r, p, "conv_bn_e1", e), accuracy(r, p, "conv_bn_e2", e)
        d45 = DASH if a4 is None or a5 is None else f"{100 * abs(a4 - a5):.2f} ({abs(a4 - a5) / std:.1f} std)"
        subs = [(n, a) for n in candidates(r) if n != "original" and (a := accuracy(r, p, n, e)) is not None]
        above = [n for n, a in subs if a > mean]
        clear = [n for n, a in subs if a - mean > NOISE_FACTOR * std]
        rows.append([_position_label(r, p), d45, f"{len(above)} of {len(subs)}" + (f" ({', '.join(above)})" if above else ""),
                     f"{len(clear)}" + (f" ({', '.join(clear)})" if clear else "")])
    return ([f"The paper's findings checked after {_epochs(e)} (baseline {100 * mean:.2f} ± {100 * std:.2f}): it "
             "found candidates 4 and 5 within one std of each other except at position 1, and at position 18 the "
             "larger candidates above the baseline.", ""]
            + _table(["position", "4 conv_bn_e1 vs 5 conv_bn_e2: difference (points)", "substitutes above the baseline mean",
                      f"... by more than {NOISE_FACTOR:g} std"], rows))


# ---- figures ----------------------------------------------------------------------------------

def plot_candidate_accuracy(r: dict, title: str):
    """One panel per position: each candidate's test accuracy at each checkpoint (markers), the
    baseline's mean (dashed) ± std (band) per checkpoint in the same colour."""
    from .. import plots
    pos_list, eps = positions(r), checkpoints(r)
    fig = plots._figure(3.3 * len(pos_list) + 0.6, 4.4)
    # one y scale for all panels: how far a position's candidates fall is part of the answer
    axes = fig.subplots(1, len(pos_list), squeeze=False, sharey=True)[0]
    colors = plots._layer_colors(len(eps)) if len(eps) > 2 else ["tab:blue", "tab:orange"][:len(eps)]
    base = baseline_stats(r)
    for ax, pos in zip(axes, pos_list):
        names = [n for n in candidates(r) if (pos, n) in available(r)]
        for k, (e, color) in enumerate(zip(eps, colors)):
            _baseline_band(ax, base.get(e), color, e)
            shift = (k - (len(eps) - 1) / 2) * 0.18      # the checkpoints side by side, not on one another
            pts = [(i + shift, 100 * a) for i, n in enumerate(names) if (a := accuracy(r, pos, n, e)) is not None]
            ax.plot([x for x, _ in pts], [y for _, y in pts], linestyle="none", marker="o", markersize=6, color=color,
                    label=f"candidate after {_epochs(e)}")
        ax.set_xticks(range(len(names)), [f"{paper_number(n) or ''} {SHORT.get(n, n)}".strip() for n in names],
                      rotation=TICK_ROTATION, ha="right", rotation_mode="anchor", fontsize=8)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_title(f"position {_position_label(r, pos)}", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    fig.suptitle(title, fontsize=11)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize=8)
    return fig


def _baseline_band(ax, stats, color, epoch) -> None:
    if stats is None:
        return
    mean, std, n = stats
    ax.axhline(100 * mean, color=color, linestyle="--", linewidth=1,
               label=f"baseline mean after {_epochs(epoch)}" + (f" ± std ({n} seeds)" if std is not None else " (1 seed)"))
    if std is not None:
        ax.axhspan(100 * (mean - std), 100 * (mean + std), color=color, alpha=0.15, linewidth=0)


def _scores_for_selection(r: dict) -> Tuple[dict, Optional[float]]:
    """LANA scores keyed (pos, name), and the original's stand-in score when the LANA rows have
    none for it: the teacher's accuracy (swapping the original for itself is the teacher)."""
    return _by_key(r.get("lana", []), "score"), r.get("teacher", {}).get("accuracy")


def tradeoff_points(r: dict, batch: int) -> Tuple[List[Tuple[float, float]], List]:
    """Every complete choice's (predicted ms, mean LANA score %) at batch, and the Pareto front
    (selection.pareto_front), for the trade-off figure."""
    from .selection import pareto_front
    scores, orig = _scores_for_selection(r)
    lat = r["latency"]
    ms = {(int(b["position"]), b["candidate"]): b["ms"][str(batch)] for b in lat["blocks"] if str(batch) in b["ms"]}
    pos_list = sorted({p for p, _ in ms})
    options = [[n for (q, n) in ms if q == p and ((q, n) in scores or n == "original")] for p in pos_list]
    offset = lat["network"][str(batch)] - sum(ms[(p, "original")] for p in pos_list)
    if np.prod([len(o) for o in options], dtype=float) > MAX_CLOUD:
        return [], pareto_front(lat, scores, batch, original_score=orig)   # too many to draw: the front alone
    every = [(offset + sum(ms[(p, n)] for p, n in zip(pos_list, combo)),
              100 * np.mean([scores.get((p, n), orig) for p, n in zip(pos_list, combo)]))
             for combo in itertools.product(*options)]
    return every, pareto_front(lat, scores, batch, original_score=orig)


def plot_latency_tradeoff(r: dict, batch: int, title: str):
    """Predicted network latency against the mean LANA score of every choice of one candidate
    per position: the Pareto front, the teacher, each selection's budget, predicted and
    measured latency."""
    from .. import plots
    every, front = tradeoff_points(r, batch)
    npos = len({int(b["position"]) for b in r["latency"]["blocks"]})
    fig = plots._figure(7.2, 4.8)
    ax = fig.add_subplot()
    if every:
        ax.plot(*zip(*every), linestyle="none", marker=".", color="0.7", markersize=5,
                label="every choice (one candidate per position)")
    ax.plot([f.predicted_ms for f in front], [100 * f.score_sum / npos for f in front], drawstyle="steps-post",
            marker="o", markersize=4, color="tab:blue", label="Pareto front (best score for its latency)")
    teacher_ms = r["latency"]["network"][str(batch)]
    orig = _teacher_point(r)
    if orig is not None:
        ax.plot([teacher_ms], [orig], marker="*", markersize=13, color="black", linestyle="none",
                label=f"teacher (all original), measured {_ms(teacher_ms)} ms")
    _selection_marks(ax, r, batch, npos)
    ax.set_xlabel(f"network latency at batch {batch} (ms; predicted = teacher - originals + chosen blocks)")
    ax.set_ylabel("mean LANA score over the positions (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    plots._legend_below(fig, ax, ncols=2)
    return fig


def _teacher_point(r: dict) -> Optional[float]:
    """The teacher's mean LANA score (%): every position's original."""
    scores, orig = _scores_for_selection(r)
    vals = [scores.get((p, "original"), orig) for p in sorted({int(b["position"]) for b in r["latency"]["blocks"]})]
    return None if any(v is None for v in vals) else 100 * float(np.mean(vals))


def _selection_marks(ax, r: dict, batch: int, npos: int) -> None:
    rows = [s for s in r.get("selection", []) if int(s["batch"]) == batch]
    for i, s in enumerate(rows):
        y = 100 * s["score_sum"] / npos
        tag = f"selection {i + 1}" if len(rows) > 1 else "selection"
        ax.axvline(s["budget_ms"], color="tab:red", linestyle=":", linewidth=1.2,
                   label=f"{tag}: budget {_ms(s['budget_ms'])} ms")
        ax.plot([s["predicted_ms"]], [y], marker="D", markersize=8, color="tab:red", linestyle="none",
                label=f"{tag}: predicted {_ms(s['predicted_ms'])} ms")
        if s.get("measured_ms") is not None:
            ax.plot([s["measured_ms"]], [y], marker="D", markersize=8, markerfacecolor="none",
                    markeredgecolor="tab:red", markeredgewidth=1.5, linestyle="none",
                    label=f"{tag}: measured {_ms(s['measured_ms'])} ms")


def write_figures(out: Path, r: dict) -> Dict[str, str]:
    from .. import plots
    files = {}
    model = f"WRN-{r['preset']['depth']}-{r['preset']['width']}"
    if r.get("trials"):
        fig = plot_candidate_accuracy(r, f"{model}: test accuracy with one block substituted, per position "
                                         f"(baseline mean ± std as a band)")
        files["accuracy"] = plots.save_figure(fig, out / "accuracy-per-candidate.png").name
    lat = r.get("latency")
    if lat and lat.get("blocks") and r.get("lana"):
        for batch in sorted({int(s["batch"]) for s in r.get("selection", [])} or {lat["batch_sizes"][0]}):
            try:
                fig = plot_latency_tradeoff(r, batch, f"{model}: predicted latency against mean LANA score, "
                                                      f"batch {batch}")
            except (ValueError, KeyError) as exc:
                # a partial run (no score for an original, a batch not timed): the report says so
                files[f"tradeoff-{batch}-missing"] = f"{type(exc).__name__}: {exc}"
                continue
            files[f"tradeoff-{batch}"] = plots.save_figure(fig, out / f"latency-tradeoff-batch{batch}.png").name
    return files


# ---- sections -----------------------------------------------------------------------------------

def header_section(r: dict) -> List[str]:
    p, t = r["preset"], r.get("teacher", {})
    model = f"WRN-{p['depth']}-{p['width']}"
    minutes = t.get("train_minutes")
    lines = [f"# Operation substitution study: {model}, preset `{p['name']}`", "",
             f"- **Data**: {r.get('data', 'not recorded')}",
             f"- **Teacher**: {model}, {t.get('source', 'source not recorded')}; test accuracy "
             f"{_pct(t.get('accuracy')) or 'not recorded'} %"
             + (f", trained in {minutes:.1f} min" if minutes else ""),
             f"- **Positions**: {', '.join(_position_label(r, q) for q in positions(r))} (ours, with the paper's "
             f"position of the same role); **checkpoints**: {', '.join(map(str, checkpoints(r)))} fine-tuning "
             f"epochs (the paper's {', '.join(map(str, p.get('paper_checkpoints', [])))})",
             f"- **Images**: {_count(p.get('train_images'))} training, {_count(p.get('test_images'))} test; "
             f"baseline seeds {', '.join(map(str, p.get('baseline_seeds', [])))}",
             f"- **LANA** (Adam on the normalised MSE): {_kv(p.get('lana'))}",
             f"- **Fine-tuning** (every trial): {_kv(p.get('finetune'))}", "",
             "## What was scaled against the paper", "", p.get("scaled", "not recorded"), ""]
    return lines


def candidates_section(r: dict) -> List[str]:
    rows = [[str(paper_number(n) or DASH), n, _describe(r, n)] for n in candidates(r)]
    return ["## The candidates", ""] + _table(["paper no.", "name", "what it is ('expand' defined)"], rows)


def _describe(r: dict, name: str) -> str:
    given = r.get("candidate_descriptions", {}).get(name)
    if given:
        return given
    try:   # the registry's own line, when the registry module is there (a user's op may not be)
        from .candidates import describe_candidate
        return describe_candidate(name)
    except Exception:
        return "(no description recorded)"


def accuracy_section(r: dict, files: dict) -> List[str]:
    lines = []
    for k, e in enumerate(checkpoints(r)):
        pe = dict(zip(checkpoints(r), r["preset"].get("paper_checkpoints", []))).get(e)
        lines += [f"## Table {k + 2}: test accuracy (%) after {_epochs(e)} of fine-tuning", "",
                  "Ours: rows are positions, columns candidates; the baseline (candidate 1: the teacher fine-tuned "
                  f"the same way) as mean ± sample std over its seeds; '{DASH}' not available at that position "
                  "(shape change); 'not run' when a trial has no result yet.", ""]
        lines += accuracy_table(r, e)
        if pe in PAPER_TABLES:
            lines += [f"The paper's Table {k + 2} ({pe} epochs, WRN-40-2, full CIFAR-10):", ""] + paper_table(pe)
    if "accuracy" in files:
        lines += [f"![accuracy per candidate]({files['accuracy']})", ""]
    return lines


def costs_section(r: dict) -> List[str]:
    params, macs = _by_key(r.get("costs", []), "params"), _by_key(r.get("costs", []), "macs")
    score, loss = _by_key(r.get("lana", []), "score"), _by_key(r.get("lana", []), "loss")
    return (["## Cost of each candidate at each position", "", "Parameters (per block):", ""]
            + _matrix(r, lambda p, n: _or_blank(params, (p, n), lambda v: f"{v:,}"))
            + ["Multiply-adds per image (per block):", ""]
            + _matrix(r, lambda p, n: _or_blank(macs, (p, n), lambda v: f"{v:,}"))
            + ["## LANA initialisation", "",
               "LANA score: test accuracy (%) of the teacher with only that block swapped for the distilled "
               "candidate, before any fine-tuning:", ""]
            + _matrix(r, lambda p, n: _or_blank(score, (p, n), lambda v: f"{100 * v:.2f}"))
            + ["Final distillation loss (normalised MSE ||f(x) - y||^2 / ||y||^2 on the block's output):", ""]
            + _matrix(r, lambda p, n: _or_blank(loss, (p, n), lambda v: f"{v:.4f}")))


def latency_section(r: dict, files: dict) -> List[str]:
    lat = r.get("latency")
    if not lat or not lat.get("blocks"):
        return ["## Latency", "", "Not measured in this run.", ""]
    ms = {(int(b["position"]), b["candidate"]): b["ms"] for b in lat["blocks"]}
    lines = ["## Latency (pyann forward, this CPU)", "",
             f"Median of {_rounds(lat)} after {lat.get('warmup', '?')} warm-up "
             f"round(s), every item timed once per round in rotated order; BLAS threads {lat.get('threads', '?')} "
             f"({', '.join(lat.get('blas', [])) or 'library not recorded'}), pyann kernel threads "
             f"{lat.get('kernel_threads', '?')}. Eval mode, random input of the block's input shape.", ""]
    for b in lat["batch_sizes"]:
        lines += [f"Block latency (ms) at batch {b}; the teacher end to end: {_ms(lat['network'][str(b)])} ms:", ""]
        lines += _matrix(r, lambda p, n: _ms(ms[(p, n)][str(b)]) if (p, n) in ms else "not timed")
        lines += _additivity(lat, ms, b)
    return lines + selection_section(r, files)


def _additivity(lat: dict, ms: dict, batch: int) -> List[str]:
    """The selection's latency model subtracts the original blocks from the network's time: say
    what share of it they are, and flag a table where they sum to more than the whole network
    (timing noise; then predicted latencies can go below zero)."""
    net = lat["network"][str(batch)]
    orig = sum(v[str(batch)] for (p, n), v in ms.items() if n == "original")
    share = 100 * orig / net if net else float("nan")
    line = (f"The original blocks at the studied positions take {_ms(orig)} ms, {share:.0f} % of the teacher's "
            f"{_ms(net)} ms at batch {batch}; the rest (stem, other blocks, head) is the same in every choice.")
    if orig > net:
        line += (" **This table is inconsistent**: timed alone, three blocks took longer than the whole network, "
                 "which only timing noise (a busy machine, too few rounds) explains; its predictions are not to be "
                 "trusted.")
    return [line, ""]


def _rounds(lat: dict) -> str:
    rep = lat.get("repeats")
    if isinstance(rep, dict):
        return ", ".join(f"{n} rounds at batch {b}" for b, n in rep.items())
    return f"{rep} rounds"


def _range_lines(r: dict) -> List[str]:
    """Per batch: the fastest network the candidates allow and the teacher, the budget's range."""
    from .selection import fastest_ms
    scores, orig = _scores_for_selection(r)
    lines = []
    for b in r["latency"]["batch_sizes"]:
        try:
            fast = fastest_ms(r["latency"], b, scores, original_score=orig)
        except (ValueError, KeyError):
            continue
        lines.append(f"At batch {b} the predicted latency ranges from {_ms(fast)} ms (the fastest scored candidate at "
                     f"every position) to the teacher's {_ms(r['latency']['network'][str(b)])} ms.")
    return lines + [""] if lines else []


def selection_section(r: dict, files: dict) -> List[str]:
    rows, lat, base = [], r["latency"], baseline_stats(r)
    for s in r.get("selection", []):
        teacher = lat["network"][str(s["batch"])]
        choice = ", ".join(f"{p}: {n}" for p, n in sorted(s["choice"].items(), key=lambda kv: int(kv[0])))
        acc = s.get("accuracy") or {}
        accs = "; ".join(f"{e} ep: {_pct(a)}" + (f" (baseline {_pct(base[int(e)][0])})" if int(e) in base else "")
                         for e, a in acc.items()) or "not fine-tuned"
        measured = s.get("measured_ms")
        rows.append([str(s["batch"]), f"{s['budget_ms']:.2f} ({100 * s['budget_ms'] / teacher:.0f} % of {teacher:.2f})",
                     choice, f"{s['predicted_ms']:.2f}", DASH if measured is None else f"{measured:.2f}",
                     DASH if measured is None else f"{100 * (measured - s['predicted_ms']) / s['predicted_ms']:+.1f} %",
                     f"{100 * s['score_sum'] / max(1, len(s['choice'])):.2f}", accs])
    lines = ["## Latency-budget selection", "",
             "One candidate per position maximising the summed LANA scores with predicted latency = teacher - "
             "sum(original blocks) + sum(chosen blocks) <= budget: an exact multiple-choice knapsack "
             "(pyann.substitution.selection, Pareto-front dynamic programming over positions). The chosen network "
             "is then built, timed end to end, and fine-tuned like every trial.", ""] + _range_lines(r)
    if not rows:
        return lines + ["No selection in this run.", ""]
    notes = [f"Budget at batch {s['batch']}: {s['budget']}." for s in r.get("selection", []) if s.get("budget")]
    notes += [f"At batch {s['batch']} the teacher, timed together with the selected network (round-robin), took "
              f"{_ms(s['teacher_measured_ms'])} ms: measured speed-up {s['teacher_measured_ms'] / s['measured_ms']:.2f}x, "
              f"predicted {lat['network'][str(s['batch'])] / s['predicted_ms']:.2f}x."
              for s in r.get("selection", []) if s.get("teacher_measured_ms") and s.get("measured_ms")]
    lines += _table(["batch", "budget ms (% of teacher ms)", "choice", "predicted ms", "measured ms",
                     "measured vs predicted", "mean LANA score (%)", "test accuracy (%) after fine-tuning"], rows)
    lines += [n for note in notes for n in (note, "")]
    for key, name in sorted(files.items()):
        if key.endswith("-missing"):
            lines += [f"(No trade-off figure at batch {key.split('-')[1]}: {name}.)", ""]
        elif key.startswith("tradeoff-"):
            lines += [f"Every choice of one candidate per position at batch {key[9:]} (grey), its Pareto front "
                      "(blue: the best mean LANA score reachable within each latency), the teacher (star) and the "
                      "selection: its budget (dotted), predicted (filled) and measured (hollow) latency:", "",
                      f"![latency trade-off, batch {key[9:]}]({name})", ""]
    return lines


def timing_section(r: dict) -> List[str]:
    timing = r.get("timing", {})
    prov = r.get("provenance", {})
    rows = [[k.replace("_minutes", "").replace("_", " "), f"{v:.1f}" if isinstance(v, (int, float)) else str(v)]
            for k, v in timing.items()]
    lines = ["## Timing", ""] + (_table(["phase", "minutes"], rows) if rows else ["Not recorded.", ""])
    if prov:
        cpu = prov.get("machine", {}).get("cpu", "?")
        lines += [f"Run by pyann {prov.get('pyann_version', '?')} at commit {str(prov.get('git_commit', '?'))[:12]}"
                  f"{' (dirty)' if prov.get('git_dirty') else ''} on {cpu}, {prov.get('created_utc', '?')}.", ""]
    return lines


def report_text(r: dict, files: Optional[dict] = None) -> str:
    files = files or {}
    lines = (header_section(r) + candidates_section(r) + accuracy_section(r, files) + question_section(r)
             + costs_section(r) + latency_section(r, files) + timing_section(r))
    return "\n".join(lines).rstrip() + "\n"


def write_report(out) -> None:
    """Read <out>/results.json; write <out>/report.md and its PNG figures beside it."""
    out = Path(out)
    r = read_json(out / "results.json")
    files = write_figures(out, r)
    write_text(out / "report.md", report_text(r, files))
