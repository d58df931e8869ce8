"""model.summary(): output shapes, parameters and multiply-adds per layer, and totals."""
import numpy as np
import pytest

from pyann import nn
from pyann.nn import zoo


def test_mlp5_summary_counts():
    s = zoo.build("mlp5").summary()
    assert s.input_shape == (784,)
    linear = [r for r in s.rows if r.kind == "Linear"]
    assert [r.output_shape for r in linear] == [(512,)] * 4 + [(10,)]
    assert [r.macs for r in linear] == [784 * 512] + [512 * 512] * 3 + [512 * 10]
    assert s.total_params == zoo.build("mlp5").num_parameters() == 1_195_018
    assert "total" in str(s) and "1,195,018" in str(s)


def test_cnn3_summary_shapes_and_conv_macs():
    s = zoo.cnn3().summary((1, 28, 28))
    shapes = {r.name: r.output_shape for r in s.rows}
    assert shapes["0"] == (32, 28, 28) and shapes["2"] == (32, 14, 14) and shapes["5"] == (64, 7, 7)
    conv2 = next(r for r in s.rows if r.name == "3")
    assert conv2.macs == 64 * 14 * 14 * 32 * 9 and conv2.params == 64 * 32 * 9 + 64


def test_wrn_summary_matches_the_model_and_leaves_it_unchanged():
    model = zoo.wrn(16, 2)
    model.train()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    s = model.summary()
    assert s.total_params == model.num_parameters()
    assert s.rows[-1].name == "fc" and s.rows[-1].output_shape == (10,)
    assert any(r.name == "block3.shortcut" and r.output_shape == (64, 16, 16) for r in s.rows)
    assert model.training and "forward" not in vars(model.block(1))      # no wrapper left behind
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])                        # running stats untouched
    d = s.to_dict()
    assert d["total_macs"] == s.total_macs > 0 and len(d["layers"]) == len(s.rows)


def test_summary_errors():
    with pytest.raises(ValueError, match="pass input_shape"):
        zoo.cnn3().summary()
    with pytest.raises(ValueError, match="does not fit the model"):
        zoo.cnn3().summary((3, 28, 28))
    with pytest.raises(ValueError, match="does not fit the model"):
        nn.Sequential(nn.Linear(4, 3)).summary((5,))
