"""pyann.infer takes any activation predictor with the interface of pyann.infer.predictor, and
does not depend on pyann.relu_prediction (dependencies point one way)."""
import subprocess
import sys

import numpy as np
import pytest

from pyann import infer, nn
from pyann.nn.container import hidden_layers
from pyann.nn.module import fingerprint


class EveryOtherNeuron:
    """A user's shared predictor: computes the even neurons of hidden layer 2 only."""
    kind, rates, factors = "shared", None, {}

    def __init__(self, model, layers=(2,)):
        self.layers, self._fp = tuple(layers), fingerprint(model)
        self._widths = {k: lin.out_features for k, (_, lin) in enumerate(hidden_layers(model), 1)}

    def check_model(self, model):
        if fingerprint(model) != self._fp:
            raise ValueError("EveryOtherNeuron was fitted on another model")

    def mask(self, k):
        m = np.zeros(self._widths[k], np.uint8)
        m[::2] = 1
        return m

    def describe(self):
        return "every other neuron of layer 2"


def _reference(model, x):
    """The model with hidden layer 2's odd neurons forced to 0 after its ReLU."""
    h = x
    for i, layer in enumerate(model.layers):
        h = layer.forward(h)
        if i == hidden_layers(model)[1][0] + 1:   # the ReLU after hidden layer 2
            h = h.copy()
            h[:, 1::2] = 0
    return h


@pytest.mark.parametrize("mode", ["batched", "one_at_a_time"])
def test_a_users_predictor_drives_the_masked_plan(mode):
    model = nn.zoo.mlp([20, 16, 12, 5], rng=0).eval()
    x = np.random.default_rng(1).standard_normal((9, 20)).astype(np.float32)
    pred = EveryOtherNeuron(model)
    plan = infer.compile(model, "masked", pred, mode=mode, reorder=False)
    np.testing.assert_allclose(plan.run(x), _reference(model, x), rtol=1e-5, atol=1e-5)
    assert "every other neuron of layer 2" in plan.describe()
    other = nn.zoo.mlp([20, 16, 12, 5], rng=1)
    with pytest.raises(ValueError, match="another model"):
        infer.compile(other, "masked", pred)


def test_importing_infer_imports_no_relu_prediction():
    code = "import sys, pyann.infer; print(sorted(m for m in sys.modules if 'relu_prediction' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_fingerprint_changes_with_any_weight():
    model = nn.build("fcn1", rng=0)
    before = fingerprint(model)
    model.layers[1].weight.data[3, 4] += 1e-3
    assert fingerprint(model) != before
