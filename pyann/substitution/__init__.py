"""Operation substitution (paper 3, Seo & Lee): replace one block of a trained WideResNet by a
candidate operation initialised LANA-style, fine-tune, and compare accuracies; then pick the
operations that make the network fastest at a given accuracy from latencies measured here.

Modules, in the order a study uses them:
  teacher      the trained WRN, from the trained-model cache (TeacherConfig, trained_teacher)
  candidates   the paper's seven candidates and users' own: candidate_for, candidate_cost, registry
  lana         distillation of a candidate from the frozen teacher; LANA scores
  presets      paper / cpu / smoke: everything that shapes a study, and its measured time plan
  executors    a local process pool or a Dask cluster for the trials
  study        run_study: teacher -> LANA -> latency -> selection -> trials -> results.json
  latency      per-candidate and whole-network latency, timed round-robin
  selection    the exact multiple-choice knapsack: one candidate per position within a budget
  correlation  Kendall tau-b and Spearman rho with ties
  report       report.md and the figures, from results.json alone
  cli          `pyann substitution-study`
"""
from .candidates import (candidate_cost, candidate_for, candidate_names, describe_candidate, is_available,
                         register_candidate, unregister_candidate)
from .lana import LanaConfig, block_io, lana_initialise, lana_scores, substituted
from .presets import PRESETS, get_preset
from .selection import select
from .study import run_study
from .teacher import TeacherConfig, trained_teacher

__all__ = ["LanaConfig", "PRESETS", "TeacherConfig", "block_io", "candidate_cost", "candidate_for",
           "candidate_names", "describe_candidate", "get_preset", "is_available", "lana_initialise",
           "lana_scores", "register_candidate", "run_study", "select", "substituted", "trained_teacher",
           "unregister_candidate"]
