"""The study presets: the paper's setting unchanged in `paper`, the same position roles in `cpu`
on WRN-16-2, every preset JSON-able with its `scaled` paragraph, and the measured plan (timed
steps extrapolated, trials divided over workers in whole rounds)."""
import dataclasses
import json
import math

import pytest

from pyann import nn
from pyann.substitution import presets
from pyann.substitution.candidates import candidate_names, is_available


def roles(preset):
    """(changes channels, has stride 2, keeps the shape) of each position of a preset's network."""
    shapes = nn.build("wrn", depth=preset.depth, width=preset.width, input_size=preset.input_size).block_shapes
    return [(shapes[p - 1][0][0] != shapes[p - 1][1][0], shapes[p - 1][0][1] != shapes[p - 1][1][1],
             shapes[p - 1][0] == shapes[p - 1][1]) for p in preset.positions]


def test_paper_preset_is_the_papers_setting():
    p = presets.get_preset("paper")
    assert (p.depth, p.width) == (40, 2) and p.positions == (1, 7, 18) == p.paper_positions
    assert p.checkpoints == (25, 50) and p.train_images is None and p.test_images is None
    assert p.baseline_seeds == (0, 1, 2) and p.batch_size == 64
    assert p.teacher is not None and (p.teacher.depth, p.teacher.width) == (40, 2)


def test_cpu_and_smoke_positions_play_the_papers_roles():
    paper = roles(presets.PAPER)
    assert paper == [(True, False, False), (True, True, False), (False, False, True)]
    assert roles(presets.CPU) == paper and roles(presets.SMOKE) == paper
    cpu = presets.CPU
    assert (cpu.depth, cpu.width) == (16, 2) and cpu.teacher == presets.TeacherConfig()
    assert cpu.checkpoints[-1] < 25 and cpu.train_images < 50000   # scaled, and says so
    assert "1 / 3 / 6" in cpu.scaled and "25 and 50" in cpu.scaled


def test_identity_is_available_only_at_the_last_position():
    for p in (presets.PAPER, presets.CPU):
        shapes = nn.build("wrn", depth=p.depth, width=p.width).block_shapes
        assert [is_available("identity", *shapes[pos - 1]) for pos in p.positions] == [False, False, True]


def test_presets_use_registered_candidates_and_are_json():
    for p in presets.PRESETS.values():
        assert set(p.candidates) <= set(candidate_names())
        d = json.loads(json.dumps(p.to_dict()))
        assert d["paper_checkpoints"] == [25, 50] and d["scaled"] and d["lana"]["steps"] == p.lana_steps
        assert d["finetune"]["nesterov"] is True and d["finetune"]["label_smoothing"] == 0.1
    assert presets.SMOKE.teacher is None and presets.SMOKE.teacher_epochs > 0


def test_unknown_preset_and_bad_checkpoints_are_errors():
    with pytest.raises(ValueError, match="unknown preset 'fast'.*cpu"):
        presets.get_preset("fast")
    with pytest.raises(ValueError, match="checkpoints must be increasing"):
        dataclasses.replace(presets.SMOKE, checkpoints=(2, 1))
    with pytest.raises(ValueError, match="selection_batch"):
        dataclasses.replace(presets.SMOKE, selection_batch=128)


def test_lana_config_comes_from_the_preset():
    c = presets.CPU.lana_config(seed=3)
    assert (c.steps, c.batch_size, c.lr, c.seed) == (presets.CPU.lana_steps, presets.CPU.lana_batch,
                                                       presets.CPU.lana_lr, 3)


def test_measured_plan_divides_trials_into_whole_rounds():
    timing = presets.time_steps(presets.SMOKE, steps=2)
    assert timing["step_seconds"] > 0 and timing["eval_image_seconds"] > 0 and timing["blas_threads"] == 1
    p = presets.plan(presets.SMOKE, timing, trials=5, workers=(1, 2, 8))
    one = p["trial_minutes"]
    steps = math.ceil(presets.SMOKE.train_images / presets.SMOKE.batch_size) * presets.SMOKE.epochs
    evals = presets.SMOKE.test_images * len(presets.SMOKE.checkpoints)
    assert one == pytest.approx((steps * timing["step_seconds"] + evals * timing["eval_image_seconds"]) / 60)
    assert p["workers"] == pytest.approx({"1": 5 * one, "2": 3 * one, "8": one})
    text = presets.describe_plan(presets.SMOKE, p)
    assert "measured" in text and "5 trials" in text and "8 workers" in text and "come on top" in text


def test_measured_lana_cost_enters_the_plan():
    lana = presets.time_lana(presets.SMOKE)
    assert lana["pairs"] == 19 and lana["lana_step_seconds"] > 0 and lana["score_image_seconds"] > 0
    timing = {"step_seconds": 1.0, "eval_image_seconds": 0.01, "batch_size": 32, "blas_threads": 1}
    p = presets.plan(presets.SMOKE, timing, trials=4, lana=lana)
    assert p["lana_minutes"] == pytest.approx((lana["lana_setup_seconds"] + 4 * lana["lana_step_seconds"]) / 60)
    assert p["scores_minutes"] == pytest.approx(64 * lana["score_image_seconds"] / 60)
    assert "LANA 4 steps" in presets.describe_plan(presets.SMOKE, p)


def test_trial_count_of_each_preset():
    # 3 baselines + 5 at the first two positions (no identity) + 6 at the last + the selection
    assert presets.count_trials(presets.PAPER) == presets.count_trials(presets.CPU) == 3 + 5 + 5 + 6 + 2
