"""The operation-substitution study, resumable and distributable:
`python -m pyann substitution-study --preset cpu --out DIR`, or run_study() from Python.

    teacher     a trained WRN: the trained-model cache (cpu, paper), or trained here (smoke)
    LANA        in this process: every candidate at every position distilled from the frozen
                teacher at once (lana.lana_initialise), saved to DIR/lana/<pos>-<name>.npz, and
                scored (accuracy with only that block swapped, lana.lana_scores) -> DIR/lana.json
    latency     every candidate at its position and the teacher end to end (latency.py), once,
                -> DIR/latency.json; then the selection under the budget (selection.py)
    trials      through an executor (a local process pool, or Dask): the baseline (the teacher
                fine-tuned) for each seed, every available single substitution, and the selected
                network; each fine-tunes the whole network and records the test accuracy at every
                checkpoint epoch of one continuing run -> DIR/trials/<id>.json
    results     DIR/results.json (the schema of the substitution contract), then report.md

Resuming: every stage's file is its commit point, written atomically; a rerun with the same
preset, seed and substitutions reads what is there and runs only what is missing. A trial
checkpoints after every epoch into DIR/trials/<id>/ (fit's checkpoint), so a killed trial
continues from its last finished epoch and ends with the weights the uninterrupted run would
have had. A folder holding a study of another configuration is refused.

Determinism: a trial is a plain function of its spec (teacher and LANA module as specs and
arrays, data, seed) that runs with one BLAS thread per trial worker (the spec says how many), so
the same trial gives the same numbers on a local process pool and on a Dask worker.
"""
from __future__ import annotations

import json
import sys
import time
from concurrent.futures import as_completed
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .. import nn
from ..io import read_json, write_json
from .presets import Preset, get_preset

FORMAT = "pyann-substitution-study/1"


# ---- data ----------------------------------------------------------------------------------------

def synthetic_images(n: int, size: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """uint8 (n, 3, size, size) images whose class (0..9) is a bright square at a class-dependent
    place in a class-dependent colour channel, on noise: learnable in a few steps (smoke preset)."""
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 80, (n, 3, size, size)).astype(np.uint8)
    half = max(1, size // 2)
    for k in range(10):
        r, c = divmod(k % 4, 2)
        x[y == k, k % 3, r * half:(r + 1) * half, c * half:(c + 1) * half] += 150
        if k >= 4:   # classes 4..9 also light a stripe, so that place + channel is not ambiguous
            x[y == k, (k + 1) % 3, :, k - 4] += 100
    return x, y.astype(np.int64)


class SyntheticData:
    """The smoke preset's in-memory stand-in for CIFAR-10 (no files needed)."""
    official = False

    def __init__(self, preset: Preset, seed: int = 0):
        rng = np.random.default_rng([seed, 14])
        self.x_train, self.y_train = synthetic_images(preset.train_images or 128, preset.input_size, rng)
        self.x_test, self.y_test = synthetic_images(preset.test_images or 64, preset.input_size, rng)
        self.name = f"synthetic {preset.input_size}x{preset.input_size} images (smoke)"


def load_data(preset: Preset, data=None, root=None, seed: int = 0):
    """The dataset: `data` when given (a Dataset-like object: uint8 NCHW x_train/x_test, int
    labels, name), synthetic images for the smoke preset, else CIFAR-10 (the JPEG-derived copy
    when the official files are absent, as the teacher's recipe does)."""
    if data is not None:
        return data
    if preset.teacher is None:
        return SyntheticData(preset, seed)
    from ..data import load_cifar10
    return load_cifar10(root=root, allow_unofficial=True)


def describe_data(data, with_path: bool = True) -> str:
    """results.json's "data" line: what the study ran on and whether it is the official files
    (and where it was read from, unless with_path is False: a moved copy is the same data)."""
    name = {"cifar10": "CIFAR-10"}.get(getattr(data, "name", ""), getattr(data, "name", "in-memory data"))
    official = getattr(data, "official", None)
    if official is True:
        status = "official files"
    elif official is False and name == "CIFAR-10":
        status = "JPEG q75-derived copy, not the official files"
    else:
        status = "not the official files" if official is False else "provenance unknown"
    where = getattr(data, "source_path", None)
    return f"{name} ({status})" + (f": {where}" if where and with_path else "")


def prepared(preset: Preset, data) -> dict:
    """The arrays every trial uses: the first train_images / test_images of the dataset, uint8
    (4x smaller to ship than floats), and the normalisation the teacher was trained with (the
    channel statistics of the WHOLE training set, as cnn_recipes.wrn_cifar10 computes them)."""
    from ..data import channel_stats
    mean, std = channel_stats(data.x_train)
    cut = lambda a, n: a if n is None else a[:n]  # noqa: E731
    return {"x_train": np.ascontiguousarray(cut(data.x_train, preset.train_images)),
            "y_train": np.asarray(cut(data.y_train, preset.train_images), np.int64),
            "x_test": np.ascontiguousarray(cut(data.x_test, preset.test_images)),
            "y_test": np.asarray(cut(data.y_test, preset.test_images), np.int64),
            "mean": np.asarray(mean, np.float64), "std": np.asarray(std, np.float64)}


def floats(arrays: dict, which: str) -> Tuple[np.ndarray, np.ndarray]:
    from ..data import to_float
    return to_float(arrays[f"x_{which}"], arrays["mean"], arrays["std"]), arrays[f"y_{which}"]


# ---- the teacher ---------------------------------------------------------------------------------

def get_teacher(preset: Preset, out: Path, arrays: dict, cache=None, root=None, seed: int = 0,
                progress=None) -> Tuple[nn.Module, dict]:
    """(teacher, the results.json "teacher" record without its accuracy): the cache's for a
    preset with a TeacherConfig (trained there once when missing), else a small teacher trained
    here into DIR/teacher.npz for teacher_epochs (smoke)."""
    if preset.teacher is not None:
        from .teacher import describe, trained_teacher
        t0 = time.perf_counter()
        model, results, source = trained_teacher(preset.teacher, cache=cache, root=root, progress=progress)
        wall = results.get("wall_minutes")
        return model, {"source": source, "train_minutes": wall, "config": describe(preset.teacher),
                       "recipe_accuracy": (results.get("test") or {}).get("accuracy"),
                       "minutes_here": (time.perf_counter() - t0) / 60}
    path = out / "teacher.npz"
    config = {"depth": preset.depth, "width": preset.width, "input_size": preset.input_size,
              "epochs": preset.teacher_epochs, "seed": seed, "lr": 0.05}
    if path.exists():
        meta = nn.serialization.read_metadata(path)
        return nn.load(path), {"source": f"trained by this study: {path}", "train_minutes": meta.get("minutes"),
                               "config": config, "minutes_here": 0.0}
    t0 = time.perf_counter()
    model = _train_small_teacher(preset, arrays, seed)
    minutes = (time.perf_counter() - t0) / 60
    nn.save(model, path, metadata={"study": "substitution", "teacher": config, "minutes": minutes})
    return model, {"source": f"trained by this study: {path}", "train_minutes": minutes, "config": config,
                   "minutes_here": minutes}


def _train_small_teacher(preset: Preset, arrays: dict, seed: int) -> nn.Module:
    from ..data.augment import CropFlip
    from ..optim import SGD, CosineLR
    from ..train import fit
    model = nn.build("wrn", depth=preset.depth, width=preset.width, input_size=preset.input_size, rng=seed)
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=preset.weight_decay)
    fit(model, floats(arrays, "train"), preset.teacher_epochs, opt, batch_size=preset.batch_size, seed=seed,
        schedule=CosineLR(0.05, preset.teacher_epochs), augment=CropFlip(preset.crop_padding), progress=False)
    return model


# ---- which substitutions -------------------------------------------------------------------------

def substitutions(teacher, preset: Preset, only=None) -> List[Tuple[int, str]]:
    """The (position, candidate) pairs of the study, "original" included (the LANA phase and the
    latency table want it; its trial is the baseline). From the preset: every candidate at every
    position where it is available (identity only where the shape is kept). `only`: explicit
    pairs, each of which must be available. Unknown names, positions out of range and identity
    at a shape-changing position raise candidates.candidate_for's ValueError, before any work."""
    from .candidates import block_slot, candidate_for, candidate_names, is_available
    if only is not None:
        pairs = [(int(p), str(n)) for p, n in only]
        for pos, name in pairs:
            candidate_for(teacher, pos, name)   # raises the one-line error of a bad pair
        extra = [(p, "original") for p in sorted({p for p, _ in pairs}) if (p, "original") not in pairs]
        return sorted(set(pairs + extra), key=_order)
    known = candidate_names()
    pairs = []
    for pos in preset.positions:
        slot = block_slot(teacher, pos)   # raises for a position out of range
        for name in preset.candidates:
            if name not in known:
                candidate_for(teacher, pos, name)   # raises: unknown name, listing the known ones
            if is_available(name, slot.in_shape, slot.out_shape):
                pairs.append((int(pos), name))
    return sorted(set(pairs), key=_order)


def _order(pair):
    from .candidates import candidate_names
    names = candidate_names()
    return pair[0], names.index(pair[1]) if pair[1] in names else len(names), pair[1]


# ---- LANA phase ----------------------------------------------------------------------------------

def lana_phase(teacher, preset: Preset, pairs, arrays: dict, out: Path, seed: int, log, progress):
    """({(pos, name): module}, [lana rows]) from DIR/lana.json and DIR/lana/*.npz when a previous
    run finished this phase for the same pairs, else computed and saved (lana.json last: it is the
    phase's commit point, so a phase killed halfway is redone whole)."""
    from . import lana
    record = out / "lana.json"
    files = {pair: out / "lana" / f"{pair[0]}-{pair[1]}.npz" for pair in pairs}
    if record.exists():
        rows = read_json(record)["rows"]
        if {(r["position"], r["candidate"]) for r in rows} == set(pairs) and all(f.exists() for f in files.values()):
            log(f"LANA: {len(rows)} initialised candidates and scores from {record}")
            return {pair: nn.load(f) for pair, f in files.items()}, rows, read_json(record)["minutes"]
    x_train, _ = floats(arrays, "train")
    x_test, y_test = floats(arrays, "test")
    log(f"LANA: distilling {len(pairs)} candidates at positions {sorted({p for p, _ in pairs})} "
        f"({preset.lana_steps} Adam steps of batch {preset.lana_batch})")
    t0 = time.perf_counter()
    entries = lana.lana_initialise(teacher, x_train, list(pairs), preset.lana_config(seed), progress=progress)
    t1 = time.perf_counter()
    scores = lana.lana_scores(teacher, entries, x_test, y_test, batch_size=preset.eval_batch)
    t2 = time.perf_counter()
    for pair, f in files.items():
        nn.save(entries[pair].module, f, metadata={"study": "substitution", "position": pair[0],
                                                   "candidate": pair[1], "final_loss": entries[pair].final_loss})
    rows = [{"position": p, "candidate": n, "loss": float(entries[(p, n)].final_loss),
             "score": float(scores[(p, n)]), "seconds": float(entries[(p, n)].seconds),
             "losses": [float(v) for v in entries[(p, n)].losses]} for p, n in pairs]
    minutes = {"lana_minutes": (t1 - t0) / 60, "scores_minutes": (t2 - t1) / 60}
    write_json(record, {"rows": rows, "minutes": minutes})
    return {pair: entries[pair].module for pair in pairs}, rows, minutes


# ---- latency and selection -----------------------------------------------------------------------

def latency_phase(teacher, preset: Preset, modules: dict, out: Path, log) -> Tuple[dict, float]:
    """The latency table (latency.measure_latency), measured once and kept in DIR/latency.json:
    a resumed study selects from the table it started with."""
    from .latency import measure_latency
    path = out / "latency.json"
    keys = sorted([p, n] for p, n in modules)
    if path.exists():
        saved = read_json(path)
        if saved.get("keys") == keys:
            return saved["latency"], saved["minutes"]
    by_pos: Dict[int, dict] = {}
    for (pos, name), module in modules.items():
        by_pos.setdefault(pos, {})[name] = module
    t0 = time.perf_counter()
    table = measure_latency(teacher, sorted(by_pos), by_pos, batch_sizes=preset.latency_batch_sizes,
                            repeats=preset.latency_repeats, progress=log)
    minutes = (time.perf_counter() - t0) / 60
    write_json(path, {"keys": keys, "latency": table, "minutes": minutes})
    return table, minutes


def selections(latency: dict, scores: dict, preset: Preset, budget_ms: Optional[float]) -> List[dict]:
    """One selection per latency batch size: budget_ms (when given) at the preset's selection
    batch, else budget_fraction of the teacher's measured latency at that batch. A given budget
    below the fastest possible network raises selection.select's ValueError."""
    from .selection import select
    rows = []
    for batch in preset.latency_batch_sizes:
        given = budget_ms is not None and batch == preset.selection_batch
        budget, why = (float(budget_ms), "given") if given else default_budget(latency, scores, preset, batch)
        s = select(latency, scores, budget, batch)
        rows.append({"batch": int(batch), "budget_ms": budget, "budget": why,
                     "choice": {str(p): n for p, n in sorted(s.choice.items())},
                     "predicted_ms": float(s.predicted_ms), "score_sum": float(s.score_sum)})
    return rows


def default_budget(latency: dict, scores: dict, preset: Preset, batch: int) -> Tuple[float, str]:
    """budget_fraction of the teacher's latency; where no choice of candidates is that fast (a
    small network whose time goes to the fixed layers), halfway from the fastest possible
    network to the teacher instead, so the default always selects something."""
    from .selection import fastest_ms
    network = float(latency["network"][str(batch)])
    budget = preset.budget_fraction * network
    floor = fastest_ms(latency, batch, scores)
    if budget >= floor:
        return budget, f"{preset.budget_fraction:g} x the teacher's {network:.4g} ms"
    budget = floor + max(0.0, network - floor) / 2
    return budget, (f"halfway from the fastest possible network ({floor:.4g} ms) to the teacher ({network:.4g} ms): "
                    f"{preset.budget_fraction:g} x the teacher is below the fastest")


def measure_selected(teacher, modules: dict, rows: List[dict], preset: Preset) -> None:
    """Each selection's measured end-to-end latency (the selected network built from the teacher
    and its LANA modules), against its prediction."""
    from .lana import substituted
    from .latency import network_latency
    for row in rows:
        net = substituted(teacher, {int(p): modules[(int(p), n)] for p, n in row["choice"].items()})
        row["measured_ms"] = float(network_latency(net, row["batch"], repeats=preset.latency_repeats))


def plan_phase(preset: Preset, out: Path, log) -> dict:
    """{name: measured plan} for each of the preset's plan_presets (presets.time_steps, .plan):
    a few timed training steps of that preset's network extrapolated to its trials, on one
    machine and on N workers. Timed once, before the trials load the cores; kept in DIR/plan.json."""
    from .presets import count_trials, describe_plan, plan, time_lana, time_steps
    from ..parallel import available_cores
    path = out / "plan.json"
    if path.exists():
        return read_json(path)
    plans = {}
    for name in preset.plan_presets:
        other = get_preset(name)
        p = plan(other, time_steps(other, steps=2 if other.depth > 16 else 3), count_trials(other),
                 lana=time_lana(other))
        p["text"] = describe_plan(other, p, cores=available_cores())
        log(p["text"])
        plans[name] = p
    write_json(path, plans)
    return plans


# ---- trials --------------------------------------------------------------------------------------

def trial_id(replacements: Dict[int, str], seed: int) -> str:
    """"baseline-s0", "p3-basic_e2-s0", "p1-conv_bn_e1+p6-identity-s0": replacements by "original"
    are the teacher's own block, so they are left out (such a trial IS the baseline)."""
    real = {int(p): n for p, n in replacements.items() if n != "original"}
    body = "+".join(f"p{p}-{n}" for p, n in sorted(real.items())) or "baseline"
    return f"{body}-s{seed}"


def trial_spec(tid: str, replacements: Dict[int, str], seed: int, teacher, modules: dict, preset: Preset,
               out: Path, blas_threads: int, callbacks=()) -> dict:
    """Everything a trial needs, as picklable plain values: the teacher and each replacement as
    (spec, state arrays), so a trial runs the same on a Dask worker on another machine."""
    real = {int(p): n for p, n in replacements.items() if n != "original"}
    return {"id": tid, "replacements": {str(p): n for p, n in sorted(real.items())}, "seed": int(seed),
            "teacher": (teacher.spec(), teacher.state_dict()),
            "modules": {p: (modules[(p, n)].spec(), modules[(p, n)].state_dict()) for p, n in real.items()},
            "preset": preset, "checkpoint_dir": str(out / "trials" / tid), "blas_threads": int(blas_threads),
            "callbacks": list(callbacks)}


def run_trial(spec: dict, shared) -> dict:
    """Fine-tune one network (the teacher with spec's replacements) and return its trial record:
    SGD + Nesterov, cosine over the last checkpoint's epochs, crop + flip; test accuracy at every
    checkpoint epoch of one continuing run. Each checkpoint's accuracy is kept in the trial's
    folder as it is measured and fit checkpoints every epoch, so a rerun after a kill resumes.
    `shared`: the prepared arrays, or the path of the .npz holding them (local pool)."""
    from threadpoolctl import threadpool_limits
    t0 = time.perf_counter()
    with threadpool_limits(limits=spec["blas_threads"], user_api="blas"):
        arrays = _arrays(shared)
        model = _build(spec)
        accuracy, history = _finetune(model, spec, arrays)
    return {"id": spec["id"], "replacements": spec["replacements"], "seed": spec["seed"],
            "accuracy": accuracy, "seconds": time.perf_counter() - t0,
            "train_seconds": sum(e["seconds"] for e in history), "history": history}


def _arrays(shared) -> dict:
    if isinstance(shared, (str, Path)):
        from ..io import load_arrays
        return load_arrays(shared)[0]
    return shared


def _build(spec: dict) -> nn.Module:
    teacher_spec, state = spec["teacher"]
    model = nn.Module.from_spec(teacher_spec)
    model.load_state_dict(state)
    for pos, (module_spec, module_state) in sorted(spec["modules"].items()):
        module = nn.Module.from_spec(module_spec)
        module.load_state_dict(module_state)
        model.replace_block(int(pos), module)
    return model


def _finetune(model, spec: dict, arrays: dict) -> Tuple[dict, list]:
    from ..data.augment import CropFlip
    from ..optim import SGD, CosineLR
    from ..train import evaluate, fit
    preset: Preset = spec["preset"]
    folder = Path(spec["checkpoint_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    train, test = floats(arrays, "train"), floats(arrays, "test")
    opt = SGD(model.parameters(), lr=preset.lr, momentum=preset.momentum, nesterov=True,
              weight_decay=preset.weight_decay)
    schedule = CosineLR(preset.lr, preset.epochs)   # over the LAST checkpoint: one continuing run
    accuracy, history = {}, []
    for epochs in preset.checkpoints:
        done = folder / f"accuracy-{epochs}.json"
        if done.exists():
            accuracy[str(epochs)] = read_json(done)["accuracy"]
            continue
        # fit extends the same run checkpoint by checkpoint: a described schedule lets `epochs` grow
        h = fit(model, train, epochs, opt, batch_size=preset.batch_size, seed=spec["seed"], schedule=schedule,
                label_smoothing=preset.label_smoothing, augment=CropFlip(preset.crop_padding),
                checkpoint_dir=folder, resume=True, progress=False, callbacks=spec["callbacks"],
                config={"study": "substitution", "trial": spec["id"]})
        history = h.epochs
        ev = evaluate(model, *test, batch_size=preset.eval_batch)
        accuracy[str(epochs)] = float(ev["accuracy"])
        write_json(done, {"epochs": epochs, "accuracy": float(ev["accuracy"]), "loss": float(ev["loss"])})
    if not history:
        from ..train import CHECKPOINT_NAME
        from ..io import read_meta
        ckpt = folder / CHECKPOINT_NAME
        history = read_meta(ckpt)["history"]["epochs"] if ckpt.exists() else []
    return accuracy, history


def run_trials(specs: List[dict], arrays: dict, out: Path, executor, progress, log) -> Tuple[List[str], List[str]]:
    """Run every spec whose DIR/trials/<id>.json is missing on `executor` (executors.py); each
    result is written as it arrives. Returns (computed ids, reused ids)."""
    folder = out / "trials"
    finished = {s["id"] for s in specs if (folder / f"{s['id']}.json").exists()}
    todo = [s for s in specs if s["id"] not in finished]
    reused = [s["id"] for s in specs if s["id"] in finished]
    if not todo:
        return [], reused
    log(f"trials: {len(todo)} to run ({len(reused)} finished before) on {executor.describe()}")
    computed = []
    shared = executor.share(arrays, "shared-data")
    futures = {executor.submit(run_trial, s, shared): s["id"] for s in todo}
    bar = _bar(len(todo), progress)
    try:
        for fut in as_completed(futures):
            result = fut.result()   # a failed trial stops the study; finished ones are kept
            write_json(folder / f"{result['id']}.json", result)
            computed.append(result["id"])
            bar.update(1)
            bar.set_postfix_str(result["id"], refresh=False)
    finally:
        bar.close()
        for fut in futures:
            fut.cancel()
    return computed, reused


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _bar(total: int, progress):
    if progress is None:
        progress = sys.stderr.isatty()
    if progress:
        from tqdm import tqdm
        return tqdm(total=total, desc="substitution trials", unit="trial", leave=True)

    class _Quiet:
        def update(self, n=1): pass
        def set_postfix_str(self, *a, **k): pass
        def close(self): pass
    return _Quiet()


# ---- the study -----------------------------------------------------------------------------------

def weights_sha256(model: nn.Module) -> str:
    """A fingerprint of a model's weights and buffers: a study's stages belong to one teacher (a
    cache retrained in between would otherwise mix two teachers' results in one folder)."""
    import hashlib
    h = hashlib.sha256()
    for name, array in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


def _check_identity(out: Path, ident: dict) -> None:
    """Refuse a folder holding a study of another configuration (its files would be mixed in).
    ident is compared as study.json holds it: through JSON, where tuples are lists (a preset's
    teacher config has tuples, so comparing the Python value would refuse every resume)."""
    path = out / "study.json"
    ident = json.loads(json.dumps(ident))
    if path.exists():
        old = read_json(path)
        if old != ident:
            diff = sorted(k for k in set(old) | set(ident) if old.get(k) != ident.get(k))
            raise ValueError(f"{out} holds a substitution study of another configuration (differs in: "
                             f"{', '.join(diff)}): choose another --out, or delete the folder to start afresh")
    write_json(path, ident)


def run_study(preset, out, *, scheduler=None, workers: Optional[int] = None, root=None, cache=None, data=None,
              budget_ms: Optional[float] = None, seed: int = 0, only=None, progress: Optional[bool] = None,
              log: Callable = print, trial_callbacks=(), scheduler_timeout: float = 10.0) -> dict:
    """Run (or resume) the study of `preset` ("paper", "cpu", "smoke" or a Preset) into folder
    `out`; returns the dict that results.json holds.

    scheduler: a Dask scheduler address (or a distributed LocalCluster) to run the trials on;
      None: a local process pool of `workers` processes (default: one per core).
    data: a Dataset-like object instead of loading CIFAR-10 (the smoke preset makes its own).
    budget_ms: the latency budget at the preset's selection batch (default: budget_fraction of
      the teacher's measured latency).
    seed: added to every trial's and LANA's seed (the cached teacher keeps its own).
    only: [(position, candidate)] to run instead of the preset's every-candidate-everywhere.
    trial_callbacks: fit callbacks handed to every trial (picklable; tests interrupt with one).
    scheduler_timeout: seconds to wait for the scheduler before SchedulerUnreachableError.
    """
    from ..outputs import writable_folder
    from .executors import make_executor
    preset = get_preset(preset) if isinstance(preset, str) else preset
    out = writable_folder(out)
    (out / "trials").mkdir(exist_ok=True)
    # connect first: an unreachable scheduler fails in seconds, not after the LANA phase (a local
    # pool starts its processes only when the first trial is submitted)
    with make_executor(scheduler, workers, scratch=out / "trials", timeout=scheduler_timeout) as executor:
        try:
            return _study(preset, out, executor, root=root, cache=cache, data=data, budget_ms=budget_ms, seed=seed,
                          only=only, progress=progress, log=log, trial_callbacks=trial_callbacks)
        finally:
            _remove(out / "trials" / "shared-data.npz")


def _study(preset: Preset, out: Path, executor, *, root, cache, data, budget_ms, seed, only, progress, log,
           trial_callbacks) -> dict:
    started = time.perf_counter()
    data = load_data(preset, data, root, seed)
    arrays = prepared(preset, data)
    log(f"substitution study, preset {preset.name}: data {describe_data(data)}; "
        f"{len(arrays['y_train']):,} training and {len(arrays['y_test']):,} test images")
    teacher, teacher_record = get_teacher(preset, out, arrays, cache, root, seed, progress)
    log(f"teacher: WRN-{teacher.depth}-{teacher.width}, {teacher_record['source']}")
    pairs = substitutions(teacher, preset, only)
    _check_identity(out, {"format": FORMAT, "preset": preset.to_dict(), "seed": seed,
                          "pairs": [list(p) for p in pairs], "data": describe_data(data, with_path=False),
                          "teacher_sha256": weights_sha256(teacher)})
    t0 = time.perf_counter()
    teacher_acc = _teacher_accuracy(teacher, arrays, preset, out)
    teacher_record.update(accuracy=teacher_acc, test_images=int(len(arrays["y_test"])))
    modules, lana_rows, lana_minutes = lana_phase(teacher, preset, pairs, arrays, out, seed, log, progress)
    scores = {(r["position"], r["candidate"]): r["score"] for r in lana_rows}
    latency, latency_minutes = latency_phase(teacher, preset, modules, out, log)
    chosen = selections(latency, scores, preset, budget_ms)
    measure_selected(teacher, modules, chosen, preset)

    specs = _specs(preset, pairs, chosen, seed, teacher, modules, out, executor.blas_threads, trial_callbacks)
    plans = plan_phase(preset, out, log)
    t1 = time.perf_counter()
    computed, reused = run_trials(specs, arrays, out, executor, progress, log)
    trials = [read_json(out / "trials" / f"{s['id']}.json") for s in specs]
    _attach_trials(chosen, trials, seed + preset.baseline_seeds[0])
    results = {
        "format": FORMAT, "preset": preset.to_dict(), "seed": seed, "data": describe_data(data),
        "teacher": teacher_record,
        "costs": _costs(teacher, pairs),
        "lana": [{k: r[k] for k in ("position", "candidate", "loss", "score", "seconds")} for r in lana_rows],
        "trials": [{k: t[k] for k in ("id", "replacements", "seed", "accuracy", "seconds")} for t in trials],
        "latency": latency, "selection": chosen, "plans": plans,
        "timing": {"teacher_minutes": teacher_record.get("train_minutes"), **lana_minutes,
                   "latency_minutes": latency_minutes, "before_trials_minutes": (t1 - t0) / 60,
                   "trials_minutes": (time.perf_counter() - t1) / 60,
                   "trial_minutes_sum": sum(t["seconds"] for t in trials) / 60,
                   "total_minutes": (time.perf_counter() - started) / 60},
        "resume": {"computed": computed, "reused": reused},
        "executor": executor.describe(),
    }
    return _finish(results, out, data, log)


def _attach_trials(chosen: List[dict], trials: List[dict], seed: int) -> None:
    """Each selection's trial id and fine-tuned accuracy (None where its network was not trained,
    as in a study run with `only`)."""
    by_id = {t["id"]: t for t in trials}
    for row in chosen:
        tid = trial_id({int(p): n for p, n in row["choice"].items()}, seed)
        row["trial"] = tid if tid in by_id else None
        row["accuracy"] = by_id[tid]["accuracy"] if tid in by_id else None


def _teacher_accuracy(teacher, arrays, preset: Preset, out: Path) -> float:
    """The teacher's accuracy on the study's test images (kept in DIR/teacher-accuracy.json)."""
    from ..train import evaluate
    path = out / "teacher-accuracy.json"
    if path.exists():
        return read_json(path)["accuracy"]
    acc = float(evaluate(teacher, *floats(arrays, "test"), batch_size=preset.eval_batch)["accuracy"])
    write_json(path, {"accuracy": acc})
    return acc


def _specs(preset, pairs, chosen, seed, teacher, modules, out, blas_threads, callbacks) -> List[dict]:
    """Baseline seeds, then every single substitution, then each latency batch's selected network
    (when it is none of those): the seeds of the substitutions are the first baseline seed's."""
    first = seed + preset.baseline_seeds[0]
    wanted = [({}, seed + s) for s in preset.baseline_seeds]
    wanted += [({p: n}, first) for p, n in pairs if n != "original"]
    for row in chosen:
        wanted.append(({int(p): n for p, n in row["choice"].items()}, first))
    specs, seen = [], set()
    for replacements, s in wanted:
        tid = trial_id(replacements, s)
        if tid not in seen:
            seen.add(tid)
            specs.append(trial_spec(tid, replacements, s, teacher, modules, preset, out, blas_threads, callbacks))
    return specs


def _costs(teacher, pairs) -> List[dict]:
    from .candidates import candidate_cost
    return [{"position": p, "candidate": n, **candidate_cost(teacher, p, n)} for p, n in pairs]


def _finish(results: dict, out: Path, data, log) -> dict:
    """Provenance, results.json (atomic), then the report when report.py can write one."""
    try:
        from ..provenance import stamp
        stamp(results, dataset=data if hasattr(data, "source_path") else getattr(data, "name", None))
    except Exception as exc:   # provenance is a record, never a reason to lose the study
        results["provenance"] = {"why": f"{type(exc).__name__}: {exc}"[:200]}
    write_json(out / "results.json", results)
    try:
        from .report import write_report
    except ImportError:
        log(f"wrote {out / 'results.json'} (no report: pyann.substitution.report is not available)")
        return results
    write_report(out)
    log(f"wrote {out / 'results.json'} and {out / 'report.md'}")
    return results
