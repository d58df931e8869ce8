"""export_onnx: ONNX Runtime gives the outputs pyann gives, for every exportable module type."""
import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from pyann import nn  # noqa: E402
from pyann.interop import export_onnx  # noqa: E402
from pyann.nn import zoo  # noqa: E402


def test_onnx_runtime_matches_pyann(model_case, tmp_path):
    name, build, shape, x = model_case
    model = build(0)
    path = export_onnx(model, tmp_path / "model.onnx", shape)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["output"], {"input": x})[0]
    np.testing.assert_allclose(got, model.forward(x), rtol=1e-4, atol=1e-5)
    assert session.get_inputs()[0].shape[0] == "N"   # any batch size
    np.testing.assert_allclose(session.run(["output"], {"input": x[:1]})[0], model.forward(x[:1]), rtol=1e-4, atol=1e-5)


def test_default_input_shapes_and_errors(tmp_path):
    export_onnx(zoo.build("mlp5"), tmp_path / "mlp.onnx")            # (784,) from the first Linear
    export_onnx(zoo.wrn(10, 1), tmp_path / "wrn.onnx")               # (3, 32, 32) from the model
    with pytest.raises(ValueError, match="pass input_shape"):
        export_onnx(zoo.cnn3(), tmp_path / "cnn3.onnx")
    with pytest.raises(ValueError, match="does not fit the model"):
        export_onnx(zoo.cnn3(), tmp_path / "cnn3.onnx", (3, 28, 28))

    class Custom(nn.Module):
        def forward(self, x):
            return x
    with pytest.raises(ValueError, match="no ONNX form for Custom"):
        export_onnx(nn.Sequential(nn.Linear(4, 4), Custom()), tmp_path / "custom.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp.onnx", "wrn.onnx"]   # nothing half-written
