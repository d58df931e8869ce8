"""pyann: a from-scratch neural-network engine for studying cheaper inference.

NumPy with hand-written backprop for training (pyann.ops, pyann.nn, pyann.optim, pyann.train),
C kernels through cffi for inference (pyann.kernels, pyann.infer), and the three papers'
systems: pyann.relu_prediction, pyann.pruning, pyann.substitution.
"""
__version__ = "0.1.0"
