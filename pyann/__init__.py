"""pyann: a from-scratch neural-network engine for studying cheaper inference.

NumPy with hand-written backprop for training (pyann.ops, pyann.nn, pyann.optim, pyann.train,
pyann.parallel), datasets (pyann.data), C kernels through cffi for inference (pyann.kernels,
pyann.infer), the three papers' systems: ReLU prediction (pyann.relu_prediction), connection
pruning (pyann.pruning; sparse kernels in pyann.kernels and pyann.infer) and operation
substitution (pyann.substitution: candidate blocks, LANA initialisation, the study runner,
latency-budget selection), the CNN recipes (pyann.cnn_recipes), PyTorch and ONNX interop
(pyann.interop), figures (pyann.plots) and the provenance record every results file carries
(pyann.provenance). The README summarises the three papers.
"""
__version__ = "0.1.0"
