"""The one matcher (zippypoint.methods.matching) against brute-force references that live only here."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zippypoint.methods.matching import l2_distances, match_mutual, match_one_way, mutual_nearest_neighbours


def bruteforce_hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Reference distances: XOR and a popcount per pair, any byte width."""
    return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(axis=2, dtype=np.int32)


def loop_mutual(distances: np.ndarray) -> list[tuple[int, int]]:
    """Reference: first minimum in each row and column, kept when they agree."""
    n, m = distances.shape
    out = []
    for i in range(n if m else 0):
        j = min(range(m), key=lambda c: (distances[i, c], c))
        back = min(range(n), key=lambda r: (distances[r, j], r))
        if back == i:
            out.append((i, j))
    return out


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 12), st.integers(0, 12), st.integers(1, 70), st.integers(0, 2**32 - 1))
def test_binary_matching_of_any_width_equals_the_brute_force(n, m, width, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (n, width), dtype=np.uint8)
    b = rng.integers(0, 256, (m, width), dtype=np.uint8)
    expected = (np.unpackbits(a, axis=1)[:, None, :] != np.unpackbits(b, axis=1)[None, :, :]).sum(axis=2)
    np.testing.assert_array_equal(bruteforce_hamming(a, b), expected)
    np.testing.assert_array_equal(match_mutual(a, b, "binary"), mutual_nearest_neighbours(expected))
    if n and m:
        np.testing.assert_array_equal(match_one_way(a, b, "binary")[:, 1], expected.argmin(axis=1))


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10), st.integers(0, 10), st.integers(0, 2**32 - 1))
def test_mutual_nearest_neighbours_equal_loops_with_ties(n, m, seed):
    rng = np.random.default_rng(seed)
    distances = rng.integers(0, 4, (n, m))  # few values: many ties
    got = mutual_nearest_neighbours(distances)
    assert got.dtype == np.int64 and got.shape[1] == 2
    assert [tuple(r) for r in got.tolist()] == loop_mutual(distances)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 2**32 - 1))
def test_mutual_matching_with_many_ties_equals_the_brute_force(n, m, seed):
    rng = np.random.default_rng(seed)
    # Bytes restricted to two values per column: distances collide often.
    a = (rng.integers(0, 2, (n, 32)) * 3).astype(np.uint8)
    b = (rng.integers(0, 2, (m, 32)) * 3).astype(np.uint8)
    distances = bruteforce_hamming(a, b)
    np.testing.assert_array_equal(match_mutual(a, b, "binary"), mutual_nearest_neighbours(distances))
    np.testing.assert_array_equal(match_one_way(a, b, "binary")[:, 1], distances.argmin(axis=1))


def test_l2_distances_and_one_way_matches():
    a = np.array([[0.0, 0.0], [3.0, 4.0]], np.float32)
    b = np.array([[3.0, 4.0], [0.0, 1.0], [0.0, 1.0]], np.float32)
    np.testing.assert_allclose(l2_distances(a, b), [[5.0, 1.0, 1.0], [0.0, np.sqrt(18), np.sqrt(18)]])
    assert match_one_way(a, b, "float").tolist() == [[0, 1], [1, 0]]  # tie: the lowest index
    assert match_mutual(a, b, "float").tolist() == [[0, 1], [1, 0]]


def test_empty_inputs_give_empty_matches():
    empty = np.zeros((0, 32), np.uint8)
    some = np.zeros((3, 32), np.uint8)
    for a, b in ((empty, some), (some, empty), (empty, empty)):
        assert match_mutual(a, b, "binary").shape == (0, 2)
        assert match_one_way(a, b, "binary").shape == (0, 2)
    assert match_mutual(np.zeros((0, 8), np.float32), np.zeros((2, 8), np.float32), "float").shape == (0, 2)


def test_bad_inputs_are_refused_with_the_reason():
    with pytest.raises(TypeError, match="uint8"):
        match_mutual(np.zeros((2, 32), np.float32), np.zeros((2, 32), np.float32), "binary")
    with pytest.raises(ValueError, match="widths differ"):
        match_mutual(np.zeros((2, 32), np.uint8), np.zeros((2, 61), np.uint8), "binary")
    with pytest.raises(ValueError, match="kind"):
        match_mutual(np.zeros((2, 4)), np.zeros((2, 4)), "cosine")
