"""pyann benchmarks: `python -m bench [relu|kernels|train|...]` (see bench/__main__.py)."""
