"""Latency-aware selection (pyann.substitution.selection): the Pareto-front DP against brute-force
enumeration on random instances (Hypothesis; HYPOTHESIS_PROFILE as in test_kernels_properties.py),
and the hand-checked cases and errors."""
import itertools
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyann.substitution.selection import Selection, fastest_ms, pareto_front, select

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("default", max_examples=150, **_COMMON)
settings.register_profile("ci", max_examples=150, derandomize=True, **_COMMON)
settings.register_profile("sanitize", max_examples=25, derandomize=True, **_COMMON)
settings.register_profile("deep", max_examples=3000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))

NAMES = ["original", "identity", "inverted_residual", "conv_bn_e1", "conv_bn_e2", "basic_e2", "bottleneck_e2"]


def latency_section(blocks, network):
    """results.json's latency shape (string keys, as read back from JSON) at batch 1."""
    return {"batch_sizes": [1], "repeats": 3,
            "blocks": [{"position": p, "candidate": n, "ms": {"1": t}} for (p, n), t in blocks.items()],
            "network": {"1": network}}


# a value drawn from a short list half the time, so ties in ms and in score are common
_value = st.one_of(st.sampled_from([0.5, 1.0, 2.0]), st.floats(0.01, 10.0, allow_nan=False))


@st.composite
def instances(draw):
    positions = draw(st.lists(st.integers(1, 40), min_size=1, max_size=4, unique=True))
    blocks, scores = {}, {}
    for p in positions:
        names = ["original"] + draw(st.lists(st.sampled_from(NAMES[1:]), max_size=5, unique=True))
        for n in names:
            blocks[(p, n)] = draw(_value)
            if n == "original" or draw(st.integers(0, 5)):      # now and then a candidate has no score
                scores[(p, n)] = draw(st.sampled_from([0.1, 0.5, 0.9]) | st.floats(0, 1))
    network = sum(t for (p, n), t in blocks.items() if n == "original") + draw(st.floats(0, 20))
    return blocks, scores, network


def brute_force(blocks, scores, network):
    """Every complete choice: (predicted ms, summed score, choice)."""
    positions = sorted({p for p, _ in blocks})
    offset = network - sum(blocks[(p, "original")] for p in positions)
    options = [[n for (q, n) in blocks if q == p and (q, n) in scores] for p in positions]
    for combo in itertools.product(*options):
        choice = dict(zip(positions, combo))
        yield (offset + sum(blocks[(p, n)] for p, n in choice.items()),
               sum(scores[(p, n)] for p, n in choice.items()), choice)


@given(instances(), st.floats(0, 1), st.booleans())
def test_select_matches_brute_force(instance, where, exact_budget):
    blocks, scores, network = instance
    latency = latency_section(blocks, network)
    every = list(brute_force(blocks, scores, network))
    lo, hi = min(t for t, _, _ in every), max(t for t, _, _ in every)
    # a budget between the fastest and slowest network, or exactly one choice's latency (the edge)
    budget = every[int(where * (len(every) - 1))][0] if exact_budget else lo + where * (hi - lo)
    got = select(latency, scores, budget, batch=1)
    best = max(s for t, s, _ in every if t <= budget * (1 + 1e-12))
    assert got.score_sum == pytest.approx(best, abs=1e-9)
    assert got.predicted_ms <= budget * (1 + 1e-12)
    # the reported numbers are the chosen blocks' own
    offset = network - sum(blocks[(p, "original")] for p in got.choice)
    assert got.predicted_ms == pytest.approx(offset + sum(blocks[(p, n)] for p, n in got.choice.items()))
    assert got.score_sum == pytest.approx(sum(scores[(p, n)] for p, n in got.choice.items()))
    assert sorted(got.choice) == sorted({p for p, _ in blocks})
    assert fastest_ms(latency, 1, scores) == pytest.approx(lo)


@given(instances())
def test_pareto_front_matches_brute_force(instance):
    blocks, scores, network = instance
    every = list(brute_force(blocks, scores, network))
    # non-dominated (ms, score) points of the enumeration; latencies within float noise count as
    # equal (the same times summed in another order differ in the last bits)
    def faster_or_equal(t2, t):
        return t2 <= t + 1e-12 * max(1.0, t)
    want = {(round(t, 9), round(s, 9)) for t, s, _ in every
            if not any((faster_or_equal(t2, t) and s2 > s) or (t2 < t and s2 >= s) for t2, s2, _ in every)}
    front = pareto_front(latency_section(blocks, network), scores, batch=1)
    got = [(round(f.predicted_ms, 9), round(f.score_sum, 9)) for f in front]
    assert set(got) == want and len(got) == len(want)
    assert [f.predicted_ms for f in front] == sorted(f.predicted_ms for f in front)


def small():
    blocks = {(1, "original"): 4.0, (1, "conv_bn_e1"): 1.0, (1, "bottleneck_e2"): 6.0,
              (6, "original"): 3.0, (6, "identity"): 0.0, (6, "basic_e2"): 5.0}
    scores = {(1, "original"): 0.90, (1, "conv_bn_e1"): 0.80, (1, "bottleneck_e2"): 0.91,
              (6, "original"): 0.90, (6, "identity"): 0.70, (6, "basic_e2"): 0.92}
    return latency_section(blocks, 20.0), scores     # the rest of the network: 13 ms


def test_float_noise_in_latency_does_not_keep_a_dominated_choice():
    # found by Hypothesis: 0.01 and 0.010000000000000002 ms are one latency, so identity (score
    # 0.1) dominates inverted_residual (score 0) and the front holds one point, not two
    blocks = {(1, "original"): 0.5, (1, "identity"): 0.010000000000000002, (1, "inverted_residual"): 0.01}
    scores = {(1, "original"): 0.1, (1, "identity"): 0.1, (1, "inverted_residual"): 0.0}
    front = pareto_front(latency_section(blocks, 1.5), scores, batch=1)
    assert [(round(f.predicted_ms, 9), f.score_sum) for f in front] == [(1.01, 0.1)]


def test_small_case_by_hand():
    latency, scores = small()
    # unlimited: the best at each position, 13 + 6 + 5 = 24 ms
    assert select(latency, scores, 100, 1) == Selection({1: "bottleneck_e2", 6: "basic_e2"}, 24.0, 1.83, 100.0, 1)
    # the teacher's own latency (20 ms): 13 + 6 + 0 = 19 scores 1.61, 13 + 4 + 3 = 20 scores 1.80,
    # 13 + 1 + 5 = 19 scores 1.72: the original network wins
    assert select(latency, scores, 20.0, 1).choice == {1: "original", 6: "original"}
    assert select(latency, scores, 19.5, 1).choice == {1: "conv_bn_e1", 6: "basic_e2"}
    assert select(latency, scores, 14.0, 1).choice == {1: "conv_bn_e1", 6: "identity"}
    assert fastest_ms(latency, 1) == pytest.approx(14.0)


def test_budget_below_the_fastest_network_names_both_numbers():
    latency, scores = small()
    with pytest.raises(ValueError, match=r"budget 13\.9 ms at batch 1 is below the fastest possible network, 14 ms"):
        select(latency, scores, 13.9, 1)


def test_candidates_without_a_score_are_not_offered():
    latency, scores = small()
    del scores[(6, "identity")]
    assert fastest_ms(latency, 1, scores) == pytest.approx(17.0)
    assert fastest_ms(latency, 1) == pytest.approx(14.0)     # latency alone: identity counts
    with pytest.raises(ValueError, match="below the fastest possible network, 17 ms"):
        select(latency, scores, 16.0, 1)


def test_original_score_stands_in_for_a_missing_original_and_is_required():
    latency, scores = small()
    del scores[(1, "original")], scores[(6, "original")]
    assert select(latency, scores, 20.0, 1, original_score=0.9).choice == {1: "original", 6: "original"}
    with pytest.raises(ValueError, match="no score for 'original' at position 1"):
        select(latency, scores, 20.0, 1)


def test_string_keys_and_missing_batch():
    latency, scores = small()
    as_json = {(str(p), n): s for (p, n), s in scores.items()}
    assert select(latency, as_json, 100, 1).choice == {1: "bottleneck_e2", 6: "basic_e2"}
    with pytest.raises(ValueError, match="no batch 128"):
        select(latency, scores, 100, 128)
