"""Top-k binarisation: exactly k ones, lowest-index ties, numpy == torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from zippypoint.binary_desc.binarize import topk_binarize

TIE_HEAVY = st.sampled_from([-np.inf, -1.0, -0.0, 0.0, 0.5, 1.0, np.inf])


@st.composite
def rows_and_k(draw):
    d = draw(st.integers(1, 40))
    elements = TIE_HEAVY if draw(st.booleans()) else st.floats(-1e6, 1e6, width=32)
    x = draw(arrays(np.float32, (draw(st.integers(0, 5)), d), elements=elements))
    return x, draw(st.integers(1, d))


def lowest_index_topk(row, k):
    """Reference: rank by (value descending, index ascending)."""
    chosen = sorted(range(len(row)), key=lambda i: (-float(row[i]), i))[:k]
    out = np.zeros(len(row), bool)
    out[chosen] = True
    return out


@settings(max_examples=150, deadline=None)
@given(case=rows_and_k())
def test_exactly_k_ones_with_lowest_index_ties_in_numpy_and_torch(case):
    x, k = case
    got = topk_binarize(x, k)
    assert got.dtype == np.bool_ and got.shape == x.shape
    assert np.all(got.sum(axis=-1) == k)
    for row, bits in zip(x, got, strict=True):
        np.testing.assert_array_equal(bits, lowest_index_topk(row, k))
    from_torch = topk_binarize(torch.from_numpy(x), k)
    assert from_torch.dtype == torch.bool
    np.testing.assert_array_equal(from_torch.numpy(), got)


def test_known_ties():
    np.testing.assert_array_equal(topk_binarize(np.zeros((1, 6)), 3), [[1, 1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(topk_binarize(np.array([[1, 2, 2, 2, 0]]), 2), [[0, 1, 1, 0, 0]])
    signed_zeros = np.array([[0.0, -0.0, 0.0, -1.0]])  # -0.0 == 0.0: a tie
    np.testing.assert_array_equal(topk_binarize(signed_zeros, 2), [[1, 1, 0, 0]])
    np.testing.assert_array_equal(topk_binarize(torch.tensor(signed_zeros), 2).numpy(), [[1, 1, 0, 0]])


def test_batch_dims_integer_and_bool_inputs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 256)).astype(np.float32)
    bits = topk_binarize(x)
    assert bits.shape == (2, 3, 256) and np.all(bits.sum(-1) == 64)
    selected_min = np.where(bits, x, np.inf).min(-1)
    rejected_max = np.where(bits, -np.inf, x).max(-1)
    assert np.all(selected_min > rejected_max)
    ints = rng.integers(0, 4, (3, 20)).astype(np.uint8)
    np.testing.assert_array_equal(topk_binarize(ints, 5), topk_binarize(torch.from_numpy(ints), 5).numpy())
    flags = rng.random((3, 20)) > 0.5
    np.testing.assert_array_equal(topk_binarize(flags, 5), topk_binarize(torch.from_numpy(flags), 5).numpy())


@pytest.mark.parametrize("module", ["numpy", "torch"])
def test_refuses_bad_input(module):
    def wrap(a):
        return np.asarray(a) if module == "numpy" else torch.from_numpy(np.asarray(a))

    with pytest.raises(ValueError, match="NaN"):
        topk_binarize(wrap(np.array([[0.0, np.nan, 1.0]])), 1)
    with pytest.raises(ValueError, match="0 < k <= D"):
        topk_binarize(wrap(np.zeros((2, 4))), 5)
    with pytest.raises(ValueError, match="0 < k <= D"):
        topk_binarize(wrap(np.zeros((2, 4))), 0)
    with pytest.raises(TypeError, match="k"):
        topk_binarize(wrap(np.zeros((2, 4))), 1.5)
    with pytest.raises(ValueError, match="scalar"):
        topk_binarize(wrap(np.float32(1.0)), 1)
    with pytest.raises(TypeError, match="complex"):
        topk_binarize(wrap(np.zeros((2, 4), np.complex64)), 1)


def test_refuses_non_arrays():
    with pytest.raises(TypeError, match="list"):
        topk_binarize([[1.0, 2.0]], 1)
