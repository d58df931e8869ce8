"""LANA-style initialisation of candidate blocks (Molchanov et al., ECCV 2022): layer-wise
distillation from a frozen teacher, and the LANA score of each candidate.

Distillation. The teacher (a trained WideResNet) is frozen and runs in eval mode. Each
candidate at position p learns to reproduce block p's output from block p's input, with the
normalised MSE ||f(x) - y||^2 / ||y||^2 (pyann.ops.nmse_forward) and its own Adam. The
efficient way: each step draws one batch and makes ONE teacher pass over it (block_io), which
feeds every candidate at every position its block's true input; no gradient crosses blocks, so
the candidates train independently on the same activations (steps teacher passes in all, not
steps x candidates).

Score. A candidate's LANA score is the test accuracy of the teacher with only that block
swapped in, before any fine-tuning (lana_scores). The blocks before the position are the
teacher's own, so their activations are computed once per batch and shared by every candidate:
only the candidate and the blocks after it run per candidate.
"""
from __future__ import annotations

import time
import zlib
from dataclasses import asdict, dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from .. import nn
from ..data.transforms import check_float_input
from ..nn.module import eval_mode, positive_int
from ..ops import nmse_backward, nmse_forward
from ..optim import Adam
from .candidates import block_slot, candidate_for, copy_module

# names whose modules need no training: nothing to learn (identity) or already exact (original)
UNTRAINED = ("original", "identity")


@dataclass(frozen=True)
class LanaConfig:
    """steps: Adam steps per candidate (one shared teacher pass each); batch_size: images per
    step (also the size of the held-out batch that measures final_loss); lr: Adam's step size;
    seed: the batches, the held-out batch and the candidates' initial weights."""
    steps: int
    batch_size: int
    lr: float
    seed: int = 0

    def __post_init__(self):
        for name, low in (("steps", 0), ("batch_size", 1), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"LanaConfig: {name} must be an integer >= {low}, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < float("inf")):
            raise ValueError(f"LanaConfig: lr must be a positive number, got {self.lr!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LanaEntry:
    """module: the initialised candidate (train mode); losses: its training nmse per step
    (empty for "original" and "identity", which are not trained); final_loss: its mean nmse on
    the held-out batch in eval mode after training; seconds: its own forward, backward and Adam
    time plus the held-out measurement (the shared teacher passes are not included)."""
    module: nn.Module
    losses: List[float]
    final_loss: float
    seconds: float


# ---- the frozen teacher ---------------------------------------------------------------------------

def _check_positions(teacher, positions: Iterable[int]) -> List[int]:
    """Sorted distinct positions, each checked (ValueError for one out of range)."""
    positions = list(positions)
    if not positions:
        raise ValueError("no block positions given")
    return sorted({block_slot(teacher, pos).pos for pos in positions})


def _layers(teacher) -> List[Tuple[str, nn.Module]]:
    """The teacher's children in the order WideResNet.forward runs them."""
    return list(teacher.children())


def _suffix(teacher, pos: int) -> List[nn.Module]:
    """The layers that run after block pos (later blocks and the head)."""
    names = [name for name, _ in _layers(teacher)]
    after = names.index(f"block{pos}") + 1
    return [layer for _, layer in _layers(teacher)[after:]]


def block_io(teacher, x, positions) -> Dict[int, Tuple[np.ndarray, np.ndarray]]:
    """{pos: (block input, block output)} for the requested positions, from one eval-mode forward
    pass of the teacher over x (N, C, H, W): no backward, no running statistic changes, and
    nothing after the last requested block runs."""
    wanted = _check_positions(teacher, positions)
    h = check_float_input(x, "block_io")
    found = {}
    with eval_mode(teacher):
        for name, layer in _layers(teacher):
            pos = int(name[5:]) if name.startswith("block") else None
            out = layer.forward(h)
            if pos in wanted:
                found[pos] = (h, out)
                if len(found) == len(wanted):
                    break
            h = out
    return found


# ---- distillation ---------------------------------------------------------------------------------

def _check_replacements(replacements) -> List[Tuple[int, str]]:
    pairs = []
    for item in replacements:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ValueError(f"a replacement is a (position, candidate name) pair, got {item!r}")
        pairs.append((item[0], item[1]))
    if not pairs:
        raise ValueError("no replacements given: nothing to initialise")
    if len(set(pairs)) != len(pairs):
        raise ValueError(f"replacements repeat a (position, name) pair: {pairs}")
    return pairs


def candidate_seed(seed: int, pos: int, name: str) -> np.random.Generator:
    """The generator of a candidate's initial weights: fixed by (seed, position, name) alone, so
    one candidate's weights do not depend on which others are initialised with it."""
    return np.random.default_rng([seed, pos, zlib.crc32(name.encode())])


def _split(n: int, config: LanaConfig) -> Tuple[np.ndarray, np.ndarray]:
    """(training pool, held-out batch) indices: the held-out batch (batch_size images, at most
    half the set) is drawn once by the seed and never trained on."""
    if n < 2:
        raise ValueError(f"lana_initialise needs at least 2 training images, got {n}")
    held = min(config.batch_size, n // 2)
    order = np.random.default_rng([config.seed, 0]).permutation(n)
    return order[held:], order[:held]


class _Learner:
    """One candidate being distilled: its module, its own Adam, its losses and its time."""

    def __init__(self, pos: int, name: str, module: nn.Module, lr: float):
        self.pos, self.name, self.module = pos, name, module
        self.losses: List[float] = []
        self.seconds = 0.0
        self.trains = name not in UNTRAINED and bool(module.parameters())
        self.optimizer = Adam(module.parameters(), lr=lr) if self.trains else None

    def step(self, block_input: np.ndarray, block_output: np.ndarray, step: int) -> None:
        t0 = time.perf_counter()
        self.module.train()
        loss, cache = nmse_forward(self.module.forward(block_input), block_output)
        if not np.isfinite(loss):
            raise ValueError(f"LANA distillation of {self.name!r} at position {self.pos} diverged at step "
                             f"{step + 1} (loss {loss}): lower the learning rate")
        self.module.backward(nmse_backward(cache))
        self.optimizer.step()
        self.losses.append(loss)
        self.seconds += time.perf_counter() - t0

    def held_out_loss(self, block_input: np.ndarray, block_output: np.ndarray) -> float:
        t0 = time.perf_counter()
        with eval_mode(self.module):
            loss = nmse_forward(self.module.forward(block_input), block_output)[0]
        self.seconds += time.perf_counter() - t0
        return float(loss)


def lana_initialise(teacher, x_train, replacements, config: LanaConfig,
                    progress: Optional[bool] = None) -> Dict[Tuple[int, str], LanaEntry]:
    """Initialise a candidate for each (position, name) in replacements by distillation from the
    frozen teacher (see the module docstring); returns {(pos, name): LanaEntry}.

    Each of config.steps steps draws config.batch_size images of x_train (seeded), makes one
    teacher pass (block_io) and gives every trained candidate one Adam step on the nmse against
    its block's true output, the candidates in train mode (BN batch statistics). "original" (an
    exact copy) and "identity" (no parameters) are not trained. final_loss of every entry is
    then the mean nmse on a held-out batch (batch_size images never trained on, at most half of
    x_train), the candidate in eval mode. progress: a tqdm bar over the steps; None = only when
    stderr is a terminal. ValueError for bad names or positions (candidate_for), repeated
    pairs, fewer than 2 images, or a loss that is not finite.
    """
    if not isinstance(config, LanaConfig):
        raise ValueError(f"config must be a LanaConfig, got {type(config).__name__}")
    pairs = _check_replacements(replacements)
    x_train = check_float_input(x_train, "lana_initialise")
    pool, held = _split(len(x_train), config)
    learners = [_Learner(pos, name, candidate_for(teacher, pos, name, candidate_seed(config.seed, pos, name)),
                         config.lr) for pos, name in pairs]
    training = [learner for learner in learners if learner.trains]
    for learner in training:   # the activations fed in are data: their gradient is never read
        learner.module.set_input_grad(False)
    try:
        _distil(teacher, x_train, pool, training, config, progress)
    finally:
        for learner in training:   # it will sit inside a network that trains end to end
            learner.module.set_input_grad(True)
    io = block_io(teacher, x_train[held], [learner.pos for learner in learners])
    return {(c.pos, c.name): LanaEntry(c.module, c.losses, c.held_out_loss(*io[c.pos]), c.seconds)
            for c in learners}


def _distil(teacher, x_train, pool, training: List[_Learner], config: LanaConfig, progress) -> None:
    """config.steps steps, one shared teacher pass each, for the candidates that train."""
    if not training or config.steps == 0:
        return
    from ..train import _progress
    rng = np.random.default_rng([config.seed, 1])
    positions = sorted({learner.pos for learner in training})
    size = min(config.batch_size, len(pool))
    bar = _progress(config.steps, "LANA distillation", progress)
    try:
        for step in range(config.steps):
            io = block_io(teacher, x_train[rng.choice(pool, size=size, replace=False)], positions)
            for learner in training:
                learner.step(*io[learner.pos], step)
            bar.update()
            bar.set_postfix(nmse=f"{np.mean([learner.losses[-1] for learner in training]):.3f}")
    finally:
        bar.close()


# ---- scores ---------------------------------------------------------------------------------------

def substituted(teacher, modules: Dict[int, nn.Module]):
    """A copy of teacher with block pos replaced by a copy of modules[pos] for each pos (the
    teacher and the modules are left untouched)."""
    model = copy_module(teacher)
    for pos, module in modules.items():
        model.replace_block(int(pos), copy_module(module))
    return model


def lana_scores(teacher, entries, x_test, y_test, batch_size: int = 100) -> Dict[Tuple[int, str], float]:
    """{(pos, name): accuracy in [0, 1]} of the teacher with only block pos replaced by that
    entry's module (a LanaEntry or a Module), in eval mode, before any fine-tuning.

    Equal to pyann.train.evaluate(substituted(teacher, {pos: module}), x_test, y_test,
    batch_size)["accuracy"], but each batch runs the shared part (the teacher up to the last
    position) once and only the candidate and the blocks after it per entry. Neither the teacher
    nor the modules change (eval mode throughout, modes restored).
    """
    modules = {key: (entry.module if isinstance(entry, LanaEntry) else entry) for key, entry in entries.items()}
    if not modules:
        raise ValueError("no entries to score")
    positions = _check_positions(teacher, [pos for pos, _ in modules])
    x_test = check_float_input(x_test, "lana_scores")
    y_test = np.asarray(y_test)
    if len(x_test) == 0 or y_test.shape != (len(x_test),):
        raise ValueError(f"lana_scores: x_test has {len(x_test)} images and y_test shape {y_test.shape}; "
                         f"they must be non-empty and match")
    batch_size = positive_int("lana_scores", "batch_size", batch_size)
    suffixes = {pos: _suffix(teacher, pos) for pos in positions}
    correct = dict.fromkeys(modules, 0)
    with eval_mode(teacher, *modules.values()):
        for start in range(0, len(x_test), batch_size):
            io = block_io(teacher, x_test[start:start + batch_size], positions)
            labels = y_test[start:start + batch_size]
            for (pos, name), module in modules.items():
                h = module.forward(io[pos][0])
                for layer in suffixes[pos]:
                    h = layer.forward(h)
                correct[(pos, name)] += int((h.argmax(axis=1) == labels).sum())
    return {key: count / len(x_test) for key, count in correct.items()}
