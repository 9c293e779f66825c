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

The faiss backend (``faiss.knn_hamming``) is used when faiss is importable; the numpy backend
computes tiles of the distance matrix with one BLAS product each (see ``hamming.py``).
"""

from __future__ import annotations

import functools
import math
from numbers import Real
from types import ModuleType
from typing import NamedTuple

import numpy as np

from zippypoint.binary_desc._arrays import as_packed_descriptors, check_same_width
from zippypoint.binary_desc.hamming import TILE_ELEMENTS, distance_operands, exact_float_dtype

BACKENDS = ("auto", "faiss", "numpy")

# Neighbours asked from faiss per query. Its order among equal distances is not part of its
# contract, so the lowest index is picked from these; rows where all of them tie (rare for
# real descriptors, ~10% for random 64-of-256 codes at 2048) are recomputed exactly.
_FAISS_K = 4

# Stands for "no second neighbour" in integer distance arrays.
_NO_DISTANCE = np.iinfo(np.int64).max // 4


class _Nearest(NamedTuple):
    index: np.ndarray  # int64 [Q] nearest base row, lowest index among equal distances
    first: np.ndarray  # int64 [Q] distance to it
    second: np.ndarray  # int64 [Q] second smallest distance (may equal first)


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


def _nearest_faiss(faiss: ModuleType, query: np.ndarray, base: np.ndarray) -> _Nearest:
    k = min(_FAISS_K, base.shape[0])
    dist, idx = faiss.knn_hamming(query, base, k)
    dist = dist.astype(np.int64)
    ordered = np.sort(dist, axis=1)  # faiss returns them sorted; sorting k columns again is cheap
    first = ordered[:, 0]
    second = ordered[:, 1] if k > 1 else np.full_like(first, _NO_DISTANCE)
    nearest = np.where(dist == first[:, None], idx, np.iinfo(np.int64).max).min(axis=1)
    if k < base.shape[0]:
        # All k returned neighbours tie: more may tie outside the list, so resolve exactly.
        unsure = np.flatnonzero(ordered[:, -1] == first)
        if unsure.size:
            rows = np.ascontiguousarray(query[unsure])
            dist_rows = np.empty((rows.shape[0], base.shape[0]), np.int32)
            # faiss's own popcount kernel: a numpy/BLAS product here would start a second
            # thread pool that competes with faiss's OpenMP threads.
            faiss.hammings(
                faiss.swig_ptr(rows),
                faiss.swig_ptr(base),
                rows.shape[0],
                base.shape[0],
                base.shape[1],
                faiss.swig_ptr(dist_rows),
            )
            nearest[unsure] = dist_rows.argmin(axis=1)
    return _Nearest(nearest, first, second)


def _nearest_numpy(a: np.ndarray, b: np.ndarray, with_reverse: bool) -> tuple[_Nearest, _Nearest | None]:
    """Nearest neighbours of every row of ``a`` in ``b`` and, optionally, of every row of ``b`` in ``a``.

    Both directions come from the same distance tiles. Each tile holds ``key = scale * d + r``
    (``r`` the row within the tile): along a row the key orders like the distance, down a column
    it orders by distance and then by row, so plain (arg)min reductions give the lowest index.
    """
    n, m = a.shape[0], b.shape[0]
    scale = min(n, max(1, TILE_ELEMENTS // m))
    dtype = exact_float_dtype(8 * a.shape[1], row_scale=scale)
    lhs, rhs = distance_operands(a, b, dtype)
    rhs_t = rhs.T
    key_col = 8 * a.shape[1]  # the column of lhs holding |a|, reused to add the row number

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
        tile_lhs = lhs[start:stop] * scale
        tile_lhs[:, key_col] += rows
        keys = tile_lhs @ rhs_t  # [rows, m]

        nearest = keys.argmin(axis=1)
        best = keys[rows, nearest]
        fwd_index[start:stop] = nearest
        fwd_first[start:stop] = ((best - rows) / scale).astype(np.int64)
        if m > 1:
            keys[rows, nearest] = np.inf
            fwd_second[start:stop] = ((keys.min(axis=1) - rows) / scale).astype(np.int64)
            keys[rows, nearest] = best

        if not with_reverse:
            continue
        col_key = keys.min(axis=0).astype(np.int64)
        col_first, col_row = np.divmod(col_key, scale)
        col_second = np.full(m, _NO_DISTANCE, np.int64)
        if stop - start > 1:
            keys[col_row, columns] = np.inf
            col_second = keys.min(axis=0).astype(np.int64) // scale
        # Earlier tiles hold lower rows, so they keep ties. Second smallest of two sorted pairs:
        rev_second = np.minimum(np.maximum(rev_first, col_first), np.minimum(rev_second, col_second))
        rev_index = np.where(col_first < rev_first, col_row + start, rev_index)
        rev_first = np.minimum(rev_first, col_first)

    reverse = _Nearest(rev_index, rev_first, rev_second) if with_reverse else None
    return _Nearest(fwd_index, fwd_first, fwd_second), reverse


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

    if faiss is None:
        forward, reverse = _nearest_numpy(a, b, with_reverse=mutual)
    else:
        forward, reverse = _nearest_faiss(faiss, a, b), None

    keep = np.ones(n, bool)
    if ratio is not None:
        keep &= _passes_ratio(forward.first, forward.second, ratio)
    if max_distance is not None:
        keep &= forward.first <= max_distance
    rows = np.flatnonzero(keep)
    cols = forward.index[rows]

    if mutual and rows.size:
        if reverse is None:
            # Only descriptors of desc2 that some candidate points to need a reverse search.
            targets, inverse = np.unique(cols, return_inverse=True)
            back = _nearest_faiss(faiss, b[targets], a)
        else:
            back, inverse = reverse, cols
        ok = back.index[inverse] == rows
        if ratio is not None:
            ok &= _passes_ratio(back.first[inverse], back.second[inverse], ratio)
        rows, cols = rows[ok], cols[ok]

    if rows.size == 0:
        return empty
    return np.stack([rows, cols], axis=1).astype(np.int64, copy=False)
