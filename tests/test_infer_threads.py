"""pyann.infer.threads: BLAS on one thread inside plans that also run pyann's OpenMP kernels."""
from contextlib import contextmanager

import numpy as np
from threadpoolctl import threadpool_info

from pyann import infer, nn
from pyann.infer import sequential
from pyann.infer.threads import one_blas_thread


def _blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]


def test_one_blas_thread_limits_blas_inside_and_restores_it():
    np.ones((64, 64)) @ np.ones((64, 64))   # BLAS loaded
    before = _blas_threads()
    assert before   # numpy's BLAS is found (else the limit would do nothing)
    with one_blas_thread():
        assert _blas_threads() == [1] * len(before)
    assert _blas_threads() == before


def test_a_sparse_convolutional_plan_runs_its_dense_products_on_one_blas_thread(monkeypatch):
    model = nn.build("cnn3", rng=0).eval()
    products, limited = [], []
    product, real_limit = sequential.SequentialPlan._product, sequential.one_blas_thread

    def count(self, s, cols_t):
        products.append(self.kernel)
        return product(self, s, cols_t)

    @contextmanager
    def spy():
        with real_limit():
            limited.append(_blas_threads())   # what BLAS has while the product runs
            yield
    monkeypatch.setattr(sequential.SequentialPlan, "_product", count)
    monkeypatch.setattr(sequential, "one_blas_thread", spy)
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    before = _blas_threads()
    for kind, kernels in (("sparse", ["dense", "sparse", "dense"]), ("numpy", None)):
        plan = infer.compile(model, kind, layer_kernels=kernels) if kernels else infer.compile(model, kind)
        products.clear(), limited.clear()
        np.testing.assert_allclose(plan.run(x), model.forward(x), rtol=1e-4, atol=1e-4)
        assert products
        # beside pyann's OpenMP kernels every product on one BLAS thread; the all-NumPy plan: BLAS's own
        assert limited == ([[1] * len(before)] * len(products) if kind == "sparse" else [])
    assert _blas_threads() == before
