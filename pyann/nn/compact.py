"""The compact form of a pruned model's weights in a model file: each masked parameter stored as
CSR (its kept values plus small indices) instead of a dense array and a dense mask.

Layout, for a parameter of shape S with mask M (True = kept), viewed as a matrix of
rows = S[0] and cols = prod(S[1:]) (a Linear weight (in, out): one row per input; a Conv2d
weight (F, C/g, k, k): one row per filter):

    <name>.csr_values   float32 (nnz,)      the kept entries, row by row, columns ascending
    <name>.csr_indptr   int32   (rows + 1,) row r holds entries indptr[r] .. indptr[r + 1] - 1
    <name>.csr_indices  uint16  (nnz,)      their columns; int32 when cols > 65,536

A kept entry whose value is 0 stays in (the mask says kept, not the value), so the round trip
gives back the same weights and the same masks. 6 bytes per kept entry against 4 per entry of the
dense weight (5 with its mask): at 10 % density the weight takes 0.15 of its dense bytes.

Decoding trusts nothing: the three arrays must fit the shape the architecture declares, before
any array is read (check_headers), and after reading the index pointer must run from 0 to nnz
without going down and every row's columns must be in range and strictly ascending (decode).
"""
from __future__ import annotations

from typing import Dict, Iterable, Tuple

import numpy as np

from .module import MASK_SUFFIX

SUFFIXES = (".csr_values", ".csr_indptr", ".csr_indices")
UINT16_COLS = 1 << 16


def _matrix_shape(shape: tuple) -> Tuple[int, int]:
    rows = int(shape[0]) if shape else 1
    return rows, int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1


def index_dtype(cols: int) -> np.dtype:
    return np.dtype(np.uint16) if cols <= UINT16_COLS else np.dtype(np.int32)


def encode(state: Dict[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], list]:
    """(arrays, names): the state with every masked parameter (one with a "<name>_mask" entry)
    replaced by its three CSR arrays; names lists those parameters, for the file's meta."""
    out, names = dict(state), []
    for mask_name in [k for k in state if k.endswith(MASK_SUFFIX)]:
        name = mask_name[:-len(MASK_SUFFIX)]
        if name not in state:
            continue
        weight, mask = state[name], state[mask_name]
        rows, cols = _matrix_shape(weight.shape)
        keep = mask.reshape(rows, cols)
        r, c = np.nonzero(keep)                      # row-major: rows, then columns ascending
        indptr = np.zeros(rows + 1, np.int32)
        np.cumsum(np.bincount(r, minlength=rows), out=indptr[1:])
        out[name + ".csr_values"] = weight.reshape(rows, cols)[r, c].astype(np.float32)
        out[name + ".csr_indptr"] = indptr
        out[name + ".csr_indices"] = c.astype(index_dtype(cols))
        del out[name], out[mask_name]
        names.append(name)
    return out, names


def check_headers(names: Iterable[str], declared: dict, headers: dict) -> dict:
    """The headers as the dense state would have them (for check_fit against the architecture),
    after checking each compact parameter's three arrays against its declared shape.
    declared/headers: {name: (shape, dtype)}. ValueError naming the parameter otherwise."""
    headers = dict(headers)
    for name in names:
        if not isinstance(name, str) or name not in declared or name + MASK_SUFFIX not in declared:
            raise ValueError(f"compact parameter {name!r} is not a prunable parameter of the architecture")
        shape, dtype = declared[name]
        rows, cols = _matrix_shape(shape)
        parts = [headers.pop(name + s, None) for s in SUFFIXES]
        if any(p is None for p in parts):
            raise ValueError(f"compact parameter {name!r}: missing one of {[name + s for s in SUFFIXES]}")
        (v_shape, v_dtype), (p_shape, p_dtype), (i_shape, i_dtype) = parts
        expected = [(v_shape, v_dtype, ((v_shape[0],) if len(v_shape) == 1 else None), np.dtype(np.float32)),
                    (p_shape, p_dtype, (rows + 1,), np.dtype(np.int32)),
                    (i_shape, i_dtype, v_shape, index_dtype(cols))]
        for (got_shape, got_dtype, want_shape, want_dtype), suffix in zip(expected, SUFFIXES):
            if tuple(got_shape) != tuple(want_shape or ()) or got_dtype != want_dtype:
                raise ValueError(f"compact parameter {name!r}: {name}{suffix} is {got_dtype}{tuple(got_shape)}, "
                                 f"the architecture's {tuple(shape)} weight needs "
                                 f"{want_dtype}{tuple(want_shape) if want_shape else '(nnz,)'}")
        if v_shape[0] > rows * cols:
            raise ValueError(f"compact parameter {name!r}: {v_shape[0]} kept entries, more than its "
                             f"{rows * cols} weights")
        headers[name] = (tuple(shape), dtype)
        headers[name + MASK_SUFFIX] = declared[name + MASK_SUFFIX]
    return headers


def decode(arrays: Dict[str, np.ndarray], names: Iterable[str], declared: dict) -> Dict[str, np.ndarray]:
    """The dense state (weights and masks) from the compact arrays; ValueError for any index that
    is out of range, unsorted or repeated, or an index pointer that does not fit."""
    state = dict(arrays)
    for name in names:
        shape, dtype = declared[name]
        rows, cols = _matrix_shape(shape)
        values, indptr, indices = (state.pop(name + s) for s in SUFFIXES)
        nnz = len(values)
        steps = np.diff(indptr.astype(np.int64))
        if indptr[0] != 0 or indptr[-1] != nnz or (steps < 0).any():
            raise ValueError(f"compact parameter {name!r}: the index pointer must rise from 0 to the "
                             f"{nnz} kept entries without going down")
        cols_ = indices.astype(np.int64)
        if nnz and (cols_.min() < 0 or cols_.max() >= cols):
            raise ValueError(f"compact parameter {name!r}: a column index is out of range 0..{cols - 1}")
        row_of = np.repeat(np.arange(rows), steps)
        same_row = row_of[1:] == row_of[:-1]
        if (np.diff(cols_)[same_row] <= 0).any():
            raise ValueError(f"compact parameter {name!r}: the column indices of a row must be strictly ascending")
        weight = np.zeros((rows, cols), dtype)
        mask = np.zeros((rows, cols), np.bool_)
        weight[row_of, cols_] = values
        mask[row_of, cols_] = True
        state[name] = weight.reshape(shape)
        state[name + MASK_SUFFIX] = mask.reshape(shape)
    return state
