"""Where trials run: the local spawn process pool with the BLAS threads split between its
workers, arrays shared once through a file, Dask through a scheduler address, and the clear
errors (an unreachable or malformed address within seconds, Dask not installed)."""
import os
import socket
import sys
import time

import numpy as np
import pytest

from pyann.parallel import available_cores
from pyann.substitution import executors


def _blas_threads_and_pid():
    from threadpoolctl import threadpool_info
    blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    return os.getpid(), blas


def _total(arrays):
    return float(executors_load(arrays)["x"].sum())


def executors_load(shared):
    from pyann.substitution.study import _arrays
    return _arrays(shared)


def test_local_pool_runs_in_other_processes_with_split_blas_threads(tmp_path):
    with executors.make_executor(None, workers=1, scratch=tmp_path) as ex:
        assert ex.kind == "local" and ex.blas_threads == available_cores()
        pid, blas = ex.submit(_blas_threads_and_pid).result(timeout=60)
        assert pid != os.getpid()
        assert all(n <= ex.blas_threads for n in blas)
        assert "1 worker(s)" in ex.describe()


def test_local_share_writes_the_arrays_once(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    ex = executors.make_executor(None, workers=2, scratch=tmp_path)
    assert ex.blas_threads == max(1, available_cores() // 2)
    shared = ex.share({"x": x}, "data")
    assert shared == str(tmp_path / "data.npz")
    assert (executors_load(shared)["x"] == x).all()
    ex.close()   # never started: closing is a no-op


def test_bad_worker_count_is_refused():
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        executors.make_executor(None, workers=0)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_a_clear_error_within_seconds():
    pytest.importorskip("distributed")
    t0 = time.perf_counter()
    with pytest.raises(executors.SchedulerUnreachableError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1"):
        executors.make_executor(f"tcp://127.0.0.1:{_free_port()}", timeout=1.5)
    assert time.perf_counter() - t0 < 8


def test_malformed_scheduler_address_is_a_clear_error():
    pytest.importorskip("distributed")
    with pytest.raises(executors.SchedulerUnreachableError, match="not a Dask scheduler address"):
        executors.make_executor("localhost", timeout=1)


def test_dask_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)   # import distributed -> ImportError
    with pytest.raises(executors.DaskMissingError, match=r"pip install 'pyann\[dask\]'") as info:
        executors.make_executor("tcp://127.0.0.1:8786")
    assert isinstance(info.value, ValueError)   # the command line prints it as a one-line user error


def test_dask_executor_runs_submitted_work_and_shared_arrays():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with executors.make_executor(cluster.scheduler_address) as ex:
            assert ex.kind == "dask" and ex.blas_threads == 1 and "Dask scheduler" in ex.describe()
            shared = ex.share({"x": np.ones((2, 3), np.float32)})
            assert ex.submit(_total, shared).result(timeout=60) == 6.0


class FakeClient:
    """Answers the environment probe as a cluster would: the scheduler's, then each worker's."""

    def __init__(self, scheduler: bool, workers: dict):
        self.scheduler, self.workers, self.closed = scheduler, workers, False

    def run_on_scheduler(self, probe):
        assert probe() is True   # the probe itself runs here (pyann is importable in the tests)
        return self.scheduler

    def run(self, probe):
        return dict(self.workers)

    def close(self):
        self.closed = True


def test_a_cluster_that_cannot_import_pyann_is_named_before_any_work():
    client = FakeClient(False, {"tcp://a:1": True, "tcp://b:2": False})
    with pytest.raises(executors.ClusterEnvironmentError,
                       match=r"the scheduler, worker tcp://b:2 at tcp://s:8786 cannot import pyann: install it"):
        executors._check_environment(client, "tcp://s:8786")
    assert client.closed
    fine = FakeClient(True, {"tcp://a:1": True})
    executors._check_environment(fine, "tcp://s:8786")
    assert not fine.closed
