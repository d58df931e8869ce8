"""The presets of a substitution study: everything that shapes one, in one frozen value.

  paper  WRN-40-2, positions 1 / 7 / 18, 25 / 50 fine-tuning epochs, all of CIFAR-10: the
         paper's setting, for a cluster (`--scheduler`). `measure_plan` times a few training
         steps of its network here and says how long it takes on one machine and on N workers.
  cpu    WRN-16-2 at positions 1 / 3 / 6 (the same roles: first block of group 1, the first of
         group 2 with its stride and channel change, the last block), a data subset and two short
         checkpoints, sized from measured step times to finish in about an hour on 2 cores (the
         teacher's training, once, into the trained-model cache, excluded).
  smoke  seconds, for tests: a tiny WRN on 8x8 synthetic images whose teacher the study trains
         itself, so no dataset is needed.

Each preset's `scaled` paragraph says exactly what differs from the paper; results.json and the
report carry it.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Optional, Tuple

import numpy as np

from .teacher import TeacherConfig

# the paper's seven candidates (paper numbers 1..7), the names candidates.py registers them under
PAPER_CANDIDATES = ("original", "identity", "inverted_residual", "conv_bn_e1", "conv_bn_e2",
                    "basic_e2", "bottleneck_e2")
PAPER_POSITIONS = (1, 7, 18)
PAPER_CHECKPOINTS = (25, 50)


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    depth: int
    width: int
    positions: Tuple[int, ...]
    checkpoints: Tuple[int, ...]              # fine-tuning epochs at which test accuracy is recorded
    train_images: Optional[int]               # first N training images for LANA and fine-tuning (None: all)
    test_images: Optional[int]                # first N test images for scores and accuracies (None: all)
    scaled: str                               # exactly what was scaled against the paper
    teacher: Optional[TeacherConfig] = None   # None: a teacher the study trains itself (smoke)
    teacher_epochs: int = 0                   # ... for that many epochs on the preset's data
    input_size: int = 32
    paper_positions: Tuple[int, ...] = PAPER_POSITIONS
    paper_checkpoints: Tuple[int, ...] = PAPER_CHECKPOINTS
    candidates: Tuple[str, ...] = PAPER_CANDIDATES
    baseline_seeds: Tuple[int, ...] = (0, 1, 2)
    # LANA: Adam on the normalised MSE, one frozen-teacher pass per step feeds every candidate
    lana_steps: int = 200
    lana_batch: int = 64
    lana_lr: float = 1e-3
    # fine-tuning of every trial: the teacher recipe's optimiser (SGD + Nesterov, weight decay on
    # weights, label smoothing, crop + flip), cosine from lr to 0 over the last checkpoint's epochs
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    crop_padding: int = 4
    eval_batch: int = 100
    # latency and selection
    latency_batch_sizes: Tuple[int, ...] = (1, 128)
    latency_repeats: Optional[int] = None      # None: latency.py's default rounds per batch size
    selection_batch: int = 128                # the batch a budget given in ms applies to
    budget_fraction: float = 0.8              # default budget: this share of the teacher's latency
    # presets whose measured plan (time_steps + plan) a study of this one records in results.json
    plan_presets: Tuple[str, ...] = ()

    def __post_init__(self):
        if not self.checkpoints or list(self.checkpoints) != sorted(set(self.checkpoints)) or self.checkpoints[0] < 1:
            raise ValueError(f"preset {self.name}: checkpoints must be increasing epochs >= 1, got {self.checkpoints}")
        if self.selection_batch not in self.latency_batch_sizes:
            raise ValueError(f"preset {self.name}: selection_batch {self.selection_batch} is not one of the "
                             f"latency batch sizes {self.latency_batch_sizes}")

    @property
    def epochs(self) -> int:
        return self.checkpoints[-1]

    def lana_config(self, seed: int = 0):
        from .lana import LanaConfig
        return LanaConfig(steps=self.lana_steps, batch_size=self.lana_batch, lr=self.lana_lr, seed=seed)

    def finetune(self) -> dict:
        return {"optimizer": "SGD", "nesterov": True, "batch_size": self.batch_size, "lr": self.lr,
                "momentum": self.momentum, "weight_decay": self.weight_decay, "schedule": "cosine to 0",
                "label_smoothing": self.label_smoothing, "augment": f"crop (pad {self.crop_padding}, reflect) + flip"}

    def to_dict(self) -> dict:
        """The results.json "preset" record (JSON values)."""
        return {"name": self.name, "depth": self.depth, "width": self.width, "input_size": self.input_size,
                "positions": list(self.positions), "paper_positions": list(self.paper_positions),
                "candidates": list(self.candidates), "checkpoints": list(self.checkpoints),
                "paper_checkpoints": list(self.paper_checkpoints), "train_images": self.train_images,
                "test_images": self.test_images, "baseline_seeds": list(self.baseline_seeds),
                "lana": {"steps": self.lana_steps, "batch_size": self.lana_batch, "lr": self.lana_lr},
                "finetune": self.finetune(),
                "latency": {"batch_sizes": list(self.latency_batch_sizes), "repeats": self.latency_repeats,
                            "selection_batch": self.selection_batch, "budget_fraction": self.budget_fraction},
                "teacher": None if self.teacher is None else dataclasses.asdict(self.teacher),
                "teacher_epochs": self.teacher_epochs, "scaled": self.scaled}


PAPER = Preset(
    name="paper", depth=40, width=2, positions=(1, 7, 18), checkpoints=(25, 50),
    train_images=None, test_images=None,
    teacher=TeacherConfig(depth=40, width=2, epochs=200, progressive=()),
    lana_steps=2000, plan_presets=("paper",),
    scaled="Nothing in the network, positions, candidates or epochs: WRN-40-2, positions 1 / 7 / 18, the seven "
           "candidates, 25 and 50 fine-tuning epochs of one continuing run over all 50,000 training images, "
           "accuracy on all 10,000 test images, 3 baseline seeds. What is ours: the teacher is this library's "
           "CIFAR-10 recipe (200 epochs, not the paper's training), LANA runs 2,000 Adam steps of batch 64, "
           "fine-tuning is SGD + Nesterov at lr 0.01 cosine to 0, and the data is whatever CIFAR-10 copy is found "
           "(the run names it).")

# Sized from steps timed on this 2-core machine (CPU seconds of one BLAS thread, 2026-11-30, while
# other work loaded it, so CPU time rather than the wall clock; `pyann substitution-study --preset
# cpu --estimate` repeats the measurement): a WRN-16-2 training step of batch 64 1.03-1.20 s,
# evaluation 8-9 ms per image, one LANA step (a teacher pass of batch 64 and an Adam step of each
# of the 15 trained candidates) 4.7-7.7 s, scoring one image with all 19 candidates 80 ms. Then: a
# trial = 2 x 94 steps + 2 x 2,000 test images ~4.1-4.3 min; 21 trials on 2 single-threaded
# workers = 11 rounds ~45-47 min; LANA 150 steps 12-19 min and its scores ~3 min (single-threaded
# figures; the phase runs with 2 threads); the latency table ~1.5 min and the measured plans ~2
# min: ~63-71 min with the teacher cached, a fifth of the 90 minutes left for what the probes do
# not see (two trial processes sharing the memory bus).
CPU = Preset(
    name="cpu", depth=16, width=2, positions=(1, 3, 6), checkpoints=(1, 2),
    train_images=6000, test_images=2000,
    teacher=TeacherConfig(),
    # LANA at lr 1e-2: probed on the cached teacher (2026-11-30), 60 steps at 1e-2 reached a lower
    # held-out nmse than 100 steps at 1e-3 for all 15 trained candidates (e.g. conv_bn_e2 at
    # position 1: 0.19 against 0.46; 3e-3 fell between); 150 steps add ~3 min to the LANA phase
    lana_steps=150, lana_lr=1e-2, plan_presets=("cpu", "paper"),
    scaled="WRN-16-2 instead of WRN-40-2 (6 blocks, not 18), so positions 1 / 3 / 6 take the roles of the "
           "paper's 1 / 7 / 18 (first block of group 1 with its channel change; first block of group 2 with "
           "stride 2 and channel change; the last block). The teacher is the library's WRN-16-2 CIFAR-10 recipe, "
           "8 epochs with progressive resizing (cached, its time reported apart). Fine-tuning: 1 and 2 epochs over the first 6,000 training "
           "images (the paper: 25 and 50 epochs over 50,000), test accuracy on the first 2,000 test images "
           "(the paper: 10,000), LANA 150 Adam steps of batch 64 at lr 1e-2. The candidates and the 3 baseline seeds are the "
           "paper's; the fine-tuning recipe (SGD + Nesterov at lr 0.01 cosine to 0, batch 64, weight decay 5e-4, "
           "label smoothing 0.1, crop + flip) is ours, the paper's summary not giving one.")

SMOKE = Preset(
    name="smoke", depth=16, width=2, input_size=8, positions=(1, 3, 6), checkpoints=(1, 2),
    train_images=128, test_images=64, teacher=None, teacher_epochs=3,
    lana_steps=4, lana_batch=32, batch_size=32, lr=0.02, crop_padding=1,
    latency_batch_sizes=(1, 8), latency_repeats=3, selection_batch=8,
    scaled="A test of the machinery, not a result: WRN-16-2 on 8x8 synthetic images (10 classes), its teacher "
           "trained by the study for 3 epochs on 128 images, 4 LANA steps, 1 and 2 fine-tuning epochs, 64 test "
           "images.")

PRESETS = {p.name: p for p in (PAPER, CPU, SMOKE)}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def count_trials(preset: Preset) -> int:
    """Baseline seeds + every available single substitution + one selected network per latency
    batch size (an upper bound: a selection may coincide with another trial)."""
    from .. import nn
    from .candidates import is_available
    shapes = nn.build("wrn", depth=preset.depth, width=preset.width, input_size=preset.input_size).block_shapes
    singles = sum(is_available(n, *shapes[p - 1]) for p in preset.positions for n in preset.candidates
                  if n != "original")
    return len(preset.baseline_seeds) + singles + len(preset.latency_batch_sizes)


# ---- measured plan ------------------------------------------------------------------------------

def time_steps(preset: Preset, steps: int = 3, threads: int = 1) -> dict:
    """Seconds of one training step (batch_size, crop + flip, SGD) and of one evaluation image of
    the preset's network, the medians of `steps` timed steps after a warm-up one, on random
    images, with `threads` BLAS threads (one per trial worker, as the study runs them).
    With one thread the CPU seconds of this process are used: on a machine busy with other work
    they are what the step costs a core of its own, where the wall clock would count the waits."""
    from threadpoolctl import threadpool_limits

    from .. import nn, ops
    from ..data.augment import CropFlip
    from ..optim import SGD
    clock = time.process_time if threads == 1 else time.perf_counter
    model = nn.build("wrn", depth=preset.depth, width=preset.width, input_size=preset.input_size, rng=0)
    model.set_input_grad(False)
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((preset.batch_size, 3, preset.input_size, preset.input_size)).astype(np.float32)
    y = rng.integers(0, 10, preset.batch_size)
    augment, times, walls = CropFlip(preset.crop_padding), [], []
    with threadpool_limits(limits=threads, user_api="blas"):
        for _ in range(steps + 1):
            t0, w0 = clock(), time.perf_counter()
            out = model.forward(augment(x, rng))
            _, cache = ops.softmax_cross_entropy_forward(out, y)
            model.backward(ops.softmax_cross_entropy_backward(cache).astype(np.float32))
            opt.step()
            times.append(clock() - t0)
            walls.append(time.perf_counter() - w0)
        model.eval()
        xe = x[:min(preset.eval_batch, len(x))]
        model.forward(xe)
        t0 = clock()
        model.forward(xe)
        eval_image = (clock() - t0) / len(xe)
    return {"step_seconds": float(np.median(times[1:])), "eval_image_seconds": eval_image,
            "step_wall_seconds": float(np.median(walls[1:])), "clock": "cpu" if threads == 1 else "wall",
            "steps_timed": steps, "batch_size": preset.batch_size, "blas_threads": threads}


def time_lana(preset: Preset, steps: int = 1, images: int = 16) -> dict:
    """CPU seconds (one BLAS thread) of one LANA step of the preset (a teacher pass of lana_batch
    images and an Adam step of every trained candidate at every position: the difference between
    lana_initialise with `steps` steps and with none) and of scoring one test image with every
    candidate (lana_scores over `images` images), on a randomly initialised network of the
    preset's shape: the cost does not depend on the weights."""
    from threadpoolctl import threadpool_limits

    from .. import nn
    from .lana import lana_initialise, lana_scores
    teacher = nn.build("wrn", depth=preset.depth, width=preset.width, input_size=preset.input_size, rng=0)
    pairs = [(p, n) for p, n in _pairs(preset, teacher)]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4 * preset.lana_batch, 3, preset.input_size, preset.input_size)).astype(np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        costs = []
        for k in (0, steps):
            t0 = time.process_time()
            config = dataclasses.replace(preset.lana_config(), steps=k)
            entries = lana_initialise(teacher, x, pairs, config, progress=False)
            costs.append(time.process_time() - t0)
        t0 = time.process_time()
        lana_scores(teacher, entries, x[:images], rng.integers(0, 10, images), batch_size=images)
        score_image = (time.process_time() - t0) / images
    return {"lana_step_seconds": max(costs[1] - costs[0], 0.0) / steps, "lana_setup_seconds": costs[0],
            "score_image_seconds": score_image, "pairs": len(pairs), "clock": "cpu", "blas_threads": 1}


def _pairs(preset: Preset, teacher):
    from .candidates import is_available
    return [(p, n) for p in preset.positions for n in preset.candidates
            if is_available(n, *teacher.block_shapes[p - 1])]


def trial_minutes(preset: Preset, timing: dict, train_images: int, test_images: int) -> float:
    """One trial: every fine-tuning epoch's steps, and a test pass at each checkpoint."""
    steps = math.ceil(train_images / preset.batch_size) * preset.epochs
    evals = test_images * len(preset.checkpoints)
    return (steps * timing["step_seconds"] + evals * timing["eval_image_seconds"]) / 60


def plan(preset: Preset, timing: dict, trials: int, workers=None, train_images: int = 50000,
         test_images: int = 10000, lana: Optional[dict] = None) -> dict:
    """How the trials' time divides over N single-threaded trial workers (measured per-step times,
    extrapolated): a trial does not split, so N workers take ceil(trials / N) rounds (workers: the
    N to give, default 2, 4, 8, half the trials and one per trial). With `lana`
    (time_lana), also the LANA phase and its scores, which run on the study's own machine."""
    train_images = preset.train_images or train_images
    test_images = preset.test_images or test_images
    one = trial_minutes(preset, timing, train_images, test_images)
    if workers is None:   # up to one worker per trial: more would idle, since a trial does not split
        workers = sorted({2, 4, 8, math.ceil(trials / 2), trials})
    out = {"timing": timing, "trials": trials, "train_images": train_images, "test_images": test_images,
           "trial_minutes": one, "workers": {str(n): math.ceil(trials / n) * one for n in workers}}
    if lana is not None:
        out["lana"] = lana
        out["lana_minutes"] = (lana["lana_setup_seconds"] + preset.lana_steps * lana["lana_step_seconds"]) / 60
        out["scores_minutes"] = test_images * lana["score_image_seconds"] / 60
    return out


def describe_plan(preset: Preset, p: dict, cores: int = 2) -> str:
    """One paragraph from plan(): the measured step, a trial, one machine with `cores` cores, N workers."""
    t = p["timing"]
    hours = lambda m: f"{m / 60:,.1f} h" if m >= 90 else f"{m:,.1f} min"  # noqa: E731
    spread = ", ".join(f"{n} workers {hours(m)}" for n, m in p["workers"].items() if n != str(cores))
    one_machine = math.ceil(p["trials"] / cores) * p["trial_minutes"]
    text = (f"{preset.name} preset (WRN-{preset.depth}-{preset.width}): a training step of batch {t['batch_size']} "
            f"measured at {t['step_seconds']:.2f} s with {t['blas_threads']} BLAS thread(s), evaluation "
            f"{1000 * t['eval_image_seconds']:.1f} ms per image; one trial ({preset.epochs} epochs over "
            f"{p['train_images']:,} images, {len(preset.checkpoints)} test passes over {p['test_images']:,}) "
            f"~{hours(p['trial_minutes'])}; its {p['trials']} trials take ~{hours(one_machine)} on one {cores}-core "
            f"machine ({cores} single-threaded trial workers), {spread}")
    if "lana_minutes" in p:
        text += (f"; on top, in the study's own process: LANA {preset.lana_steps} steps at "
                 f"{p['lana']['lana_step_seconds']:.1f} s ~{hours(p['lana_minutes'])} and its scores "
                 f"~{hours(p['scores_minutes'])} (one thread; the teacher's training apart).")
    else:
        text += " (trials only: the teacher and the LANA phase come on top)."
    return text
