"""pyann: a from-scratch neural-network engine for studying cheaper inference.

NumPy with hand-written backprop for training (pyann.ops, pyann.nn, pyann.optim, pyann.train,
pyann.parallel), datasets (pyann.data), C kernels through cffi for inference (pyann.kernels,
pyann.infer), the papers' systems built so far: ReLU prediction (pyann.relu_prediction) and
connection pruning (pyann.pruning), the CNN recipes (pyann.cnn_recipes; WideResNets with
replaceable blocks for the operation-substitution paper, whose study is not built yet), PyTorch
and ONNX interop (pyann.interop), figures (pyann.plots) and the provenance record every results
file carries (pyann.provenance). The README summarises the three papers.
"""
__version__ = "0.1.0"
