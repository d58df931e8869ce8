"""`python -m pyann substitution-study`: the operation-substitution study from the shell.

    pyann substitution-study --preset cpu --out runs/substitution-study-cpu
    pyann substitution-study --preset smoke --out /tmp/substitution-smoke         (seconds)
    pyann substitution-study --preset paper --scheduler tcp://HOST:8786 --out /shared/DIR
    pyann substitution-study --preset paper --estimate      (measured plan only, nothing trained)

An interrupted study resumes where it stopped when run again with the same options and --out.
`add_substitution_study_parser(subparsers, **parser_kwargs)` adds the subcommand to pyann's
argparse subcommands (pyann.cli) and sets `func=cmd_substitution_study`, which returns the exit code.
"""
from __future__ import annotations

import argparse

from ..argtypes import positive_float, positive_int, seed

DEFAULT_OUT = "runs/substitution-study-{preset}"


def pair(text: str):
    """"3:basic_e2" -> (3, "basic_e2"); the position and name are checked by the study against the
    network (so the message can name its block range and the known candidates)."""
    pos, sep, name = text.partition(":")
    if not sep or not name or not pos.strip().lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"expected POSITION:CANDIDATE (e.g. 3:basic_e2), got {text!r}")
    return int(pos), name.strip()


def cmd_substitution_study(args) -> int:
    from ..cli.common import offline_mode, prepare_data
    from ..outputs import writable_folder
    from .presets import get_preset
    preset = get_preset(args.preset)
    if args.estimate:
        return _estimate(preset)
    out = (args.out or DEFAULT_OUT).format(preset=preset.name)
    writable_folder(out)   # proved writable before any data is read or network trained
    if preset.teacher is not None:
        prepare_data("cifar10", args, allow_unofficial=True)   # header line: where the data came from
    print(f"substitution-study {preset.name}: writing to {out}/ (a rerun resumes)", flush=True)
    from .study import run_study
    with offline_mode(args):
        r = run_study(preset, out, scheduler=args.scheduler, workers=args.workers, root=args.data_root,
                      budget_ms=args.budget_ms, seed=args.seed, only=args.only,
                      scheduler_timeout=args.scheduler_timeout)
    _summary(r, out)
    return 0


def _estimate(preset) -> int:
    from ..parallel import available_cores
    from .presets import count_trials, describe_plan, plan, time_lana, time_steps
    p = plan(preset, time_steps(preset), count_trials(preset), lana=time_lana(preset))
    print(describe_plan(preset, p, cores=available_cores()))
    return 0


def _summary(r: dict, out: str) -> None:
    base = [t["accuracy"] for t in r["trials"] if t["replacements"] == {}]
    last = str(r["preset"]["checkpoints"][-1])
    if base:
        import numpy as np
        accs = [b[last] for b in base]
        std = np.std(accs, ddof=1) if len(accs) > 1 else 0.0   # the sample std, as the report gives it
        print(f"  baseline after {last} epochs: {100 * np.mean(accs):.2f} +- {100 * std:.2f}% over {len(accs)} seeds "
              f"(teacher {100 * r['teacher']['accuracy']:.2f}%)")
    for s in r["selection"]:
        acc = "" if not s.get("accuracy") else f", {100 * s['accuracy'][last]:.2f}% after fine-tuning"
        print(f"  batch {s['batch']}: budget {s['budget_ms']:.3g} ms -> {s['choice']} predicted "
              f"{s['predicted_ms']:.3g} ms, measured {s['measured_ms']:.3g} ms{acc}")
    print(f"  {len(r['resume']['computed'])} trials run, {len(r['resume']['reused'])} reused; "
          f"{r['timing']['total_minutes']:.1f} min; wrote results.json to {out}/", flush=True)


def add_substitution_study_parser(subparsers, **parser_kwargs) -> argparse.ArgumentParser:
    """Add `substitution-study` to an argparse subparsers object; returns its parser."""
    from ..cli.common import add_data_arguments
    from .presets import PRESETS
    p = subparsers.add_parser(
        "substitution-study", **parser_kwargs,
        help="operation-substitution study: candidate blocks, LANA initialisation, fine-tuning trials, "
             "latency-aware selection",
        description="Replace one block of a trained WideResNet by each candidate operation (initialised "
                    "LANA-style from the frozen teacher), fine-tune, and record test accuracy at two checkpoints; "
                    "measure every candidate's latency here and select the best-scoring network within a latency "
                    "budget. Trials run on a local process pool, or on a Dask cluster with --scheduler. Writes "
                    "results.json, report.md and every trial's result to --out; a rerun resumes.")
    p.add_argument("--preset", required=True, choices=sorted(PRESETS),
                   help="paper: WRN-40-2, the paper's setting (a cluster); cpu: WRN-16-2 scaled to ~1 h on 2 cores; "
                        "smoke: seconds, synthetic data")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help="output folder; '{preset}' is replaced by the preset")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler address (tcp://HOST:8786) to run the trials on (pip install 'pyann[dask]'); "
                        "default: a local process pool")
    p.add_argument("--scheduler-timeout", type=positive_float, default=10.0, metavar="SECONDS",
                   help="how long to wait for the scheduler before giving up with a clear error")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="local trial processes (default: one per core; the cores are split between them for BLAS)")
    p.add_argument("--budget-ms", type=positive_float, default=None, metavar="X",
                   help="latency budget in ms at batch 128 (smoke: 8) for the selection; default: 0.8 x the "
                        "teacher's measured latency")
    p.add_argument("--only", type=pair, nargs="+", default=None, metavar="POS:NAME",
                   help="run only these substitutions (e.g. 3:basic_e2 6:identity) instead of every candidate at "
                        "every position of the preset")
    p.add_argument("--seed", type=seed, default=0,
                   help="added to the seeds of LANA and every trial (not the teacher's)")
    p.add_argument("--estimate", action="store_true",
                   help="time a few training steps of the preset's network and print how long its trials take on "
                        "this machine and on N workers; runs nothing else")
    add_data_arguments(p)
    p.set_defaults(func=cmd_substitution_study)
    return p
