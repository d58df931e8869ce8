"""Reports of short runs: no empty tables, no sentences with blanks; what could not be computed
is said, with the reason (a 1- and a 2-epoch study on tiny synthetic digits)."""
import re

import numpy as np
import pytest

from pyann.relu_prediction import report
from pyann.relu_prediction.study import combine_studies, run_study


def _digits(n_train=300, n_test=150, seed=0):
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 10, n)
        x = np.zeros((n, 1, 28, 28), np.uint8)
        for i, label in enumerate(y):
            x[i, 0, 2 + 2 * label:4 + 2 * label, 4:24] = 255
            x[i, 0][rng.random((28, 28)) < 0.05] = 90
        return x, y.astype(np.int64)
    return make(n_train), make(n_test)


def _tables(markdown: str):
    """Each markdown table as (header line, [body lines])."""
    tables, lines = [], markdown.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|\s*:?-", lines[i + 1]):
            body, j = [], i + 2
            while j < len(lines) and lines[j].startswith("|"):
                body.append(lines[j])
                j += 1
            tables.append((lines[i], body))
            i = j
        else:
            i += 1
    return tables


BLANKS = [
    re.compile(r"\s\s%"),               # "means  %": a list that came out empty
    re.compile(r"\*\*–\*\*"),           # a yes/no that could not be decided, printed as a dash
    re.compile(r"spread – points"),
    re.compile(r": \n|: $", re.M),      # a sentence that stops at its colon
    re.compile(r"\bNone\b"),
    re.compile(r"\bnan\b", re.I),
]


def _check_clean(markdown: str):
    for header, body in _tables(markdown):
        assert body, f"empty table: {header}"
        for row in body:
            cells = [c.strip() for c in row.strip("|").split("|")][1:]
            assert any(c not in ("–", "-", "") for c in cells), f"a row of blanks: {row}"
    prose = [line for line in markdown.splitlines() if not line.startswith("|")]
    for pattern in BLANKS:
        bad = [line for line in prose if pattern.search(line + "\n")]
        assert not bad, f"{pattern.pattern!r} in {bad}"


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    data = _digits()
    out = {}
    for epochs in (1, 2):
        folder = tmp_path_factory.mktemp(f"study{epochs}")
        out[epochs] = (run_study(data, epochs=epochs, out_dir=folder, probe_size=50, verbose=False, progress=False,
                                 sweep=False, save_states=False), folder)
    return out


@pytest.mark.parametrize("epochs", [1, 2])
def test_short_run_report_has_no_empty_table_or_blank(studies, epochs):
    results, folder = studies[epochs]
    text = (folder / "report.md").read_text()
    _check_clean(text)
    assert "Not comparable with the paper: its Table 1 reports epochs 4, 8, 12, 16 and 20" in text
    assert f"this run trained {epochs} epoch" in text
    assert "## Table 1" in text and "| epoch |" not in text.split("## Table 1")[1].split("##")[0]
    assert "neither statement could be checked" in text
    assert "Not computed: skipped" in text                      # the sweep, asked not to run


def test_one_epoch_run_says_why_figure2_is_missing(studies):
    results, folder = studies[1]
    text = (folder / "report.md").read_text()
    fig2 = text.split("## Figure 2")[1].split("## Table 3")[0]
    assert "Not computed" in fig2 and "needs at least 2 epochs" in fig2
    assert "figure2_agreement.png" not in text and not (folder / "figure2_agreement.png").exists()


def test_terminal_summary_of_short_runs(studies):
    for epochs, (results, _) in studies.items():
        text = report.terminal_summary(results)
        assert "Table 1: not comparable" in text and f"trained {epochs}" in text
        assert not re.search(r":\s*$", text, re.M)                # no line ends at its colon
    assert "Figure 2: not computed" in report.terminal_summary(studies[1][0])
    assert "Figure 2, P(state_e" in report.terminal_summary(studies[2][0])


def test_partial_table1_names_the_epochs_not_reached(studies):
    results = dict(studies[2][0])
    t1 = dict(results["table1"], epochs=[4], accuracy_pct=[90.0], paper_pct=None, diff_pct=None)
    text = report.render_report(dict(results, table1=t1))
    _check_clean(text)
    assert "Epochs 8, 12, 16 and 20 of the paper's table were not reached" in text
    assert "has no values for" in text


def test_combined_report_of_short_runs(studies, tmp_path):
    combined = combine_studies([studies[1][1], studies[2][1]], tmp_path)
    text = (tmp_path / "report.md").read_text()
    _check_clean(text)
    assert "reached none of them" in text
    assert combined["provenance"]["pyann_version"]
