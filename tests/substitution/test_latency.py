"""Latency tables (pyann.substitution.latency): the result's shape, the original block added,
round-robin order, eval mode restored, medians that order known delays, and bad arguments."""
import time

import numpy as np
import pytest

from pyann.nn.blocks import ConvBNBlock, InvertedResidual
from pyann.nn.layers import Identity
from pyann.nn.wrn import WideResNet
from pyann.substitution import latency as L
from pyann.substitution.selection import select


@pytest.fixture
def teacher():
    # WRN-10-1 on 8x8 inputs: blocks 1 (16->16), 2 (16->32, stride 2), 3 (32->64, stride 2)
    return WideResNet(depth=10, width=1, input_size=8, rng=0)


def candidates(teacher):
    out = {}
    for pos in (1, 3):
        (c_in, _, _), (c_out, _, _) = teacher.block_shapes[pos - 1]
        stride = 1 if pos == 1 else 2
        out[pos] = {"inverted_residual": InvertedResidual(c_in, c_out, stride, rng=1),
                    "conv_bn_e1": ConvBNBlock(c_in, c_out, stride, rng=2)}
    out[1]["identity"] = Identity()
    return out


def test_table_shape_and_original_added(teacher):
    table = L.measure_latency(teacher, [1, 3], candidates(teacher), batch_sizes=(1, 4), repeats={1: 3, 4: 2},
                              warmup=1, threads=1)
    assert table["batch_sizes"] == [1, 4] and table["repeats"] == {"1": 3, "4": 2} and table["warmup"] == 1
    assert table["threads"] == 1 and table["kernel_threads"] >= 1 and isinstance(table["blas"], list)
    keys = [(r["position"], r["candidate"]) for r in table["blocks"]]
    assert keys == [(1, "original"), (1, "inverted_residual"), (1, "conv_bn_e1"), (1, "identity"),
                    (3, "original"), (3, "inverted_residual"), (3, "conv_bn_e1")]
    for r in table["blocks"]:
        assert set(r["ms"]) == {"1", "4"} and all(v > 0 for v in r["ms"].values())
    assert set(table["network"]) == {"1", "4"} and table["network"]["4"] > 0
    # the table is what the selection reads
    scores = {k: 0.5 for k in keys}
    assert select(table, scores, 1e9, 4).choice.keys() == {1, 3}


def test_modules_run_in_eval_mode_and_get_their_flags_back(teacher):
    cands = candidates(teacher)
    seen = []
    conv = cands[3]["conv_bn_e1"]
    forward = conv.forward
    conv.forward = lambda x: (seen.append(conv.training), forward(x))[1]
    teacher.train()
    conv.train()
    cands[1]["identity"].eval()
    L.measure_latency(teacher, [1, 3], cands, batch_sizes=(2,), repeats=2, warmup=0, threads=1)
    assert seen == [False, False]
    assert teacher.training and teacher.block(1).training and conv.training
    assert not cands[1]["identity"].training


def test_round_robin_runs_every_item_once_per_round_in_rotated_order():
    calls = []

    class Rec:
        def __init__(self, name):
            self.name = name

        def forward(self, x):
            calls.append(self.name)

    items = [L._Timed(n, Rec(n), None) for n in "abc"]
    L._round_robin(items, repeats=3, warmup=1)
    assert calls == list("abc" "bca" "cab" "abc")
    assert [len(i.times) for i in items] == [3, 3, 3]      # the warm-up round is not timed


def test_medians_order_known_delays():
    class Sleep:
        def __init__(self, s):
            self.s = s

        def forward(self, x):
            time.sleep(self.s)

    fast, slow = L._Timed("fast", Sleep(0.001), None), L._Timed("slow", Sleep(0.02), None)
    L._round_robin([fast, slow], repeats=5, warmup=0)
    assert 1.0 <= fast.median_ms() < slow.median_ms() and slow.median_ms() >= 20.0


def test_network_latency(teacher):
    teacher.train()
    ms = L.network_latency(teacher, batch=2, repeats=2, threads=1)
    assert ms > 0 and teacher.training


@pytest.mark.parametrize("kw, match", [(dict(repeats=0), "repeats must be a positive integer"),
                                       (dict(repeats=1.5), "repeats must be a positive integer"),
                                       (dict(threads=0), "threads must be a positive integer")])
def test_bad_arguments(teacher, kw, match):
    with pytest.raises(ValueError, match=match):
        L.measure_latency(teacher, [1], {}, batch_sizes=(1,), **kw)


def test_repeats_for_unnamed_batch_uses_the_nearest():
    assert L._repeats_for({1: 25, 128: 7}, 100) == 7
    assert L._repeats_for(None, 1) == 25 and L._repeats_for(3, 128) == 3


def test_fast_items_run_several_times_per_sample():
    calls = []

    class Fast:
        def forward(self, x):
            calls.append(1)

    item = L._Timed("fast", Fast(), None, min_sample_s=0.002)
    L._round_robin([item], repeats=3, warmup=1)
    assert item.number > 1 and len(calls) == 1 + 3 * item.number
    assert len(item.times) == 3 and item.median_ms() < 1.0      # per call, not per sample


def test_threads_are_set_for_the_timing_and_given_back(teacher):
    from threadpoolctl import threadpool_info
    from pyann import kernels
    seen = []
    block = teacher.block(1)
    forward = block.forward
    block.forward = lambda x: (seen.append((kernels.num_threads(),
                                            [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"])),
                               forward(x))[1]
    before = (kernels.num_threads(), [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"])
    table = L.measure_latency(teacher, [1], {}, batch_sizes=(1,), repeats=2, warmup=0)
    assert table["threads"] == 1 and table["kernel_threads"] == 1
    assert seen and all(k == 1 and all(b == 1 for b in blas) for k, blas in seen)
    after = (kernels.num_threads(), [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"])
    assert after == before


def test_networks_latency_times_several_networks_together(teacher):
    other = WideResNet(depth=10, width=2, input_size=8, rng=1)
    ms = L.networks_latency({"teacher": teacher, "wider": other}, batch=2, repeats=3)
    assert set(ms) == {"teacher", "wider"} and all(v > 0 for v in ms.values())
    with pytest.raises(ValueError, match="different inputs"):
        L.networks_latency({"a": teacher, "b": WideResNet(depth=10, width=1, input_size=16)}, batch=1, repeats=1)
