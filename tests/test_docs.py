"""The project's own documentation: the README links only inside the repository, names only
modules that exist, summarises the three papers with the numbers the code compares against, and
its "For PyTorch users" section states what the code does."""
import importlib
import re
from pathlib import Path

import numpy as np
import pytest

import pyann

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _anchor(heading: str) -> str:   # GitHub's rule: lower case, punctuation dropped, spaces to dashes
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_links_stay_inside_the_repository():
    headings = {_anchor(h) for h in re.findall(r"^#+ (.+)$", README, re.M)}
    for target in re.findall(r"\]\(([^)\s]+)\)", README):
        if target.startswith(("http://", "https://")):
            continue
        if target.startswith("#"):
            assert target[1:] in headings, f"README links to a missing section {target}"
            continue
        path = (ROOT / target.split("#")[0]).resolve()
        assert ROOT in path.parents or path == ROOT, f"README links outside the repository: {target}"
        assert path.exists(), f"README links to a missing file: {target}"
    assert "../shared/papers" not in README   # the summaries live in the repository now


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("text", [README, pyann.__doc__], ids=["README", "package docstring"])
def test_every_named_pyann_module_exists(text):
    named = set(re.findall(r"\bpyann(?:\.[A-Za-z_]\w*)+", text))
    assert named
    missing = sorted(n for n in named if not _resolves(n.rstrip(".")))
    assert not missing, f"documentation names what does not exist: {missing}"


def test_readme_summarises_each_paper_with_its_numbers():
    from pyann.relu_prediction import paper
    brief = _section("The three papers in brief")
    for heading in ("**1. ReLU prediction**", "**2. Connection pruning**", "**3. Operation substitution**"):
        assert heading in brief
    for dataset, table in paper.TABLE1_ACCURACY.items():
        assert all(f"{v:.2f}" in brief for v in table.values()), dataset
    assert all(f"{v:.2f}" in brief for v in paper.TABLE3_ACTIVE_SHARE["mnist"])
    for number in ("45.73 s", "15.26 s", "97.4 %", "61.8 %", "34,266", "4,494", "0.285", "0.154", "0.112",
                   "96.19 ± 0.16", "96.12 ± 0.06", "90.64", "96.52"):
        assert number in brief, number
    from pyann.relu_prediction.sweep import paper_point
    assert f"{100 * paper_point()['mac_share']:.1f} %" in brief


def test_for_pytorch_users_states_what_the_code_does():
    from pyann import nn, ops
    from pyann.optim import SGD, CosineLR
    text = _section("For PyTorch users")
    assert "overwritten, not accumulated" in text and "(in, out)" in text and "learning rate, not an optimiser" in text
    rng = np.random.default_rng(0)
    model = nn.build("fcn1", rng=0)
    lin = next(m for m in model.layers if isinstance(m, nn.Linear))
    assert lin.weight.data.shape == (784, 10)                             # (in, out)
    x = rng.random((4, 784)).astype(np.float32)
    model(x)
    model.backward(np.ones((4, 10), np.float32))
    model(x)
    model.backward(np.ones((4, 10), np.float32))
    once = nn.build("fcn1", rng=0)
    once(x)
    once.backward(np.ones((4, 10), np.float32))
    np.testing.assert_array_equal(lin.weight.grad, next(m for m in once.layers if isinstance(m, nn.Linear)).weight.grad)
    sched = CosineLR(0.05, 20)
    assert sched(0.0) == pytest.approx(0.05) and sched(10.0) == pytest.approx(0.025)   # a function of the epoch
    assert sched(2.5) != sched(2.0)                                                   # of a fractional epoch
    opt = SGD(model.parameters(), lr=0.1, weight_decay=0.5)
    for p in model.parameters():
        p.grad[...] = 0
    before = {id(p): p.data.copy() for p in model.parameters()}
    opt.step()
    for p in model.parameters():
        changed = not np.array_equal(before[id(p)], p.data)
        assert changed == (p.data.ndim > 1), "weight decay: weights only, biases skipped"
    logits = rng.random((4, 10))
    _, cache = ops.softmax_cross_entropy_forward(logits, np.arange(4))
    g = ops.softmax_cross_entropy_backward(cache)
    assert abs(g.sum(axis=1)).max() < 1e-6 and abs(g).max() <= 1 / 4 + 1e-9   # already divided by the batch
