"""Raw (integer) images are refused by every entry point that runs a model, with one message:
fit, evaluate, predict (pyann.train) and plan.run (pyann.infer) all call
pyann.data.transforms.check_float_input. Before, evaluate and predict ran uint8 images through a
model trained on [0, 1] inputs and returned plausible but wrong numbers."""
import numpy as np
import pytest

from pyann import infer, nn
from pyann.data.transforms import FLOAT_INPUT_HINT, check_float_input
from pyann.optim import SGD
from pyann.train import evaluate, fit, predict


@pytest.fixture
def model():
    return nn.build("fcn1", rng=0)


@pytest.fixture
def raw():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (8, 1, 28, 28), dtype=np.uint8), rng.integers(0, 10, 8)


def _message(call):
    with pytest.raises(ValueError) as err:
        call()
    return str(err.value)


def test_every_entry_point_refuses_uint8_with_the_same_message(model, raw):
    x, y = raw
    messages = {
        "fit (train)": _message(lambda: fit(model, (x, y), 1, SGD(model.parameters(), lr=0.1))),
        "evaluate": _message(lambda: evaluate(model, x, y)),
        "predict": _message(lambda: predict(model, x)),
        "plan.run": _message(lambda: infer.compile(model, "dense").run(x)),
    }
    for where, message in messages.items():
        assert message == f"{where}: x has dtype uint8; {FLOAT_INPUT_HINT}"
    assert "pyann.data.to_float" in FLOAT_INPUT_HINT


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_other_integer_and_bool_inputs_are_refused_too(model, raw, dtype):
    x, y = raw
    with pytest.raises(ValueError, match=f"evaluate: x has dtype {np.dtype(dtype)};"):
        evaluate(model, x.astype(dtype), y)
    with pytest.raises(ValueError, match=f"predict: x has dtype {np.dtype(dtype)};"):
        predict(model, x.astype(dtype))


def test_float_inputs_still_run(model, raw):
    x, y = raw
    xf = x.astype(np.float32) / 255
    assert predict(model, xf).shape == (8, 10)
    assert 0 <= evaluate(model, xf, y)["accuracy"] <= 1
    np.testing.assert_allclose(infer.compile(model, "dense").run(xf), predict(model, xf), rtol=1e-4, atol=1e-5)
    assert check_float_input(xf, "x") is xf
