"""Bit packing (LSB-first) and Hamming distances."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from zippypoint.binary_desc import hamming
from zippypoint.binary_desc.hamming import hamming_distance_matrix
from zippypoint.binary_desc.packing import pack_bits, unpack_bits


def test_bit_order_known_vector():
    bits = np.zeros((1, 256), bool)
    bits[0, [0, 9, 10, 255]] = True
    packed = pack_bits(bits)
    assert packed.shape == (1, 32) and packed.dtype == np.uint8
    expected = np.zeros(32, np.uint8)
    expected[0] = 0b0000_0001  # bit 0 -> byte 0, value 1
    expected[1] = 0b0000_0110  # bits 9, 10 -> byte 1, values 2 + 4
    expected[31] = 0b1000_0000  # bit 255 -> byte 31, value 128
    np.testing.assert_array_equal(packed[0], expected)


@settings(max_examples=50, deadline=None)
@given(bits=arrays(np.bool_, st.tuples(st.integers(0, 6), st.sampled_from([8, 64, 256]))))
def test_round_trip_and_documented_bit_formula(bits):
    packed = pack_bits(bits)
    assert packed.shape == (bits.shape[0], bits.shape[1] // 8)
    np.testing.assert_array_equal(unpack_bits(packed), bits)
    j = np.arange(bits.shape[1])
    np.testing.assert_array_equal((packed[:, j // 8] >> (j % 8)) & 1, bits.astype(np.uint8))
    np.testing.assert_array_equal(pack_bits(bits.astype(np.uint8)), packed)


def test_packing_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    bits = torch.rand(4, 256) > 0.5
    np.testing.assert_array_equal(pack_bits(bits), pack_bits(bits.numpy()))
    np.testing.assert_array_equal(unpack_bits(torch.from_numpy(pack_bits(bits))), bits.numpy())


@pytest.mark.parametrize(
    ("bits", "error", "text"),
    [
        (np.zeros((2, 12), bool), ValueError, "multiple of 8"),
        (np.zeros(256, bool), ValueError, r"\[N, D\]"),
        (np.zeros((2, 0), bool), ValueError, "multiple of 8"),
        (np.zeros((2, 8), np.float32), TypeError, "float32"),
        (np.full((2, 8), 2, np.uint8), ValueError, r"\{0, 1\}"),
        ([[0, 1] * 4], TypeError, "list"),
    ],
)
def test_pack_refuses_bad_input(bits, error, text):
    with pytest.raises(error, match=text):
        pack_bits(bits)


def test_unpack_refuses_bad_input():
    with pytest.raises(TypeError, match="uint8"):
        unpack_bits(np.zeros((2, 32), np.int32))
    with pytest.raises(ValueError, match=r"\[N, B\]"):
        unpack_bits(np.zeros((2, 4, 8), np.uint8))


def popcount_reference(a, b):
    return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(axis=-1)


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(1, 40),
    n=st.integers(0, 9),
    m=st.integers(0, 9),
    data=st.data(),
)
def test_hamming_matches_popcount(width, n, m, data):
    a = data.draw(arrays(np.uint8, (n, width)))
    b = data.draw(arrays(np.uint8, (m, width)))
    got = hamming_distance_matrix(a, b)
    assert got.dtype == np.int32 and got.shape == (n, m)
    np.testing.assert_array_equal(got, popcount_reference(a, b))


def test_hamming_tiles_agree(monkeypatch):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (23, 32), dtype=np.uint8)
    b = rng.integers(0, 256, (17, 32), dtype=np.uint8)
    expected = popcount_reference(a, b)
    monkeypatch.setattr(hamming, "TILE_ELEMENTS", 40)
    np.testing.assert_array_equal(hamming_distance_matrix(a, b), expected)


def test_hamming_is_squared_l2_for_64_of_256_codes():
    rng = np.random.default_rng(1)
    bits = np.zeros((40, 256), bool)
    np.put_along_axis(bits, np.argsort(rng.random((40, 256)), axis=1)[:, :64], True, axis=1)
    packed = pack_bits(bits)
    dist = hamming_distance_matrix(packed, packed)
    x = bits.astype(np.float64)
    sq_l2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(dist, sq_l2)
    np.testing.assert_array_equal(dist, 2 * (64 - x @ x.T))  # = 2(k - <a, b>)
    assert np.all(dist % 2 == 0) and dist.max() <= 128 and np.all(np.diag(dist) == 0)


def test_hamming_refuses_mismatched_widths():
    with pytest.raises(ValueError, match="32 and 16"):
        hamming_distance_matrix(np.zeros((2, 32), np.uint8), np.zeros((2, 16), np.uint8))
