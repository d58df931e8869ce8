"""One thread pool at a time: inside a plan that also runs pyann's OpenMP kernels, BLAS runs on
one thread.

Why: after a multi-threaded OpenBLAS call its idle workers spin, waiting for more work, for about
0.1 s (OpenBLAS's thread timeout). An OpenMP kernel started in that window shares the cores with
them: its second thread is descheduled behind a spinning worker, and the first waits for it at
every barrier. Measured on a 2-core Xeon VM (a 784x300 layer at 10 % density, 512 samples,
kernels.sparse_tiled_gather): 0.22 ms alone, 8-15 ms in the 0.1 s after one `x @ w` of the same
size, 0.22 ms when that product ran under one_blas_thread(). A plan that interleaves the two
(a dense im2col convolution before a sparse one, say) would pay that at every step.

Outside a plan the same holds: code that calls a NumPy matmul and then runs a plan pays the spin
on the plan's first kernel. Run such matmuls under threadpoolctl's threadpool_limits(1), or start
Python with OPENBLAS_THREAD_TIMEOUT=4 (OpenBLAS's workers then sleep at once; each BLAS call pays
their wake-up instead).
"""
from __future__ import annotations

_CONTROLLER = None


def one_blas_thread():
    """A context manager: BLAS (OpenBLAS, MKL, ...) on one thread inside it (threadpoolctl;
    about 10 microseconds to enter and leave)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        import numpy  # noqa: F401  (the BLAS numpy loaded must be in the process to be found)
        from threadpoolctl import ThreadpoolController
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")
