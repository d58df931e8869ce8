"""Model files from untrusted sources: declared architecture checked before allocation, loads that
fail leave the model untouched, dtypes that would change values refused, malformed JSON named."""
import json
import time
import tracemalloc

import numpy as np
import pytest

from pyann import nn
from pyann.nn import Module, init


def _write_model_file(path, arrays, meta):
    """An .npz as a hostile or broken writer could make it: meta is raw text or a JSON value."""
    text = meta if isinstance(meta, str) else json.dumps(meta)
    np.savez(path, __meta__=np.array(text), **arrays)
    return path


def _model_meta(architecture, **extra):
    return {"format": "pyann-model/1", "architecture": architecture, "metadata": {}, **extra}


def _linear(i, o, **kw):
    return {"type": "Linear", "config": {"in_features": i, "out_features": o, **kw}}


# ---- 1. the declared architecture is checked against the file before anything is allocated ----

def test_tiny_file_declaring_huge_layers_fails_fast(tmp_path):
    small = nn.Sequential(nn.Linear(3, 2))
    huge = {"type": "Sequential", "config": {"layers": [_linear(6000, 6000) for _ in range(40)]}}
    path = _write_model_file(tmp_path / "huge.npz", small.state_dict(), _model_meta(huge))
    assert path.stat().st_size < 20_000
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(ValueError) as err:
            nn.load(path)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 1.0 and peak < 20e6, (seconds, peak)
    msg = str(err.value)
    assert str(path) in msg and "declares more than 68 arrays, the file holds 2" in msg
    # as many arrays as the file, but of other names and shapes: named as such
    few = {"type": "Sequential", "config": {"layers": [_linear(6000, 6000), _linear(6000, 6000)]}}
    path = _write_model_file(tmp_path / "few.npz", small.state_dict(), _model_meta(few))
    with pytest.raises(ValueError, match=r"few.npz.*missing keys \['1.bias', '1.weight'\], unexpected "
                                         r"keys \[\]; and shape mismatch for '0.bias': model has \(6000,\)"):
        nn.load(path)


def test_file_arrays_of_another_shape_are_named_before_any_read(tmp_path):
    arch = _linear(4, 3)
    arrays = {"weight": np.zeros((4, 5), np.float32), "bias": np.zeros(3, np.float32)}
    path = _write_model_file(tmp_path / "m.npz", arrays, _model_meta(arch))
    with pytest.raises(ValueError, match=r"m.npz.*shape mismatch for 'weight': model has \(4, 3\), state has \(4, 5\)"):
        nn.load(path)


def test_member_shorter_than_its_header_is_refused(tmp_path):
    # headers that fit the architecture but members that do not hold the data they declare
    model = nn.Sequential(nn.Linear(3, 2, rng=0))
    path = nn.save(model, tmp_path / "m.npz")
    data = bytearray(path.read_bytes())
    import zipfile
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    with zipfile.ZipFile(tmp_path / "short.npz", "w") as z:
        for name, blob in members.items():
            z.writestr(name, blob[:-4] if name == "0.weight.npy" else blob)
    with pytest.raises(ValueError, match=r"short.npz.*'0.weight' declares shape \(3, 2\)"):
        nn.load(tmp_path / "short.npz")
    assert data  # the original file is untouched and still loads
    nn.load(path)


def _sample_specs():
    """One built model per registered pyann module type (and its variants with other arrays)."""
    wrn = nn.WideResNet(10, 1, dropout=0.3, classes=3, input_size=8)
    wrn.replace_block(1, nn.basic_residual(16, 16))
    return [
        nn.Linear(5, 3), nn.Linear(5, 3, bias=False), nn.ReLU(), nn.ReLU(0.1), nn.ReLU6(),
        nn.Flatten(), nn.Identity(), nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.ReLU()),
        nn.Conv2d(4, 6, 3, 2, 1, groups=2), nn.Conv2d(3, 5, 1, bias=False), nn.BatchNorm2d(7),
        nn.BatchNormReLU2d(4), nn.MaxPool2d(2), nn.AvgPool2d(3, 1, 1), nn.GlobalAvgPool(),
        nn.Dropout(0.2, seed=3), nn.basic_residual(4, 8, 2), nn.basic_residual(4, 4),
        nn.PreActBlock(4, 8, 2, dropout=0.1), nn.PreActBlock(4, 4), wrn,
        nn.build("cnn3"), nn.build("mlp5"),
        nn.InvertedResidual(4, 4, 1), nn.InvertedResidual(4, 8, 2, expand=1), nn.ConvBNBlock(4, 8, 2),
        nn.ConvBNBlock(4, 4, 1, expand=2), nn.BasicBlock(4, 4), nn.BasicBlock(4, 8, 2),
        nn.Bottleneck(4, 4), nn.Bottleneck(4, 8, 2),
    ]


def test_declared_state_equals_the_built_models_state_for_every_module_type():
    # the guard against drift: every layer's arrays, as declared without allocating, are exactly
    # those its constructor makes; a new module type must be added to _sample_specs
    covered = set()
    for model in _sample_specs():
        covered.update(type(m).__name__ for m in model.modules())
        real = {k: (v.shape, v.dtype) for k, v in model.state_dict().items()}
        assert Module.declared_state(model.spec()) == real, type(model).__name__
        # and nothing was allocated for them: a layer making an array with np.zeros instead of
        # init.zeros would still declare the right shape, but allocate it
        with init.shapes_only():
            placeholder = Module.from_spec(model.spec())
        arrays = [p.data for p in placeholder.parameters()] + [b for _, b in placeholder.named_buffers()]
        assert all(a.size <= 1 or not any(a.strides) for a in arrays), type(model).__name__
    ours = {name for name, cls in Module.registry.items() if cls.__module__.startswith("pyann.nn.")}
    assert ours <= covered, f"module types without a declared_state check: {sorted(ours - covered)}"


def test_declared_state_allocates_nothing_and_bounds_expanding_specs():
    spec = {"type": "Sequential", "config": {"layers": [_linear(6000, 6000) for _ in range(40)]}}
    tracemalloc.start()
    try:
        declared = Module.declared_state(spec)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert declared["39.weight"] == ((6000, 6000), np.float32) and peak < 5e6
    # a WideResNet of depth 6e8 + 4 would be 1e8 blocks: the array budget stops it at once
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="more than 50 arrays"):
        Module.declared_state({"type": "WideResNet", "config": {"depth": 6 * 10 ** 8 + 4}}, max_arrays=50)
    assert time.perf_counter() - t0 < 1.0
    assert not init.is_shapes_only()


# ---- 2. a load that fails changes nothing -------------------------------------------------------

def _assert_unchanged(model, before):
    after = model.state_dict()
    assert after.keys() == before.keys()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


@pytest.mark.parametrize("bad, error, match", [
    (np.array([["a"] * 10] * 100), ValueError, "dtype mismatch for '5.weight'"),
    (np.ones((100, 10), np.int64), ValueError, "dtype mismatch for '5.weight'.*int64"),
    (np.ones((100, 10), bool), ValueError, "dtype mismatch"),
    (np.ones((100, 10), np.complex64), ValueError, "dtype mismatch"),
    (np.full((100, 10), 1e300), ValueError, "'5.weight' holds 1e\\+300, beyond the range of float32"),
    (np.ones((100, 10)).tolist(), TypeError, r"'5.weight'\] is a list, not a numpy array"),
])
def test_load_state_dict_validates_everything_before_copying(bad, error, match):
    model = nn.build("fcn2", rng=0)
    before = model.state_dict()
    state = nn.build("fcn2", rng=1).state_dict()   # every other key valid, and different
    state["5.weight"] = bad
    with pytest.raises(error, match=match):
        model.load_state_dict(state)
    _assert_unchanged(model, before)
    with pytest.raises(error, match=match):   # strict=False checks the same
        model.load_state_dict(state, strict=False)
    _assert_unchanged(model, before)


def test_load_state_dict_casts_between_float_widths():
    model = nn.build("fcn2", rng=0)
    state = {k: v.astype(np.float64) for k, v in nn.build("fcn2", rng=1).state_dict().items()}
    state["1.bias"] = state["1.bias"].astype(np.float16)
    assert model.check_state_dict(state) == sorted(state)
    model.load_state_dict(state)
    assert model[1].weight.data.dtype == np.float32
    np.testing.assert_array_equal(model[1].weight.data, state["1.weight"].astype(np.float32))
    np.testing.assert_array_equal(model[1].bias.data, state["1.bias"].astype(np.float32))


def test_check_state_dict_changes_nothing():
    model = nn.build("fcn2", rng=0)
    before = model.state_dict()
    state = nn.build("fcn2", rng=1).state_dict()
    model.check_state_dict(state)
    _assert_unchanged(model, before)


# ---- 3. model files with arrays whose cast would change their values ---------------------------

@pytest.mark.parametrize("dtype", [np.int32, np.int64, bool, np.uint8, np.complex64])
def test_model_file_with_non_float_parameters_is_refused(tmp_path, dtype):
    model = nn.build("fcn2", rng=0)
    state = model.state_dict()
    state["3.weight"] = state["3.weight"].astype(dtype)
    meta = _model_meta(model.spec())
    path = _write_model_file(tmp_path / "m.npz", state, meta)
    with pytest.raises(ValueError, match=r"m.npz.*dtype mismatch for '3.weight'"):
        nn.load(path)
    target = nn.build("fcn2", rng=1)
    before = target.state_dict()
    with pytest.raises(ValueError, match=r"m.npz.*dtype mismatch for '3.weight'"):
        nn.load_into(target, path)
    _assert_unchanged(target, before)


def test_model_file_with_int_buffer_is_refused_and_float64_is_cast(tmp_path):
    model = nn.build("cnn3", rng=0)
    bn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    state = bn.state_dict()
    state["1.running_var"] = np.array([1, 2], np.int64)
    path = _write_model_file(tmp_path / "bn.npz", state, _model_meta(bn.spec()))
    with pytest.raises(ValueError, match=r"dtype mismatch for '1.running_var'"):
        nn.load(path)
    wide = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    path = _write_model_file(tmp_path / "f64.npz", wide, _model_meta(model.spec()))
    loaded = nn.load(path)
    assert all(p.data.dtype == np.float32 for p in loaded.parameters())
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(loaded.eval().forward(x), model.eval().forward(x))


# ---- 4. malformed model JSON: one ValueError naming the file ------------------------------------

_ARCH = _linear(3, 2)
# nested deeper than Python's recursion limit (json.dumps itself could not write it)
_DEEP = ('{"format": "pyann-model/1", "architecture": '
         + '{"type": "Sequential", "config": {"layers": [' * 5000 + '{"type": "Identity"}'
         + ']}}' * 5000 + '}')

MALFORMED_META = [
    "not json {", "", "[1, 2]", "123", '"a string"', "null",
    {}, {"format": "pyann-model/2", "architecture": _ARCH},
    {"format": "pyann-model/1"},
    _model_meta([_ARCH]), _model_meta("Linear"), _model_meta(None),
    _model_meta(_ARCH, metadata=[1]),
    _model_meta({"config": {}}), _model_meta({"type": 5}), _model_meta({"type": ["Linear"]}),
    _model_meta({"type": "Bogus"}), _model_meta({"type": "Module"}),
    _model_meta({"type": "Linear", "config": [3, 2]}), _model_meta({"type": "Linear", "config": None}),
    _model_meta({"type": "Linear", "config": {"in_features": 3}}),
    _model_meta(_linear(3, 2, colour="red")),
    _model_meta(_linear("3", 2)), _model_meta(_linear(3.0, 2)), _model_meta(_linear(-3, 2)),
    _model_meta(_linear(0, 2)), _model_meta(_linear(10 ** 30, 2)), _model_meta(_linear(3, 2, bias=[1])),
    _model_meta(_linear(3, 2, init_name="nope")), _model_meta(_linear(3, 2, init_name=[1])),
    _model_meta(_linear(10 ** 10, 10 ** 10)), _model_meta(_linear(True, 2)),
    _model_meta({"type": "Sequential", "config": {}}),
    _model_meta({"type": "Sequential", "config": {"layers": 5}}),
    _model_meta({"type": "Sequential", "config": {"layers": [5]}}),
    _model_meta({"type": "Sequential", "config": {"layers": [_ARCH], "extra": 1}}),
    _model_meta({"type": "Residual", "config": {"body": "x"}}),
    _model_meta({"type": "Conv2d", "config": {"in_channels": 3, "out_channels": 4, "groups": 2}}),
    _model_meta({"type": "Conv2d", "config": {"in_channels": 3, "out_channels": 4, "padding": -1}}),
    _model_meta({"type": "BatchNorm2d", "config": {"num_features": 1e9}}),
    _model_meta({"type": "BatchNorm2d", "config": {"num_features": 3, "momentum": "fast"}}),
    _model_meta({"type": "BatchNorm2d", "config": {"num_features": 3, "eps": -1}}),
    _model_meta({"type": "MaxPool2d", "config": {"kernel_size": -2}}),
    _model_meta({"type": "Dropout", "config": {"p": "half"}}),
    _model_meta({"type": "Dropout", "config": {"p": 0.5, "seed": "x"}}),
    _model_meta({"type": "ReLU", "config": {"activity_l1": "x"}}),
    _model_meta({"type": "WideResNet", "config": {"depth": "16"}}),
    _model_meta({"type": "WideResNet", "config": {"depth": 6 * 10 ** 12 + 4}}),
    _model_meta({"type": "WideResNet", "config": {"depth": 15}}),
    _model_meta({"type": "WideResNet", "config": {"replaced": [1]}}),
    _model_meta({"type": "WideResNet", "config": {"replaced": {"first": _ARCH}}}),
    _model_meta({"type": "WideResNet", "config": {"replaced": {"99": _ARCH}}}),
    _model_meta({"type": "PreActBlock", "config": {"in_channels": 4, "out_channels": 4, "dropout": "x"}}),
    _DEEP,
]


@pytest.mark.parametrize("meta", MALFORMED_META, ids=range(len(MALFORMED_META)))
def test_malformed_model_json_gives_one_valueerror_naming_the_file(tmp_path, meta):
    arrays = nn.Linear(3, 2).state_dict()
    path = _write_model_file(tmp_path / "bad-model.npz", arrays, meta)
    with pytest.raises(ValueError) as err:
        nn.load(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("meta_array", [np.array(["{}", "{}"]), np.array(7), np.array(b"\xff\xfe"),
                                        np.zeros(3)])
def test_meta_entry_of_another_kind_is_named(tmp_path, meta_array):
    path = tmp_path / "odd.npz"
    np.savez(path, __meta__=meta_array, **nn.Linear(3, 2).state_dict())
    with pytest.raises(ValueError, match="odd.npz"):
        nn.load(path)


def test_non_array_member_is_refused(tmp_path):
    import zipfile
    path = nn.save(nn.Linear(3, 2), tmp_path / "m.npz")
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("extra.txt", b"hello")
    with pytest.raises(ValueError, match="m.npz is not a readable pyann .npz"):
        nn.load(path)


def test_fuzzed_model_files_raise_only_valueerror(tmp_path):
    # random byte flips in a real model file: never another exception type, never a crash
    good = nn.save(nn.build("fcn2", rng=0), tmp_path / "good.npz").read_bytes()
    rng = np.random.default_rng(0)
    path = tmp_path / "fuzz.npz"
    outcomes = set()
    for _ in range(150):
        data = bytearray(good)
        for pos in rng.integers(0, len(data), rng.integers(1, 4)):
            data[pos] = rng.integers(0, 256)
        path.write_bytes(bytes(data))
        try:
            nn.load(path)
            outcomes.add("loaded")
        except ValueError as exc:
            assert str(path) in str(exc)
            outcomes.add("ValueError")
    assert "ValueError" in outcomes
