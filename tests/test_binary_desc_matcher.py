"""Hamming matcher against a brute-force reference, on both backends."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from zippypoint.binary_desc import matcher
from zippypoint.binary_desc.matcher import faiss_available, match_hamming

BACKENDS = [
    "numpy",
    pytest.param("faiss", marks=pytest.mark.skipif(not faiss_available(), reason="faiss not installed")),
]


def reference_matches(a, b, mutual, ratio, max_distance):
    """Plain loops over the unpacked bits, written for clarity, not speed."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((0, 2), np.int64)
    bits_a = np.unpackbits(a, axis=1).astype(int)
    bits_b = np.unpackbits(b, axis=1).astype(int)
    dist = np.array([[int(np.sum(x != y)) for y in bits_b] for x in bits_a]).reshape(len(a), len(b))

    def nearest(row):  # (index, d1, d2 or None): lowest index among equal distances
        ranked = sorted((int(d), j) for j, d in enumerate(row))
        return ranked[0][1], ranked[0][0], (ranked[1][0] if len(ranked) > 1 else None)

    def passes_ratio(d1, d2):
        return ratio is None or (d2 is not None and d1 <= ratio * d2)

    pairs = []
    for i in range(len(a)):
        j, d1, d2 = nearest(dist[i])
        if not passes_ratio(d1, d2) or (max_distance is not None and d1 > max_distance):
            continue
        if mutual:
            back, e1, e2 = nearest(dist[:, j])
            if back != i or not passes_ratio(e1, e2):
                continue
        pairs.append((i, j))
    return np.array(pairs, np.int64).reshape(-1, 2)


def random_codes(rng, n, n_bits=256, ones=64):
    """Packed descriptors with exactly ``ones`` of ``n_bits`` set, like the network's output."""
    bits = np.zeros((n, n_bits), bool)
    np.put_along_axis(bits, np.argsort(rng.random((n, n_bits)), axis=1)[:, :ones], True, axis=1)
    return np.packbits(bits, axis=1, bitorder="little")


@st.composite
def descriptor_pairs(draw):
    width = draw(st.integers(1, 3))
    # Few distinct byte values make equal distances (ties) common.
    values = st.sampled_from([0, 1, 3, 7, 15, 128, 255]) if draw(st.booleans()) else st.integers(0, 255)
    a = draw(arrays(np.uint8, (draw(st.integers(0, 12)), width), elements=values))
    b = draw(arrays(np.uint8, (draw(st.integers(0, 12)), width), elements=values))
    return a, b


options = st.fixed_dictionaries(
    {
        "mutual": st.booleans(),
        "ratio": st.sampled_from([None, 0.5, 0.8, 0.95, 1.0]),
        "max_distance": st.sampled_from([None, 0, 2, 5, 24]),
    }
)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=150, deadline=None)
@given(pair=descriptor_pairs(), opts=options)
def test_matches_brute_force_reference(backend, pair, opts):
    a, b = pair
    got = match_hamming(a, b, backend=backend, **opts)
    assert got.dtype == np.int64 and got.ndim == 2 and got.shape[1] == 2
    np.testing.assert_array_equal(got, reference_matches(a, b, **opts))


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=60, deadline=None)
@given(pair=descriptor_pairs(), opts=options, tile=st.integers(1, 40))
def test_small_tiles_agree(backend, pair, opts, tile):
    a, b = pair
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(matcher, "TILE_ELEMENTS", tile)
        mp.setattr(matcher, "MIN_TILE_ROWS", 1)
        got = match_hamming(a, b, backend=backend, **opts)
    np.testing.assert_array_equal(got, reference_matches(a, b, **opts))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_realistic_codes_match_reference(backend, seed):
    rng = np.random.default_rng(seed)
    a, b = random_codes(rng, 150), random_codes(rng, 120)
    b[:40] = a[10:50]  # plant exact correspondences
    for opts in (
        {"mutual": True, "ratio": 0.95},
        {"mutual": True, "ratio": None},
        {"mutual": False, "ratio": 0.9},
    ):
        got = match_hamming(a, b, backend=backend, **opts)
        np.testing.assert_array_equal(got, reference_matches(a, b, max_distance=None, **opts))
    planted = {(i + 10, i) for i in range(40)}
    assert planted <= {tuple(p) for p in match_hamming(a, b, backend=backend).tolist()}


@pytest.mark.skipif(not faiss_available(), reason="faiss not installed")
def test_backends_agree_at_scale():
    rng = np.random.default_rng(7)
    a, b = random_codes(rng, 1500), random_codes(rng, 1300)
    for ratio in (None, 0.95):
        np.testing.assert_array_equal(
            match_hamming(a, b, ratio=ratio, backend="faiss"),
            match_hamming(a, b, ratio=ratio, backend="numpy"),
        )


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=80, deadline=None)
@given(
    pair=descriptor_pairs(), ratio=st.sampled_from([None, 0.8, 1.0]), max_distance=st.sampled_from([None, 3])
)
def test_mutual_matching_is_symmetric(backend, pair, ratio, max_distance):
    a, b = pair
    forward = match_hamming(a, b, ratio=ratio, max_distance=max_distance, backend=backend)
    backward = match_hamming(b, a, ratio=ratio, max_distance=max_distance, backend=backend)
    swapped = backward[:, ::-1]
    np.testing.assert_array_equal(forward, swapped[np.argsort(swapped[:, 0], kind="stable")])


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_go_to_lowest_index(backend):
    code = np.array([[0b1011]], np.uint8)
    far = np.array([[0b11110000]], np.uint8)
    # Ten equally near candidates after two far ones.
    b = np.concatenate([far, far, code.repeat(10, axis=0)])
    got = match_hamming(code, b, ratio=None, backend=backend)
    np.testing.assert_array_equal(got, [[0, 2]])
    # Both sides duplicated: row 1 also points to column 0, whose nearest is row 0.
    got = match_hamming(code.repeat(2, axis=0), code.repeat(2, axis=0), ratio=None, backend=backend)
    np.testing.assert_array_equal(got, [[0, 0]])
    got = match_hamming(
        code.repeat(2, axis=0), code.repeat(3, axis=0), mutual=False, ratio=None, backend=backend
    )
    np.testing.assert_array_equal(got, [[0, 0], [1, 0]])


@pytest.mark.parametrize("backend", BACKENDS)
def test_ratio_needs_two_candidates(backend):
    rng = np.random.default_rng(0)
    a, b = random_codes(rng, 5), random_codes(rng, 1)
    assert match_hamming(a, b, backend=backend).shape == (0, 2)
    assert match_hamming(b, a, backend=backend).shape == (0, 2)  # mutual: the reverse side has one
    assert len(match_hamming(a, b, ratio=None, backend=backend)) == 1
    assert len(match_hamming(b, a, mutual=False, ratio=1.0, backend=backend)) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_ratio_and_max_distance_bounds_are_inclusive(backend):
    a = np.array([[0b0000_0000]], np.uint8)
    b = np.array([[0b0000_0011], [0b0000_1100]], np.uint8)  # both at distance 2: d1 == d2
    assert len(match_hamming(a, b, mutual=False, ratio=1.0, backend=backend)) == 1
    assert len(match_hamming(a, b, mutual=False, ratio=0.95, backend=backend)) == 0
    assert len(match_hamming(a, b, mutual=False, ratio=None, max_distance=2, backend=backend)) == 1
    assert len(match_hamming(a, b, mutual=False, ratio=None, max_distance=1.5, backend=backend)) == 0
    same = np.zeros((2, 1), np.uint8)  # d1 = d2 = 0 passes any ratio
    assert len(match_hamming(a, same, mutual=False, ratio=0.5, backend=backend)) == 1


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shapes", [((0, 32), (5, 32)), ((5, 32), (0, 32)), ((0, 32), (0, 32))])
def test_empty_inputs(backend, shapes):
    got = match_hamming(np.zeros(shapes[0], np.uint8), np.zeros(shapes[1], np.uint8), backend=backend)
    assert got.shape == (0, 2) and got.dtype == np.int64


def test_accepts_torch_tensors_and_non_contiguous_arrays():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    a, b = random_codes(rng, 30), random_codes(rng, 40)
    expected = match_hamming(a, b)
    np.testing.assert_array_equal(match_hamming(torch.from_numpy(a), torch.from_numpy(b)), expected)
    wide = np.zeros((30, 64), np.uint8)
    wide[:, ::2] = a
    np.testing.assert_array_equal(match_hamming(wide[:, ::2], b), expected)


@pytest.mark.parametrize(
    ("desc1", "desc2", "kwargs", "error", "text"),
    [
        (np.zeros((3, 32), np.int64), np.zeros((3, 32), np.uint8), {}, TypeError, "uint8"),
        (np.zeros(32, np.uint8), np.zeros((3, 32), np.uint8), {}, ValueError, r"\[N, B\]"),
        (np.zeros((3, 0), np.uint8), np.zeros((3, 0), np.uint8), {}, ValueError, "B >= 1"),
        (np.zeros((3, 32), np.uint8), np.zeros((3, 16), np.uint8), {}, ValueError, "32 and 16"),
        ([[1, 2]], np.zeros((3, 2), np.uint8), {}, TypeError, "list"),
        (np.zeros((3, 4), np.uint8), np.zeros((3, 4), np.uint8), {"ratio": 0.0}, ValueError, "ratio"),
        (np.zeros((3, 4), np.uint8), np.zeros((3, 4), np.uint8), {"ratio": 1.5}, ValueError, "ratio"),
        (
            np.zeros((3, 4), np.uint8),
            np.zeros((3, 4), np.uint8),
            {"ratio": float("nan")},
            ValueError,
            "ratio",
        ),
        (np.zeros((3, 4), np.uint8), np.zeros((3, 4), np.uint8), {"ratio": "0.9"}, TypeError, "ratio"),
        (
            np.zeros((3, 4), np.uint8),
            np.zeros((3, 4), np.uint8),
            {"max_distance": -1},
            ValueError,
            "max_distance",
        ),
        (np.zeros((3, 4), np.uint8), np.zeros((3, 4), np.uint8), {"mutual": 1}, TypeError, "mutual"),
        (np.zeros((3, 4), np.uint8), np.zeros((3, 4), np.uint8), {"backend": "gpu"}, ValueError, "backend"),
    ],
)
def test_invalid_input_is_refused(desc1, desc2, kwargs, error, text):
    with pytest.raises(error, match=text):
        match_hamming(desc1, desc2, **kwargs)
