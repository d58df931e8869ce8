# pyann: `make install` once, then `make test` / `make bench`.
# PYANN_DATA defaults to ../shared/datasets when that folder exists (the offline copies).
PYTHON ?= python
SHARED_DATA := $(abspath ../shared/datasets)
ifeq ($(origin PYANN_DATA), undefined)
  ifneq ($(wildcard $(SHARED_DATA)),)
    export PYANN_DATA := $(SHARED_DATA)
  endif
endif

.PHONY: install build test test-fast bench data reproduce-relu clean

install:            ## install pyann (editable) with its test dependencies; builds the C kernels
	$(PYTHON) -m pip install -e ".[test]"

build:              ## rebuild the C extension pyann._kernels in place (PYANN_PORTABLE=1: no -march=native)
	$(PYTHON) setup.py -q build_ext --inplace

test:               ## the whole test suite (real-data tests run when PYANN_DATA or ../shared/datasets exists)
	$(PYTHON) -m pytest -q

test-fast:          ## the tests that need no real dataset
	$(PYTHON) -m pytest -q -m "not realdata and not slow"

bench:              ## the main benchmark (ReLU prediction); `python -m bench all` runs every one
	$(PYTHON) -m bench

data:               ## find or download MNIST, Fashion-MNIST and CIFAR-10 and verify their checksums
	$(PYTHON) -m pyann.data fetch mnist
	$(PYTHON) -m pyann.data fetch fashion-mnist
	$(PYTHON) -m pyann.data fetch cifar10 || echo "CIFAR-10 (official) not available; see README 'Data'"

reproduce-relu:     ## ReLU-prediction study (Tables 1 and 3, Figure 2) for both datasets, and side by side
	$(PYTHON) -m pyann relu-study --dataset all --epochs 20 --out 'runs/relu-study-{dataset}'

clean:
	rm -rf build dist *.egg-info pyann/_kernels*.so pyann/_kernels.c .pytest_cache bench-results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
