"""Where a study's trials run: a local process pool (the default), or a Dask distributed cluster
when the user gives a scheduler address (`pip install 'pyann[dask]'`).

    with make_executor(None, workers=2) as ex:               # 2 processes, BLAS threads split
        data = ex.share({"x": ..., "y": ...})                 # once, not once per trial
        fut = ex.submit(run_trial, spec, data)

Both give concurrent.futures futures (Dask's ClientExecutor wraps its own), so the study code is
the same for both. A trial function sets its own BLAS thread count (the spec says how many): the
pool's initializer limits BLAS as well, for anything a worker runs before the trial does. A trial
computes the same numbers on either when both give it one BLAS thread: Dask workers started with
--nthreads 1, and the local pool's default of one worker per core (fewer workers get more BLAS
threads each, faster, but a BLAS may sum in another order with another thread count).

Several machines (the paper preset):
    dask scheduler                                   # on one machine: prints tcp://HOST:8786
    dask worker tcp://HOST:8786 --nthreads 1 --nworkers 2     # on each machine, one per core
    pyann substitution-study --preset paper --scheduler tcp://HOST:8786 --out /shared/DIR
Trials checkpoint into <out>/trials/<id>/ from the worker that runs them, so with several
machines --out should be a folder they all see (a network file system) for a killed trial to
resume where it stopped; without one, results still come back to the machine that runs the
study and only the resume of a half-done trial is lost.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, Optional

from ..parallel import available_cores, check_workers

DASK_MISSING = ("--scheduler needs Dask's distributed scheduler, which is not installed: "
                "pip install 'pyann[dask]'  (or: pip install 'dask[distributed]')")


class DaskMissingError(ImportError, ValueError):
    """--scheduler was given but dask.distributed is not installed (a ValueError too, so the command
    line prints it as one line like any other user error)."""


class SchedulerUnreachableError(ValueError):
    """The Dask scheduler address given cannot be reached (or is not a scheduler)."""


def limit_blas(threads: int) -> None:
    """Process pool initializer: at most `threads` BLAS threads in this worker process, so that
    workers x threads does not oversubscribe the cores."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=threads, user_api="blas")


class LocalExecutor:
    """A spawn-context process pool of `workers` processes with cores // workers BLAS threads each.
    share() writes arrays once to an .npz in `scratch` and hands trials its path (a process pool
    would otherwise pickle the arrays into every task)."""

    kind = "local"

    def __init__(self, workers: Optional[int] = None, scratch=None):
        cores = available_cores()
        self.workers = check_workers(workers) if workers is not None else cores
        self.blas_threads = max(1, cores // self.workers)
        self.scratch = Path(scratch) if scratch is not None else None
        self._pool = None

    def describe(self) -> str:
        return (f"local process pool: {self.workers} worker(s) x {self.blas_threads} BLAS thread(s) "
                f"on {available_cores()} core(s)")

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: a forked child inherits the parent's BLAS thread pool state and any
        # threads (tqdm's monitor, a Dask client), which deadlocks or oversubscribes
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=limit_blas, initargs=(self.blas_threads,))
        return self._pool

    def submit(self, fn, *args) -> Future:
        return self._start().submit(fn, *args)

    def share(self, arrays: dict, name: str = "shared") -> Any:
        """The path of an .npz holding `arrays` (a trial loads it), or the dict itself when there is
        no scratch folder."""
        if self.scratch is None:
            return arrays
        from ..io import save_arrays
        path = self.scratch / f"{name}.npz"
        save_arrays(path, arrays, {"format": "pyann-substitution-shared/1"})
        return str(path)

    def close(self, abort: bool = False) -> None:
        """Shut the pool down; abort (the study stopped on an error or Ctrl-C): end the worker
        processes now rather than wait for their trials, which resume from their last epoch."""
        if self._pool is None:
            return
        if abort:
            for process in list(getattr(self._pool, "_processes", {}).values()):   # ours, by handle
                process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.close(abort=exc_type is not None)


class DaskExecutor:
    """A dask.distributed Client on `address` and its concurrent.futures executor. share()
    scatters the arrays to every worker once; the trials get a Dask future that Dask resolves to
    the arrays on the worker."""

    kind = "dask"
    blas_threads = 1   # one per trial: start workers with --nthreads 1, one per core

    def __init__(self, address, timeout: float = 10.0):
        try:
            from distributed import Client
        except ImportError:
            raise DaskMissingError(DASK_MISSING) from None
        self.address = address
        _check_address(address)
        try:
            self.client = Client(address, timeout=f"{timeout}s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SchedulerUnreachableError(
                f"cannot reach the Dask scheduler at {_text(address)} within {timeout:g} s "
                f"({type(exc).__name__}: {_first_line(exc)}); start one with `dask scheduler` and workers with "
                f"`dask worker ADDRESS --nthreads 1`, or leave out --scheduler to run on this machine") from None
        _check_environment(self.client, _text(address))
        self._executor = self.client.get_executor(pure=False)
        info = self.client.scheduler_info()
        self.workers = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()) or None

    def describe(self) -> str:
        return f"Dask scheduler {_text(self.address)}: {self.workers or 'no'} worker thread(s) now"

    def submit(self, fn, *args) -> Future:
        return self._executor.submit(fn, *args)

    def share(self, arrays: dict, name: str = "shared") -> Any:
        return self.client.scatter(arrays, broadcast=True, hash=False)

    def close(self, abort: bool = False) -> None:
        # the client's futures are released with it, so the cluster drops trials nobody waits for
        try:
            self._executor.shutdown(wait=False)
        finally:
            self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.close(abort=exc_type is not None)


class ClusterEnvironmentError(ValueError):
    """The Dask scheduler or a worker cannot import pyann: the trials would fail there one by one."""


def _check_environment(client, address: str) -> None:
    """Every trial is a pickled call of pyann code, which the scheduler unpickles as well as the
    workers: each needs pyann installed (the same version), or Dask fails every trial with a
    deserialisation error that does not name the cause. Checked once, before any work."""
    # a lambda is pickled by value, so this probe itself needs no pyann on the other side
    probe = lambda: __import__("importlib.util").util.find_spec("pyann") is not None  # noqa: E731
    missing = []
    try:
        if not client.run_on_scheduler(probe):
            missing.append("the scheduler")
        missing += [f"worker {w}" for w, found in sorted(client.run(probe).items()) if not found]
    except Exception as exc:   # a scheduler that refuses the probe says nothing about pyann: go on
        if "pyann" in str(exc):
            missing.append(f"the cluster ({_first_line(exc)})")
    if missing:
        client.close()
        raise ClusterEnvironmentError(
            f"{', '.join(missing)} at {address} cannot import pyann: install it, with the same version, in the "
            f"environment that runs `dask scheduler` and every `dask worker` (pip install 'pyann[dask]'), then "
            f"restart them")


def _check_address(address) -> None:
    """A malformed address fails here, before a Client is half-built (whose clean-up at exit
    would print a traceback of its own)."""
    if not isinstance(address, str):
        return
    from distributed.comm.addressing import parse_address, parse_host_port
    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls", "ws", "wss"):   # inproc:// (an in-process cluster) has no port
            parse_host_port(location)
    except ValueError as exc:
        raise SchedulerUnreachableError(f"{address!r} is not a Dask scheduler address ({_first_line(exc)}); "
                                        f"expected e.g. tcp://HOST:8786") from None


def _text(address) -> str:
    # a LocalCluster object (tests) stands for its address
    return getattr(address, "scheduler_address", None) or str(address)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def make_executor(scheduler=None, workers: Optional[int] = None, scratch=None, timeout: float = 10.0):
    """A context-managed executor: with no scheduler, a local spawn process pool of `workers`
    processes (default: one per available core) with the cores split between them for BLAS;
    with a scheduler address ("tcp://host:8786", or a distributed LocalCluster), a Dask client's
    executor. An address that cannot be reached raises SchedulerUnreachableError within
    `timeout` seconds; Dask not installed raises DaskMissingError saying how to install it."""
    if scheduler is None:
        return LocalExecutor(workers, scratch)
    if workers is not None:
        check_workers(workers)   # Dask's worker count is the cluster's; still refuse a nonsense value
    return DaskExecutor(scheduler, timeout)
