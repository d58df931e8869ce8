"""Connection pruning (paper: "A Study on Compression of Connections in Deep Artificial Neural
Networks"): masks that stay pruned, sweeps, masked retraining, the error model, per-layer
sensitivity and per-layer allocation.

    from pyann import pruning
    pruning.prune(model, threshold=0.05)                  # the paper: |w| < t, every layer
    pruning.prune(model, ["1"], fraction=0.5)             # half of what is left in layer "1"
    pruning.prune(model, fraction=0.9, scope="global")    # rank all layers' weights together
    pruning.prune(model, fraction=0.5, block=(4, 1))      # 4 outputs x 1 input per unit
    print(pruning.sparsity_report(model))                 # per layer and total, c'/c
    fit(model, ...)                                       # masks hold: nothing to call
    nn.save(model, "pruned.npz"); nn.load("pruned.npz")   # masks saved and restored
    pruning.make_permanent(model)                         # bake the masks, drop them

Modules: masks (prune, prune_to_density, masks, set_masks, make_permanent), report
(sparsity_report), schedule (polynomial_sparsity, GradualPruning), sweeps (sweep,
prune_and_retrain, sensitivity and its CSV), error_model (ErrorModel, eq. 1-3), allocation
(uniform eq. 4, optimal, gain eq. 5).
"""
from .allocation import Allocation, allocate, apply_allocation, optimal, uniform
from .error_model import ErrorModel, knee_points
from .masks import (clone, density, make_permanent, masks, prunable_layers, prune, prune_to_density,
                    remove_masks, resolve_layers, set_masks)
from .report import SparsityReport, SparsityRow, sparsity_report
from .schedule import GradualPruning, polynomial_sparsity
from .sweeps import (SensitivityRow, SweepPoint, curves, prune_and_retrain, read_sensitivity_csv,
                     sensitivity, sensitivity_csv, sweep, write_sensitivity_csv)

__all__ = ["Allocation", "allocate", "apply_allocation", "optimal", "uniform", "ErrorModel", "knee_points",
           "clone", "density", "make_permanent", "masks", "prunable_layers", "prune", "prune_to_density",
           "remove_masks", "resolve_layers", "set_masks", "SparsityReport", "SparsityRow", "sparsity_report",
           "GradualPruning", "polynomial_sparsity", "SensitivityRow", "SweepPoint", "curves",
           "prune_and_retrain", "read_sensitivity_csv", "sensitivity", "sensitivity_csv", "sweep",
           "write_sensitivity_csv"]
