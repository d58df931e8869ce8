# pyann: `make install` once, then `make test` / `make bench`.
# PYANN_DATA defaults to ../shared/datasets when that folder exists (the offline copies).
PYTHON ?= python
SHARED_DATA := $(abspath ../shared/datasets)
ifeq ($(origin PYANN_DATA), undefined)
  ifneq ($(wildcard $(SHARED_DATA)),)
    export PYANN_DATA := $(SHARED_DATA)
  endif
endif

.PHONY: help install build test test-fast sanitize bench data reproduce-relu reproduce-prune reproduce-substitution clean
.DEFAULT_GOAL := help

help:               ## list the targets and what each does (this list)
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-22s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

EXTRAS ?= test
install:            ## install pyann (editable) with its test dependencies (EXTRAS=test,interop adds torch, onnx, onnxruntime; ,dask adds dask[distributed]); builds the C kernels
	$(PYTHON) -m pip install -e ".[$(EXTRAS)]"

build:              ## rebuild the C extension pyann._kernels in place (PYANN_PORTABLE=1: no -march=native)
	$(PYTHON) setup.py -q build_ext --inplace

test:               ## the whole test suite (real-data tests run when PYANN_DATA or ../shared/datasets exists)
	$(PYTHON) -m pytest -q

test-fast:          ## the tests that need no real dataset
	$(PYTHON) -m pytest -q -m "not realdata and not slow"

SANITIZE_DIR := build/sanitize
# --capture=sys: a sanitizer report is written by C to fd 2 just before the abort; pytest's fd capture would swallow it
sanitize:           ## kernels built with AddressSanitizer + UBSan into build/sanitize; kernel, plan and data tests run on them
	mkdir -p $(SANITIZE_DIR)
	PYANN_SANITIZE=1 $(PYTHON) csrc/build_kernels.py $(SANITIZE_DIR) > $(SANITIZE_DIR).log 2>&1 || (cat $(SANITIZE_DIR).log; exit 1)
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0 \
	  UBSAN_OPTIONS=print_stacktrace=1 PYANN_KERNELS_DIR=$(SANITIZE_DIR) HYPOTHESIS_PROFILE=sanitize \
	  $(PYTHON) -m pytest -q -p no:cacheprovider --capture=sys tests/test_sanitize_build.py \
	  tests/test_kernels*.py tests/test_infer*.py tests/data

bench:              ## the main benchmark (ReLU prediction); `python -m bench all` runs every one
	$(PYTHON) -m bench

data:               ## find or download MNIST, Fashion-MNIST and CIFAR-10 and verify their checksums
	$(PYTHON) -m pyann data fetch mnist
	$(PYTHON) -m pyann data fetch fashion-mnist
	$(PYTHON) -m pyann data fetch cifar10 || echo "CIFAR-10 (official) not available; see README 'Data'"

reproduce-relu:     ## ReLU-prediction study (Tables 1 and 3, Figure 2) for both datasets, and side by side
	$(PYTHON) -m pyann relu-study --dataset all --epochs 20 --out 'runs/relu-study-{dataset}'

reproduce-prune:    ## connection-pruning study (Figures 2-6, error model, uniform vs optimal allocation) for fcn1, fcn2, cnn3; resumes
	$(PYTHON) -m pyann prune-study --model all --out 'runs/prune-study-{model}'

reproduce-substitution: ## operation-substitution study, cpu preset (WRN-16-2, ~1 h on 2 cores after the cached teacher): Tables 2-3, LANA correlations, latency selection; resumes
	$(PYTHON) -m pyann substitution-study --preset cpu --out runs/substitution-study-cpu

clean:              ## remove build products, caches and bench-results/ (not the trained-model cache)
	rm -rf build dist *.egg-info pyann/_kernels*.so pyann/_kernels.c .pytest_cache bench-results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
