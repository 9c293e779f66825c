"""Hamming distances between packed binary descriptors (numpy only).

The distance is computed as one float matrix product instead of XOR + popcount:
for 0/1 vectors ``a``, ``b``: ``hamming(a, b) = |a| + |b| - 2 <a, b>``, and appending the
popcounts as two extra columns folds the whole expression into a single BLAS call
(``[a, |a|, 1] . [-2 b, 1, |b|]``). Every partial sum is an integer far below 2**24, so float32
is exact whatever order BLAS adds in. At 2048 x 2048 x 256 bits this is several times faster
than ``np.bitwise_count`` on broadcast XORs, and it needs no [N, M, B] temporary.
"""

from __future__ import annotations

import numpy as np

from zippypoint.binary_desc._arrays import as_packed_descriptors, check_same_width

# Largest tile of the distance matrix built at once (elements); bounds peak memory (~64 MB float32).
TILE_ELEMENTS = 1 << 24

# float32 represents every integer up to 2**24 exactly.
_FLOAT32_EXACT = 1 << 24


def exact_float_dtype(n_bits: int, row_scale: int = 1) -> type[np.floating]:
    """Float dtype in which ``row_scale * hamming + row_index`` products are exact for ``n_bits`` bits.

    Partial sums of the product are bounded by ``row_scale * (4 * n_bits + 2)``.
    """
    return np.float32 if row_scale * (4 * n_bits + 2) < _FLOAT32_EXACT else np.float64


def distance_operands(
    a: np.ndarray, b: np.ndarray, dtype: type[np.floating]
) -> tuple[np.ndarray, np.ndarray]:
    """Float operands ``A [N, 8B + 2]``, ``Bm [M, 8B + 2]`` with ``A @ Bm.T`` = Hamming distances.

    ``a`` and ``b`` are validated packed descriptors (uint8 [N, B], [M, B]).
    """
    n_bits = 8 * a.shape[1]
    bits_a = np.unpackbits(a, axis=1, bitorder="little")
    bits_b = np.unpackbits(b, axis=1, bitorder="little")
    lhs = np.empty((a.shape[0], n_bits + 2), dtype)
    lhs[:, :n_bits] = bits_a
    lhs[:, n_bits] = bits_a.sum(axis=1, dtype=np.int64)
    lhs[:, n_bits + 1] = 1
    rhs = np.empty((b.shape[0], n_bits + 2), dtype)
    rhs[:, :n_bits] = bits_b
    rhs[:, :n_bits] *= -2
    rhs[:, n_bits] = 1
    rhs[:, n_bits + 1] = bits_b.sum(axis=1, dtype=np.int64)
    return lhs, rhs


def hamming_distance_matrix(a: object, b: object) -> np.ndarray:
    """All pairwise Hamming distances between packed descriptors.

    Args:
        a: uint8 [N, B] packed descriptors.
        b: uint8 [M, B] packed descriptors with the same byte width.

    Returns:
        int32 [N, M] distances (number of differing bits).
    """
    a = as_packed_descriptors(a, "a")
    b = as_packed_descriptors(b, "b")
    check_same_width(a, b, ("a", "b"))
    n, m = a.shape[0], b.shape[0]
    out = np.empty((n, m), np.int32)
    if n == 0 or m == 0:
        return out
    lhs, rhs = distance_operands(a, b, exact_float_dtype(8 * a.shape[1]))
    rhs_t = rhs.T
    chunk = max(1, TILE_ELEMENTS // m)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        out[start:stop] = lhs[start:stop] @ rhs_t
    return out
