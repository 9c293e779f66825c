"""Nearest-neighbour matching for evaluation: Hamming for packed binary descriptors, L2 for float ones.

The protocol uses plain nearest neighbours, without a ratio test: mutual (cross-checked) for
homography estimation, one-way for the matching score. Ties go to the lowest index, as with
``cv2.BFMatcher``. Matches are int64 (M, 2) index pairs; (0, 2) when empty.
"""

from __future__ import annotations

import numpy as np

DESCRIPTOR_KINDS = ("binary", "float")
_CHUNK_ROWS = 256  # bounds the (rows, M, bytes) XOR buffer


def _check_pair(desc1: np.ndarray, desc2: np.ndarray, kind: str) -> None:
    if kind not in DESCRIPTOR_KINDS:
        raise ValueError(f"descriptor kind must be one of {DESCRIPTOR_KINDS}, got {kind!r}")
    for name, d in (("desc1", desc1), ("desc2", desc2)):
        if not isinstance(d, np.ndarray) or d.ndim != 2:
            raise ValueError(f"{name} must be a 2-D array [N, D], got {getattr(d, 'shape', type(d).__name__)}")
        if kind == "binary" and d.dtype != np.uint8:
            raise TypeError(f"{name}: binary descriptors must be packed uint8, got {d.dtype}")
    if desc1.shape[1] != desc2.shape[1]:
        raise ValueError(f"descriptor widths differ: {desc1.shape[1]} vs {desc2.shape[1]}")


def hamming_distances(desc1: np.ndarray, desc2: np.ndarray) -> np.ndarray:
    """Bit distances between packed descriptors of any byte width: uint8 [N,B] x [M,B] -> int32 [N,M]."""
    _check_pair(desc1, desc2, "binary")
    out = np.empty((len(desc1), len(desc2)), dtype=np.int32)
    for start in range(0, len(desc1), _CHUNK_ROWS):
        block = desc1[start : start + _CHUNK_ROWS, None, :] ^ desc2[None, :, :]
        out[start : start + _CHUNK_ROWS] = np.bitwise_count(block).sum(axis=2, dtype=np.int32)
    return out


def l2_distances(desc1: np.ndarray, desc2: np.ndarray) -> np.ndarray:
    """Euclidean distances between float descriptors: [N,D] x [M,D] -> float64 [N,M]."""
    _check_pair(desc1, desc2, "float")
    a = desc1.astype(np.float64)
    b = desc2.astype(np.float64)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(squared, 0.0))


def descriptor_distances(desc1: np.ndarray, desc2: np.ndarray, kind: str) -> np.ndarray:
    """Distance matrix [N, M] for ``kind`` ``"binary"`` (Hamming) or ``"float"`` (L2)."""
    return hamming_distances(desc1, desc2) if kind == "binary" else l2_distances(desc1, desc2)


def nearest_neighbours(distances: np.ndarray) -> np.ndarray:
    """For each row, the column of smallest distance (lowest index on ties): int64 [N]."""
    if distances.shape[1] == 0:
        return np.zeros(0, dtype=np.int64)
    return distances.argmin(axis=1).astype(np.int64)


def mutual_nearest_neighbours(distances: np.ndarray) -> np.ndarray:
    """Pairs (i, j) where j is i's nearest neighbour and i is j's: int64 (M, 2), sorted by i."""
    if distances.shape[0] == 0 or distances.shape[1] == 0:
        return np.zeros((0, 2), dtype=np.int64)
    forward = distances.argmin(axis=1)
    backward = distances.argmin(axis=0)
    rows = np.flatnonzero(backward[forward] == np.arange(distances.shape[0]))
    return np.stack([rows, forward[rows]], axis=1).astype(np.int64)


def _project_matcher():
    """The project's Hamming matcher when it is installed, else None (the brute force is equivalent)."""
    try:
        from zippypoint.binary_desc.matcher import match_hamming
    except ImportError:
        return None
    return match_hamming


def match_mutual(desc1: np.ndarray, desc2: np.ndarray, kind: str) -> np.ndarray:
    """Mutual nearest neighbours without a ratio test: int64 (M, 2), sorted by the first index.

    256-bit descriptors go through ``zippypoint.binary_desc.matcher.match_hamming`` when available;
    other widths (AKAZE 61 bytes, BRISK 64) and float descriptors use the brute force here.
    """
    _check_pair(desc1, desc2, kind)
    if kind == "binary" and desc1.shape[1] == 32 and len(desc1) and len(desc2):
        match_hamming = _project_matcher()
        if match_hamming is not None:
            matches = np.asarray(match_hamming(desc1, desc2, mutual=True, ratio=None), dtype=np.int64)
            return matches[np.argsort(matches[:, 0], kind="stable")].reshape(-1, 2)
    return mutual_nearest_neighbours(descriptor_distances(desc1, desc2, kind))


def match_one_way(desc1: np.ndarray, desc2: np.ndarray, kind: str) -> np.ndarray:
    """Each row of ``desc1`` with its nearest neighbour in ``desc2``: int64 (N, 2); (0, 2) if either is empty."""
    _check_pair(desc1, desc2, kind)
    if len(desc1) == 0 or len(desc2) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    nn = nearest_neighbours(descriptor_distances(desc1, desc2, kind))
    return np.stack([np.arange(len(desc1), dtype=np.int64), nn], axis=1)
