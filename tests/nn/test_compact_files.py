"""Compact model files (nn.save(..., compact=True)): pruned weights as CSR, read back exactly,
and every malformed or foreign file refused with a ValueError naming it."""
import numpy as np
import pytest

from pyann import io, nn
from pyann.nn import compact
from pyann.pruning import prune_to_density


def _pruned(name, density, rng=0, **kw):
    model = nn.build(name, rng=rng, **kw)
    prune_to_density(model, density)
    return model


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and np.array_equal(sa[k], sb[k]), k


@pytest.mark.parametrize("name, density", [("fcn2", 0.1), ("cnn3", 0.2), ("mlp5", 0.05), ("fcn1", 1.0)])
def test_compact_file_loads_the_same_weights_and_masks(tmp_path, name, density):
    model = _pruned(name, density)
    nn.save(model, tmp_path / "m.npz", compact=True, metadata={"density": density})
    back = nn.load(tmp_path / "m.npz")
    _same_state(model, back)
    shape = (3, 1, 28, 28) if name == "cnn3" else (3, 784)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    assert np.array_equal(model.eval().forward(x), back.eval().forward(x))
    assert nn.serialization.read_metadata(tmp_path / "m.npz") == {"density": density}


def test_kept_zero_weight_stays_kept(tmp_path):
    model = _pruned("fcn1", 0.5)
    layer = model.layers[1]
    kept = np.argwhere(layer.weight.mask)[0]
    layer.weight.data[tuple(kept)] = 0.0   # kept by the mask, zero by value
    nn.save(model, tmp_path / "m.npz", compact=True)
    _same_state(model, nn.load(tmp_path / "m.npz"))


def test_fcn2_at_ten_percent_is_under_a_fifth_of_the_dense_file(tmp_path):
    dense = nn.build("fcn2", rng=0)
    nn.save(dense, tmp_path / "dense.npz")
    nn.save(_pruned("fcn2", 0.1), tmp_path / "compact.npz", compact=True)
    ratio = (tmp_path / "compact.npz").stat().st_size / (tmp_path / "dense.npz").stat().st_size
    assert ratio < 0.2, ratio


def test_compact_file_loads_into_an_unpruned_model_of_the_same_architecture(tmp_path):
    model = _pruned("fcn2", 0.1)
    nn.save(model, tmp_path / "m.npz", compact=True)
    fresh = nn.build("fcn2", rng=5)
    nn.load_into(fresh, tmp_path / "m.npz")
    _same_state(model, fresh)


def test_compact_file_of_another_architecture_is_refused(tmp_path):
    nn.save(_pruned("fcn2", 0.1), tmp_path / "m.npz", compact=True)
    model = nn.build("fcn1", rng=0)
    before = model.state_dict()
    with pytest.raises(ValueError, match="m.npz: saved for another architecture"):
        nn.load_into(model, tmp_path / "m.npz")
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)   # untouched


def test_truncated_compact_file_is_refused(tmp_path):
    nn.save(_pruned("fcn2", 0.1), tmp_path / "m.npz", compact=True)
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.npz"):
        nn.load(tmp_path / "cut.npz")


def _rewrite(src, dst, change):
    arrays, meta = io.load_arrays(src)
    change(arrays, meta)
    io.save_arrays(dst, arrays, meta)


@pytest.mark.parametrize("change, message", [
    (lambda a, m: a.__setitem__("1.weight.csr_indices", a["1.weight.csr_indices"] + np.uint16(400)),
     "out of range"),
    (lambda a, m: a.__setitem__("1.weight.csr_indices", a["1.weight.csr_indices"][::-1].copy()),
     "strictly ascending"),
    (lambda a, m: a.__setitem__("1.weight.csr_indptr", a["1.weight.csr_indptr"][::-1].copy()),
     "index pointer"),
    (lambda a, m: a.__setitem__("1.weight.csr_indices", a["1.weight.csr_indices"].astype(np.int64)),
     "csr_indices is int64"),
    (lambda a, m: a.pop("1.weight.csr_values"), "missing one of"),
    (lambda a, m: m.__setitem__("compact", ["no.such.weight"]), "not a prunable parameter"),
    (lambda a, m: m.__setitem__("compact", "1.weight"), "must be a list"),
])
def test_corrupt_compact_arrays_are_refused(tmp_path, change, message):
    nn.save(_pruned("fcn2", 0.1), tmp_path / "m.npz", compact=True)
    _rewrite(tmp_path / "m.npz", tmp_path / "bad.npz", change)
    with pytest.raises(ValueError, match=message) as err:
        nn.load(tmp_path / "bad.npz")
    assert "bad.npz" in str(err.value)


def test_wide_rows_use_32_bit_indices_and_round_trip():
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((2, 70_000)).astype(np.float32)
    mask = rng.random(weight.shape) < 0.01
    weight[~mask] = 0
    arrays, names = compact.encode({"w": weight, "w_mask": mask})
    assert names == ["w"] and arrays["w.csr_indices"].dtype == np.int32
    declared = {"w": (weight.shape, weight.dtype), "w_mask": (mask.shape, mask.dtype)}
    back = compact.decode(arrays, names, declared)
    assert np.array_equal(back["w"], weight) and np.array_equal(back["w_mask"], mask)
