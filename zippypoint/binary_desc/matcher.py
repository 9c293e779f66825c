"""Nearest-neighbour matching of packed binary descriptors by Hamming distance (numpy only).

Semantics of ``match_hamming`` (both backends give identical results):

* Each descriptor's nearest neighbour in the other set is the one at the smallest Hamming
  distance; among equal distances the lowest index wins.
* ``mutual``: keep ``(i, j)`` only if ``j`` is the nearest neighbour of ``i`` and ``i`` that of ``j``.
* ``ratio`` (Lowe's ratio test): with ``d1 <= d2`` the two smallest distances from a descriptor to
  the other set (sorted explicitly; ``d2`` may equal ``d1``), accept if ``d1 <= ratio * d2``.
  Checked for ``i`` and, when ``mutual``, also for ``j``. A descriptor whose other set has fewer
  than two descriptors cannot pass the test, so then nothing is matched.
* ``max_distance``: reject pairs farther apart than this many bits.

Both backends compute the distance matrix in row tiles and reduce each tile in both directions
at once; they differ only in the distance kernel: faiss's popcount (``faiss.hammings``, used when
faiss is importable) or one BLAS product per tile (numpy, see ``hamming.py``). An exhaustive
faiss k-NN search was slower here (two searches, a heap per query, OpenMP threads that stall
when the CPU is shared) and leaves the choice among equally distant neighbours unspecified.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from numbers import Real
from types import ModuleType
from typing import NamedTuple

import numpy as np

from zippypoint.binary_desc._arrays import as_packed_descriptors, check_same_width
from zippypoint.binary_desc.hamming import distance_operands, exact_float_dtype

BACKENDS = ("auto", "faiss", "numpy")

# Elements of the distance matrix held at once. Small tiles stay in cache between computing the
# distances and reducing them; each tile only adds O(M) merging work. Very wide matrices still
# get MIN_TILE_ROWS rows per tile so that the Python loop stays short.
TILE_ELEMENTS = 1 << 19
MIN_TILE_ROWS = 32

# Stands for "no second neighbour" in integer distance arrays.
_NO_DISTANCE = np.iinfo(np.int64).max // 4


class _Nearest(NamedTuple):
    index: np.ndarray  # int64 [Q] nearest base row, lowest index among equal distances
    first: np.ndarray  # int64 [Q] distance to it
    second: np.ndarray  # int64 [Q] second smallest distance (may equal first)


# A tile of keys ``scale * distance + r`` for rows ``start:stop`` of desc1 against all of desc2,
# ``r = row - start``; float or integer, but exact.
TileKeys = Callable[[int, int], np.ndarray]


@functools.cache
def _faiss_module() -> ModuleType | None:
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def faiss_available() -> bool:
    """Whether the faiss backend can be used."""
    return _faiss_module() is not None


def _resolve_backend(backend: str) -> ModuleType | None:
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend == "numpy":
        return None
    faiss = _faiss_module()
    if faiss is None and backend == "faiss":
        raise ImportError("backend='faiss' needs the faiss package (pip install faiss-cpu)")
    return faiss


def _faiss_tiles(faiss: ModuleType, a: np.ndarray, b: np.ndarray, scale: int) -> TileKeys:
    """Tiles from faiss's popcount kernel (``faiss.hammings``, int32), keyed in place."""
    m, width = b.shape
    buffer = np.empty((scale, m), np.int32)  # reused: a fresh multi-MB array per tile costs page faults
    row_numbers = np.arange(scale, dtype=np.int32)[:, None]

    def keys(start: int, stop: int) -> np.ndarray:
        out = buffer[: stop - start]
        faiss.hammings(
            faiss.swig_ptr(a[start:stop]), faiss.swig_ptr(b), stop - start, m, width, faiss.swig_ptr(out)
        )
        out *= scale
        out += row_numbers[: stop - start]
        return out

    return keys


def _numpy_tiles(a: np.ndarray, b: np.ndarray, scale: int) -> TileKeys:
    """Tiles from one BLAS product each; the key is folded into the operands (see ``hamming.py``)."""
    lhs, rhs = distance_operands(a, b, exact_float_dtype(8 * a.shape[1], row_scale=scale))
    rhs_t = rhs.T
    count_col = 8 * a.shape[1]  # the lhs column holding |a|, which also takes the row number

    lhs_tile = np.empty((scale, lhs.shape[1]), lhs.dtype)
    buffer = np.empty((scale, b.shape[0]), lhs.dtype)  # reused across tiles, as in _faiss_tiles
    row_numbers = np.arange(scale, dtype=lhs.dtype)

    def keys(start: int, stop: int) -> np.ndarray:
        tile = np.multiply(lhs[start:stop], scale, out=lhs_tile[: stop - start])
        tile[:, count_col] += row_numbers[: stop - start]
        return np.matmul(tile, rhs_t, out=buffer[: stop - start])

    return keys


def _nearest_both_ways(
    n: int, m: int, tile_keys: TileKeys, scale: int, with_reverse: bool
) -> tuple[_Nearest, _Nearest | None]:
    """Nearest neighbours of every desc1 row in desc2 and, optionally, of every desc2 row in desc1.

    Tiles of ``scale`` rows hold ``key = scale * d + r``: along a row the key orders like the
    distance, down a column by distance and then by row, so plain (arg)min reductions give the
    lowest index in both directions from one distance computation.
    """
    fwd_index = np.empty(n, np.int64)
    fwd_first = np.empty(n, np.int64)
    fwd_second = np.full(n, _NO_DISTANCE, np.int64)
    rev_index = np.zeros(m, np.int64)
    rev_first = np.full(m, _NO_DISTANCE, np.int64)
    rev_second = np.full(m, _NO_DISTANCE, np.int64)
    columns = np.arange(m)

    for start in range(0, n, scale):
        stop = min(start + scale, n)
        rows = np.arange(stop - start)
        keys = tile_keys(start, stop)
        masked = np.inf if keys.dtype.kind == "f" else np.iinfo(keys.dtype).max

        nearest = keys.argmin(axis=1)
        best = keys[rows, nearest]
        fwd_index[start:stop] = nearest
        fwd_first[start:stop] = (best.astype(np.int64) - rows) // scale
        if m > 1:
            keys[rows, nearest] = masked
            fwd_second[start:stop] = (keys.min(axis=1).astype(np.int64) - rows) // scale
            keys[rows, nearest] = best

        if not with_reverse:
            continue
        col_first, col_row = np.divmod(keys.min(axis=0).astype(np.int64), scale)
        col_second = np.full(m, _NO_DISTANCE, np.int64)
        if stop - start > 1:
            keys[col_row, columns] = masked
            col_second = keys.min(axis=0).astype(np.int64) // scale
        # Earlier tiles hold lower rows, so they keep ties. Second smallest of two sorted pairs:
        rev_second = np.minimum(np.maximum(rev_first, col_first), np.minimum(rev_second, col_second))
        rev_index = np.where(col_first < rev_first, col_row + start, rev_index)
        rev_first = np.minimum(rev_first, col_first)

    reverse = _Nearest(rev_index, rev_first, rev_second) if with_reverse else None
    return _Nearest(fwd_index, fwd_first, fwd_second), reverse


def _tile_rows(n: int, m: int, n_bits: int) -> int:
    """Rows per distance tile: bounded by TILE_ELEMENTS and by int32 keys (scale * (n_bits + 1) < 2**31)."""
    return max(1, min(n, max(MIN_TILE_ROWS, TILE_ELEMENTS // m), (2**31 - 1) // (n_bits + 1)))


def _passes_ratio(first: np.ndarray, second: np.ndarray, ratio: float) -> np.ndarray:
    return first.astype(np.float64) <= ratio * second.astype(np.float64)


def _check_options(mutual: object, ratio: object, max_distance: object) -> None:
    if not isinstance(mutual, (bool, np.bool_)):
        raise TypeError(f"mutual: expected bool, got {type(mutual).__name__}")
    if ratio is not None:
        if isinstance(ratio, bool) or not isinstance(ratio, Real):
            raise TypeError(f"ratio: expected a float or None, got {type(ratio).__name__}")
        if not 0.0 < float(ratio) <= 1.0:
            raise ValueError(f"ratio: expected 0 < ratio <= 1, got {ratio}")
    if max_distance is not None:
        if isinstance(max_distance, bool) or not isinstance(max_distance, Real):
            raise TypeError(f"max_distance: expected a number or None, got {type(max_distance).__name__}")
        if math.isnan(float(max_distance)) or max_distance < 0:
            raise ValueError(f"max_distance: expected a non-negative number, got {max_distance}")


def match_hamming(
    desc1: object,
    desc2: object,
    *,
    mutual: bool = True,
    ratio: float | None = 0.95,
    max_distance: float | None = None,
    backend: str = "auto",
) -> np.ndarray:
    """Match packed binary descriptors by Hamming distance (semantics in the module docstring).

    Args:
        desc1: uint8 [N, B] packed descriptors (torch tensors are accepted and copied to the CPU).
        desc2: uint8 [M, B] packed descriptors, same byte width.
        mutual: keep only mutual nearest neighbours.
        ratio: Lowe's ratio threshold in (0, 1]; None disables the test.
        max_distance: largest accepted distance in bits; None disables the limit.
        backend: "auto" (faiss when importable), "faiss" or "numpy"; results are identical.

    Returns:
        int64 [K, 2] index pairs ``(i, j)`` sorted by ``i``; shape (0, 2) when nothing matches.
    """
    a = as_packed_descriptors(desc1, "desc1")
    b = as_packed_descriptors(desc2, "desc2")
    check_same_width(a, b, ("desc1", "desc2"))
    _check_options(mutual, ratio, max_distance)
    faiss = _resolve_backend(backend)
    empty = np.zeros((0, 2), np.int64)
    n, m = a.shape[0], b.shape[0]
    if n == 0 or m == 0:
        return empty
    if ratio is not None and (m < 2 or (mutual and n < 2)):
        return empty

    scale = _tile_rows(n, m, 8 * a.shape[1])
    tiles = _numpy_tiles(a, b, scale) if faiss is None else _faiss_tiles(faiss, a, b, scale)
    forward, reverse = _nearest_both_ways(n, m, tiles, scale, with_reverse=mutual)

    keep = np.ones(n, bool)
    if ratio is not None:
        keep &= _passes_ratio(forward.first, forward.second, ratio)
    if max_distance is not None:
        keep &= forward.first <= max_distance
    rows = np.flatnonzero(keep)
    cols = forward.index[rows]
    if mutual:
        ok = reverse.index[cols] == rows
        if ratio is not None:
            ok &= _passes_ratio(reverse.first[cols], reverse.second[cols], ratio)
        rows, cols = rows[ok], cols[ok]

    if rows.size == 0:
        return empty
    return np.stack([rows, cols], axis=1).astype(np.int64, copy=False)
