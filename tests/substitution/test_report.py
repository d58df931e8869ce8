"""report.md and figures of a substitution study (pyann.substitution.report) from a synthetic
results.json shaped like a cpu-preset run: the tables' numbers, '–' cells, the correlations, the
noise counts, the selection, and PNGs that exist and are not blank."""
import itertools
import json

import numpy as np
import pytest

from pyann import plots
from pyann.substitution import report as R
from pyann.substitution.correlation import kendall_tau_b, spearman_rho
from pyann.substitution.selection import select

POS = [1, 3, 6]
NAMES = list(R.PAPER_CANDIDATES)
# (pos, name) -> (accuracy after 3 epochs, after 6), LANA score, loss; identity only at 6
TRIALS = {
    (1, "inverted_residual"): (0.801, 0.822, 0.52, 0.41), (1, "conv_bn_e1"): (0.835, 0.851, 0.71, 0.22),
    (1, "conv_bn_e2"): (0.840, 0.849, 0.74, 0.18), (1, "basic_e2"): (0.829, 0.845, 0.69, 0.25),
    (1, "bottleneck_e2"): (0.818, 0.838, 0.60, 0.31),
    (3, "inverted_residual"): (0.770, 0.801, 0.33, 0.55), (3, "conv_bn_e1"): (0.790, 0.815, 0.45, 0.40),
    (3, "conv_bn_e2"): (0.805, 0.827, 0.58, 0.33), (3, "basic_e2"): (0.826, 0.844, 0.72, 0.20),
    (3, "bottleneck_e2"): (0.822, 0.841, 0.70, 0.21),
    (6, "identity"): (0.846, 0.853, 0.80, 0.09), (6, "inverted_residual"): (0.851, 0.858, 0.84, 0.05),
    (6, "conv_bn_e1"): (0.853, 0.860, 0.85, 0.04), (6, "conv_bn_e2"): (0.852, 0.861, 0.85, 0.04),
    (6, "basic_e2"): (0.854, 0.862, 0.86, 0.03), (6, "bottleneck_e2"): (0.855, 0.865, 0.86, 0.03),
}
BASELINE = {0: (0.848, 0.860), 1: (0.852, 0.858), 2: (0.850, 0.862)}
TEACHER_ACC = 0.861
LAT = {1: {"original": (1.23, 517.8), "inverted_residual": (6.19, 778.4), "conv_bn_e1": (0.52, 123.5),
           "conv_bn_e2": (1.06, 274.0), "basic_e2": (6.13, 1244.4), "bottleneck_e2": (0.93, 281.5)},
       3: {"original": (0.88, 296.5), "inverted_residual": (2.82, 786.6), "conv_bn_e1": (0.42, 99.8),
           "conv_bn_e2": (0.66, 167.4), "basic_e2": (1.43, 359.0), "bottleneck_e2": (0.77, 228.9)},
       6: {"original": (0.83, 155.2), "inverted_residual": (5.56, 374.1), "conv_bn_e1": (0.41, 86.8),
           "conv_bn_e2": (0.71, 134.4), "basic_e2": (5.30, 294.9), "bottleneck_e2": (0.46, 78.9),
           "identity": (0.002, 0.003)}}


def synthetic_results() -> dict:
    avail = [(p, n) for p in POS for n in NAMES if n in LAT[p]]
    latency = {"batch_sizes": [1, 128], "repeats": {"1": 25, "128": 7}, "warmup": 1, "threads": 2,
               "kernel_threads": 2, "blas": ["openblas 0.3.31 (2 threads)"],
               "blocks": [{"position": p, "candidate": n, "ms": {"1": LAT[p][n][0], "128": LAT[p][n][1]}}
                          for p, n in avail],
               "network": {"1": 14.64, "128": 2084.5}}
    lana = [{"position": p, "candidate": n, "loss": TRIALS[(p, n)][3] if n != "original" else 0.0,
             "score": TRIALS[(p, n)][2] if n != "original" else TEACHER_ACC, "seconds": 3.0} for p, n in avail]
    trials = [{"id": f"baseline-s{s}", "replacements": {}, "seed": s, "accuracy": {"3": a, "6": b}, "seconds": 60}
              for s, (a, b) in BASELINE.items()]
    trials += [{"id": f"p{p}-{n}-s0", "replacements": {str(p): n}, "seed": 0,
                "accuracy": {"3": v[0], "6": v[1]}, "seconds": 60} for (p, n), v in TRIALS.items()]
    scores = {(p, n): row["score"] for p, n, row in ((r["position"], r["candidate"], r) for r in lana)}
    sel = select(latency, scores, 0.8 * 2084.5, 128)
    trials.append({"id": "selection-b128", "replacements": {str(p): n for p, n in sel.choice.items() if n != "original"},
                   "seed": 0, "accuracy": {"3": 0.83, "6": 0.845}, "seconds": 90})
    return {
        "preset": {"name": "cpu", "depth": 16, "width": 2, "positions": POS, "paper_positions": [1, 7, 18],
                   "candidates": NAMES, "checkpoints": [3, 6], "paper_checkpoints": [25, 50],
                   "train_images": 8000, "test_images": 2000, "baseline_seeds": [0, 1, 2],
                   "lana": {"steps": 200, "batch_size": 64, "lr": 0.001}, "finetune": {"optimizer": "SGD"},
                   "scaled": "WRN-16-2 instead of WRN-40-2; 8,000 training images; 3 and 6 epochs."},
        "data": "CIFAR-10 (JPEG q75-derived copy, not the official files)",
        "teacher": {"source": "trained-model cache: /cache/models/wrn16_2-cifar10-e8-s0", "accuracy": TEACHER_ACC,
                    "train_minutes": 41.5, "config": {}},
        "costs": [{"position": p, "candidate": n, "params": 1000 * (i + 1) * p, "macs": 250000 * (i + 1)}
                  for i, (p, n) in enumerate(avail)],
        "lana": lana,
        "trials": trials,
        "latency": latency,
        "selection": [{"batch": 128, "budget_ms": 0.8 * 2084.5, "choice": {str(p): n for p, n in sel.choice.items()},
                       "predicted_ms": sel.predicted_ms, "measured_ms": sel.predicted_ms * 1.04,
                       "score_sum": sel.score_sum, "trial": "selection-b128", "accuracy": {"3": 0.83, "6": 0.845}}],
        "timing": {"teacher_minutes": 0.0, "lana_minutes": 3.1, "scores_minutes": 1.2, "trials_minutes": 70.3,
                   "latency_minutes": 1.4, "total_minutes": 76.0},
        "provenance": {"pyann_version": "0.x", "git_commit": "abc123", "git_dirty": False,
                       "machine": {"cpu": "test cpu"}, "created_utc": "2026-11-30T02:00:00Z"},
    }


@pytest.fixture
def written(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(synthetic_results()))
    R.write_report(tmp_path)
    return tmp_path, (tmp_path / "report.md").read_text()


def _table_after(text, heading):
    """The first Markdown table after the line starting with `heading`, as rows of cells."""
    lines = text.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(heading))
    while not lines[i].startswith("|"):
        i += 1
    rows = []
    while i < len(lines) and lines[i].startswith("|"):
        rows.append([c.strip() for c in lines[i].strip("|").split("|")])
        i += 1
    return rows[0], rows[2:]


def test_accuracy_tables_numbers_dashes_and_baseline(written):
    _, text = written
    for k, e in ((0, 3), (1, 6)):
        header, rows = _table_after(text, f"## Table {k + 2}: test accuracy (%) after {e} epochs of fine-tuning")
        assert header == ["position"] + [f"{i + 1} {n}" for i, n in enumerate(NAMES)]
        assert [r[0] for r in rows] == ["1 (paper 1)", "3 (paper 7)", "6 (paper 18)"]
        base = [BASELINE[s][k] for s in BASELINE]
        assert rows[0][1] == f"{100 * np.mean(base):.2f} ± {100 * np.std(base, ddof=1):.2f} (3 seeds)"
        assert rows[1][1] == rows[2][1] == ""                  # the baseline once, as in the paper
        assert rows[0][2] == rows[1][2] == R.DASH              # identity: shape change at 1 and 3
        assert rows[2][2] == f"{100 * TRIALS[(6, 'identity')][k]:.2f}"
        assert rows[1][6] == f"{100 * TRIALS[(3, 'basic_e2')][k]:.2f}"
    assert "| 3 (paper 7) |  | – | 77.00 | 79.00 | 80.50 | 82.60 | 82.20 |" in text


def test_paper_tables_beside_ours(written):
    _, text = written
    header, rows = _table_after(text, "The paper's Table 3 (50 epochs")
    assert rows[0][:4] == ["1", "96.12 ± 0.06 (3 runs)", R.DASH, "93.28"]
    assert rows[2] == ["18", "", "95.93", "96.19", "96.32", "96.41", "96.34", "96.52"]
    _, rows = _table_after(text, "The paper's Table 2 (25 epochs")
    assert rows[1] == ["7", "", R.DASH, "90.64", "91.98", "92.12", "94.25", "94.40"]


def test_correlations_match_the_data(written):
    _, text = written
    header, rows = _table_after(text, "Accuracy after 6 epochs of fine-tuning:")
    for row, pos in zip(rows, POS):
        names = [n for n in NAMES[1:] if n in LAT[pos]]          # the original left out
        acc = [TRIALS[(pos, n)][1] for n in names]
        score = [TRIALS[(pos, n)][2] for n in names]
        loss = [TRIALS[(pos, n)][3] for n in names]
        assert row[1] == str(len(names))
        assert row[2] == f"{kendall_tau_b(score, acc):+.2f}" and row[3] == f"{spearman_rho(score, acc):+.2f}"
        assert row[5] == f"{kendall_tau_b(loss, acc):+.2f}" and row[6] == f"{spearman_rho(loss, acc):+.2f}"
    assert rows[-1][0] == "all positions pooled" and rows[-1][1] == "16"


def test_noise_counts_by_hand():
    r = synthetic_results()
    std6 = np.std([b for _, b in BASELINE.values()], ddof=1)        # 0.002
    c = R.noise_counts(r, 6, 6)
    accs = [np.mean([b for _, b in BASELINE.values()])] + [TRIALS[(6, n)][1] for n in NAMES[1:]]
    above = [(i, j) for i, j in itertools.combinations(range(7), 2) if abs(accs[i] - accs[j]) > 2 * std6]
    assert c["pairs"] == 21 and c["above"] == len(above) and c["threshold"] == pytest.approx(2 * std6)
    # single-seed baseline: no noise measured, and the report says so
    r["trials"] = [t for t in r["trials"] if t["id"] not in ("baseline-s1", "baseline-s2")]
    assert R.noise_counts(r, 6, 6) is None
    assert "fewer than 2 seeds" in R.report_text(r)


def test_not_run_and_unavailable_cells():
    r = synthetic_results()
    r["trials"] = [t for t in r["trials"] if t["id"] != "p3-conv_bn_e2-s0"]
    assert R.accuracy_cell(r, 3, "conv_bn_e2", 6, False) == "not run"
    assert R.accuracy_cell(r, 3, "identity", 6, False) == R.DASH
    assert R.accuracy_cell(r, 1, "original", 6, False) == ""


def test_costs_lana_latency_selection_and_header(written):
    out, text = written
    _, rows = _table_after(text, "Multiply-adds per image")
    assert rows[0][1] == "250,000" and rows[0][2] == R.DASH
    _, rows = _table_after(text, "LANA score:")
    assert rows[2][2] == "80.00"
    _, rows = _table_after(text, "Block latency (ms) at batch 128")
    assert rows[2][7] == "78.90" and rows[2][2] == "0.003" and rows[0][6] == "1244"
    header, rows = _table_after(text, "## Latency-budget selection")
    assert rows[0][0] == "128" and rows[0][1].startswith("1667.60 (80 % of 2084.50)")
    assert "+4.0 %" in rows[0][5] and "6 ep: 84.50 (baseline 86.00)" in rows[0][7]
    for needle in ("JPEG q75-derived copy", "trained-model cache", "86.10 %", "WRN-16-2 instead of WRN-40-2",
                   "## Timing", "| total | 76.0 |", "2 x the baseline's seed standard deviation",
                   "openblas", "commit abc123"):
        assert needle in text, needle


def test_pngs_exist_and_are_not_blank(written):
    out, text = written
    from matplotlib.image import imread
    for name in ("accuracy-per-candidate.png", "latency-tradeoff-batch128.png"):
        assert f"]({name})" in text
        img = imread(out / name)
        assert img.shape[0] > 300 and img.shape[1] > 500
        assert img[..., :3].std() > 0.05                      # not one flat colour


def test_figure_legends_keep_off_the_axes():
    r = synthetic_results()
    for fig in (R.plot_candidate_accuracy(r, "t"), R.plot_latency_tradeoff(r, 128, "t")):
        renderer = plots._renderer(fig)
        found = plots.legends(fig)
        assert found
        for legend in found:
            box = legend.get_window_extent(renderer)
            assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)
            assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 + 1 and fig.bbox.y0 <= box.y0 + 1


def test_tick_labels_do_not_overlap():
    # slanted labels anchored at their right end on one baseline are parallel strips: they stay
    # apart when the tick spacing times sin(angle) exceeds a line of text's height
    fig = R.plot_candidate_accuracy(synthetic_results(), "t")
    renderer = plots._renderer(fig)
    for ax in fig.axes:
        labels = [t for t in ax.get_xticklabels() if t.get_text()]
        assert labels and all(t.get_rotation() == R.TICK_ROTATION for t in labels)
        xs = np.sort([ax.transData.transform((x, 0))[0] for x in ax.get_xticks()])
        height = max(renderer.points_to_pixels(t.get_fontsize()) * 1.2 for t in labels)
        assert np.diff(xs).min() * np.sin(np.radians(R.TICK_ROTATION)) > height


def test_a_partial_run_still_gives_a_report(tmp_path):
    """Only the preset, the data and the teacher (the study stopped before any trial), then the
    trials without latency: the report says what is missing instead of failing."""
    r = synthetic_results()
    bare = {k: r[k] for k in ("preset", "data", "teacher")}
    (tmp_path / "results.json").write_text(json.dumps(bare))
    R.write_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "| 1 (paper 1) | not run |" in text and "Not measured in this run." in text
    assert "JPEG q75-derived copy" in text and not list(tmp_path.glob("*.png"))
    some = dict(bare, trials=[t for t in r["trials"] if t["id"] in ("baseline-s0", "p1-conv_bn_e1-s0")],
                lana=r["lana"], costs=r["costs"])
    (tmp_path / "results.json").write_text(json.dumps(some))
    R.write_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "84.80 (1 seed)" in text and "83.50" in text and "fewer than 2 seeds" in text
    assert (tmp_path / "accuracy-per-candidate.png").exists()


def test_latency_notes_additivity_budget_and_measured_speedup():
    r = synthetic_results()
    text = R.report_text(r)
    # 517.8 + 296.5 + 155.2 = 969.5 of 2084.5 ms
    assert "take 970 ms, 47 % of the teacher's 2084 ms at batch 128" in text and "inconsistent" not in text
    r["selection"][0].update(budget="0.8 x the teacher's 2084 ms", teacher_measured_ms=2100.0)
    text = R.report_text(r)
    assert "Budget at batch 128: 0.8 x the teacher's 2084 ms." in text
    sel = r["selection"][0]
    assert f"measured speed-up {2100.0 / sel['measured_ms']:.2f}x, predicted {2084.5 / sel['predicted_ms']:.2f}x" in text
    r["latency"]["network"]["1"] = 2.0          # the three originals alone sum to 2.94 ms
    assert "**This table is inconsistent**" in R.report_text(r)


def test_the_papers_findings_checked():
    text = R.report_text(synthetic_results())
    header, rows = _table_after(text, "The paper's findings checked after 6 epochs")
    # std of (86.0, 85.8, 86.2) = 0.2 points; at 6: 4 and 5 at 86.0 and 86.1, 0.5 std apart;
    # above 86.0: 86.1, 86.2, 86.5; by more than 0.4: bottleneck_e2 (86.5) only
    assert rows[2] == ["6 (paper 18)", "0.10 (0.5 std)", "3 of 6 (conv_bn_e2, basic_e2, bottleneck_e2)",
                       "1 (bottleneck_e2)"]
    assert rows[0][1] == "0.20 (1.0 std)" and rows[0][2] == "0 of 5" and rows[0][3] == "0"


def test_every_table_row_has_its_header_s_cell_count(written):
    _, text = written
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and (i == 0 or not lines[i - 1].startswith("|")):
            width = line.count("|")
            k = i
            while k < len(lines) and lines[k].startswith("|"):
                assert lines[k].count("|") == width, f"table row {lines[k]!r} under header {line!r}"
                k += 1


def test_tradeoff_draws_the_front_alone_when_the_choices_are_too_many(monkeypatch):
    r = synthetic_results()
    every, front = R.tradeoff_points(r, 128)
    assert len(every) == 6 * 6 * 7 and front[0].predicted_ms == pytest.approx(min(x for x, _ in every))
    monkeypatch.setattr(R, "MAX_CLOUD", 100)
    every, front2 = R.tradeoff_points(r, 128)
    assert every == [] and [f.choice for f in front2] == [f.choice for f in front]
    assert plots.legends(R.plot_latency_tradeoff(r, 128, "t"))
