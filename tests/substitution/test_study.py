"""The substitution study runner (pyann.substitution.study) on a tiny preset: end to end on the
local process pool (every trial's file, results.json in the contract's shape), the same numbers
on a Dask LocalCluster, a trial interrupted mid-run that resumes to the same table, finished
trials skipped on a rerun, and the users' errors (bad candidates and positions through the
study's entry point, a budget below the fastest network, an unreachable scheduler, another
configuration in the same folder)."""
import dataclasses
import json
import shutil
import socket
import time

import pytest

from pyann.substitution import study
from pyann.substitution.presets import SMOKE
from pyann.train import Callback

# two positions (a shape-changing one and the last block), three candidates, two baseline seeds:
# 2 baselines + 3 substitutions (+ each batch size's selected network when it is none of those) trials
TINY = dataclasses.replace(SMOKE, name="tiny", width=1, positions=(3, 6), candidates=("original", "identity", "conv_bn_e1"),
                           baseline_seeds=(0, 1), checkpoints=(1, 3), train_images=64, test_images=48, teacher_epochs=2)
QUIET = dict(progress=False, log=lambda *a: None)


def table(r):
    """What a study's tables are made of: every trial's accuracies, the LANA rows, the selection."""
    return ({t["id"]: t["accuracy"] for t in r["trials"]},
            [(x["position"], x["candidate"], x["loss"], x["score"]) for x in r["lana"]],
            [(s["batch"], s["choice"], s["trial"], s["accuracy"]) for s in r["selection"]])


BEFORE_TRIALS = ("teacher.npz", "teacher-accuracy.json", "lana.json", "lana", "latency.json")


def seeded(tmp_path, ref, name, files=BEFORE_TRIALS):
    """A fresh study folder holding the reference's stages before the trials (the in-process
    ones, which the study reuses as a resumed run does): the trials are what is compared, and
    the latency table is measured, not computed, so the selections are made on the same one."""
    out = tmp_path / name
    out.mkdir()
    for f in files:
        (shutil.copytree if (ref / f).is_dir() else shutil.copy)(ref / f, out / f)
    return out


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    return out, study.run_study(TINY, out, workers=2, **QUIET)


def test_local_study_writes_every_trial_and_results(local):
    out, r = local
    ids = [t["id"] for t in r["trials"]]
    assert ids[:5] == ["baseline-s0", "baseline-s1", "p3-conv_bn_e1-s0", "p6-identity-s0", "p6-conv_bn_e1-s0"]
    assert len(ids) == len(set(ids)) and len(ids) in (5, 6)
    for t in r["trials"]:
        assert (out / "trials" / f"{t['id']}.json").is_file()
        assert set(t["accuracy"]) == {"1", "3"} and all(0 <= a <= 1 for a in t["accuracy"].values())
    on_disk = json.loads((out / "results.json").read_text())
    assert table(on_disk) == table(r)
    for key in ("preset", "data", "teacher", "costs", "lana", "trials", "latency", "selection", "timing", "provenance"):
        assert key in on_disk, key
    assert on_disk["preset"]["paper_positions"] == [1, 7, 18] and on_disk["preset"]["scaled"]
    pairs = {(x["position"], x["candidate"]) for x in r["lana"]}
    assert pairs == {(3, "original"), (3, "conv_bn_e1"), (6, "original"), (6, "identity"), (6, "conv_bn_e1")}
    assert {(c["position"], c["candidate"]) for c in r["costs"]} == pairs
    assert all(c["params"] > 0 for c in r["costs"] if c["candidate"] != "identity")
    # the original block is the teacher's own: its LANA score is the teacher's accuracy
    assert all(x["score"] == r["teacher"]["accuracy"] for x in r["lana"] if x["candidate"] == "original")
    assert "synthetic" in r["data"] and "trained by this study" in r["teacher"]["source"]
    sel = {s["batch"]: s for s in r["selection"]}
    assert set(sel) == {1, 8}
    for fine_tuned in sel.values():   # every batch size's selection is fine-tuned, not only the budget's
        assert fine_tuned["trial"] in ids and fine_tuned["accuracy"] == r["trials"][ids.index(fine_tuned["trial"])]["accuracy"]
        assert fine_tuned["predicted_ms"] <= fine_tuned["budget_ms"] * (1 + 1e-9) and fine_tuned["measured_ms"] > 0
    assert not (out / "trials" / "shared-data.npz").exists()   # the trials' data file is cleaned up


def test_dask_local_cluster_gives_the_local_results(local, tmp_path):
    distributed = pytest.importorskip("distributed")
    ref, r_local = local
    out = seeded(tmp_path, ref, "dask")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        r = study.run_study(TINY, out, scheduler=cluster.scheduler_address, **QUIET)
    assert "Dask scheduler" in r["executor"]
    assert table(r) == table(r_local)


class StopAfter(Callback):
    """Interrupt one trial after an epoch, as a kill would (fit has checkpointed the epoch)."""

    def __init__(self, trial_epochs: int, epoch: int):
        self.trial_epochs, self.epoch = trial_epochs, epoch

    def on_epoch_end(self, epoch, model, logs):
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"stopped after epoch {epoch}")


def test_interrupted_study_resumes_to_the_same_table(local, tmp_path):
    ref, r_local = local
    out = seeded(tmp_path, ref, "resume")
    # every trial stops after epoch 2, between the checkpoints at 1 and 3: mid-segment
    with pytest.raises(KeyboardInterrupt):
        study.run_study(TINY, out, workers=2, trial_callbacks=[StopAfter(3, 2)], **QUIET)
    checkpoints = list((out / "trials").glob("*/checkpoint.npz"))
    assert checkpoints and not list((out / "trials").glob("*.json"))
    # stopped between the checkpoints (a trial the stop caught mid-epoch, its worker ended, may lack even the first)
    assert any((c.parent / "accuracy-1.json").exists() for c in checkpoints)
    assert not list((out / "trials").glob("*/accuracy-3.json"))
    r = study.run_study(TINY, out, workers=2, **QUIET)
    assert table(r) == table(r_local)
    assert sorted(r["resume"]["computed"]) == sorted(t["id"] for t in r["trials"])


KILLED_RUN = """
import sys
sys.path.insert(0, {tests!r})
from test_study import TINY
from pyann.substitution import study
if __name__ == "__main__":
    study.run_study(TINY, {out!r}, workers=2, progress=False, log=lambda *a: None)
"""


def test_killed_study_resumes_to_the_same_table(local, tmp_path):
    """SIGKILL the study and its trial processes as soon as a trial has checkpointed an epoch."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path
    ref, r_local = local
    out = seeded(tmp_path, ref, "killed")
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        deadline = time.time() + 120
        while not list((out / "trials").glob("*/checkpoint.npz")) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)   # the study's own process group: it and its pool workers
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the study finished before it could be killed"
    finished = {p.stem for p in (out / "trials").glob("*.json")}
    assert len(finished) < len(r_local["trials"])
    r = study.run_study(TINY, out, workers=2, **QUIET)
    assert table(r) == table(r_local)
    assert set(r["resume"]["reused"]) == finished


def test_rerun_skips_finished_trials(local, tmp_path):
    ref, r_local = local
    out = tmp_path / "again"
    shutil.copytree(ref, out)
    t0 = time.perf_counter()
    r = study.run_study(TINY, out, workers=2, **QUIET)
    assert r["resume"]["computed"] == [] and sorted(r["resume"]["reused"]) == sorted(t["id"] for t in r["trials"])
    assert table(r) == table(r_local)
    assert time.perf_counter() - t0 < 30


def _teacher_only(tmp_path, ref, name):
    return seeded(tmp_path, ref, name, files=("teacher.npz",))


@pytest.mark.parametrize("only, message", [
    ([(3, "no_such_op")], "unknown candidate"),
    ([(9, "conv_bn_e1")], "out of range"),
    ([(3, "identity")], "not available at position 3"),
])
def test_bad_substitution_is_a_clear_error_before_any_work(local, tmp_path, only, message):
    out = _teacher_only(tmp_path, local[0], "bad")
    with pytest.raises(ValueError, match=message):
        study.run_study(TINY, out, only=only, **QUIET)
    assert not (out / "lana.json").exists() and not (out / "study.json").exists()


def test_bad_preset_candidate_or_position_is_a_clear_error(local, tmp_path):
    out = _teacher_only(tmp_path, local[0], "badpreset")
    with pytest.raises(ValueError, match="unknown candidate"):
        study.run_study(dataclasses.replace(TINY, candidates=("original", "conv_bn_e9")), out, **QUIET)
    with pytest.raises(ValueError, match="out of range"):
        study.run_study(dataclasses.replace(TINY, positions=(3, 7)), out, **QUIET)


def test_budget_below_the_fastest_network_is_a_clear_error(local, tmp_path):
    out = tmp_path / "budget"
    shutil.copytree(local[0], out)
    with pytest.raises(ValueError, match="below the fastest possible network"):
        study.run_study(TINY, out, budget_ms=1e-6, **QUIET)


def test_unreachable_scheduler_fails_within_seconds(tmp_path):
    from pyann.substitution.executors import SchedulerUnreachableError
    pytest.importorskip("distributed")
    with socket.socket() as s:   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(SchedulerUnreachableError, match="cannot reach the Dask scheduler"):
        study.run_study(TINY, tmp_path / "x", scheduler=f"tcp://127.0.0.1:{port}", scheduler_timeout=2, **QUIET)
    assert time.perf_counter() - t0 < 10
    assert not (tmp_path / "x" / "teacher.npz").exists()   # refused before any work


def test_another_configuration_in_the_folder_is_refused(local, tmp_path):
    out = tmp_path / "other"
    shutil.copytree(local[0], out)
    with pytest.raises(ValueError, match="another configuration"):
        study.run_study(dataclasses.replace(TINY, lr=0.5), out, **QUIET)


def test_plan_phase_records_measured_plans_once(tmp_path):
    logged = []
    plans = study.plan_phase(dataclasses.replace(TINY, plan_presets=("smoke",)), tmp_path, logged.append)
    p = plans["smoke"]
    assert p["timing"]["step_seconds"] > 0 and p["trials"] == 21 and "measured at" in p["text"] and logged == [p["text"]]
    assert p["lana"]["lana_step_seconds"] > 0 and p["lana_minutes"] > 0 and "LANA 4 steps" in p["text"]
    assert json.loads((tmp_path / "plan.json").read_text()) == plans
    assert study.plan_phase(TINY, tmp_path, logged.append) == plans   # kept: a resumed study does not re-time


def test_trial_ids_leave_out_the_original_block():
    assert study.trial_id({}, 2) == "baseline-s2"
    assert study.trial_id({1: "original", 6: "identity"}, 0) == "p6-identity-s0"
    assert study.trial_id({6: "identity", 3: "basic_e2"}, 0) == "p3-basic_e2+p6-identity-s0"


def test_synthetic_data_is_learnable_and_seeded():
    a, b = study.SyntheticData(SMOKE, 0), study.SyntheticData(SMOKE, 0)
    assert (a.x_train == b.x_train).all() and a.x_train.shape == (128, 3, 8, 8) and a.x_train.dtype.name == "uint8"
    assert set(a.y_train.tolist()) == set(range(10))


def test_default_budget_is_a_share_of_the_teacher_or_halfway_to_the_fastest():
    def latency(conv_ms):
        return {"batch_sizes": [8], "network": {"8": 10.0},
                "blocks": [{"position": 1, "candidate": "original", "ms": {"8": 5.0}},
                           {"position": 1, "candidate": "conv_bn_e1", "ms": {"8": conv_ms}}]}
    scores = {(1, "original"): 0.9, (1, "conv_bn_e1"): 0.8}
    budget, why = study.default_budget(latency(1.0), scores, SMOKE, 8)   # fastest 6 ms: 0.8 x 10 fits
    assert budget == pytest.approx(8.0) and "0.8 x the teacher" in why
    budget, why = study.default_budget(latency(4.0), scores, SMOKE, 8)   # fastest 9 ms > 8
    assert budget == pytest.approx(9.5) and "halfway" in why
    rows = study.selections(latency(4.0), scores, dataclasses.replace(SMOKE, latency_batch_sizes=(8,)), budget_ms=None)
    assert rows[0]["choice"] == {"1": "conv_bn_e1"} and rows[0]["budget_ms"] == pytest.approx(9.5)


def test_another_teacher_in_the_folder_is_refused(local, tmp_path):
    from pyann import nn
    out = tmp_path / "teacher"
    shutil.copytree(local[0], out)
    other = nn.build("wrn", depth=TINY.depth, width=TINY.width, input_size=TINY.input_size, rng=5)
    nn.save(other, out / "teacher.npz")   # as if the cache had been retrained meanwhile
    with pytest.raises(ValueError, match="another configuration .*teacher_sha256"):
        study.run_study(TINY, out, **QUIET)


def test_a_preset_with_a_cached_teacher_resumes_in_its_own_folder(tmp_path):
    """The cpu and paper presets carry a TeacherConfig whose tuples become lists in study.json:
    the identity check compares them as JSON, so the same configuration is not "another" (the
    cpu study's first resume was refused before this)."""
    from pyann.substitution.presets import CPU
    ident = {"format": study.FORMAT, "preset": CPU.to_dict(), "seed": 0, "pairs": [[1, "original"]],
             "data": "CIFAR-10", "teacher_sha256": "0" * 64}
    study._check_identity(tmp_path, ident)
    study._check_identity(tmp_path, ident)   # the same study again: accepted
    other = dict(ident, seed=1)
    with pytest.raises(ValueError, match="another configuration \\(differs in: seed\\)"):
        study._check_identity(tmp_path, other)
