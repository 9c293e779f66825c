"""Nearest-neighbour matching of descriptor sets: Hamming for packed binary descriptors, L2 for float ones.

The one matcher of the project: binary descriptors of any byte width go through
``zippypoint.binary_desc.matcher.match_hamming`` (and its distance kernel); float descriptors use the
L2 distance matrix here. Without a ratio test: mutual (cross-checked) for methods' ``match`` and the
protocol's homography, one-way for the matching score. Ties go to the lowest index, as with
``cv2.BFMatcher``. Matches are int64 (M, 2) index pairs sorted by the first index; (0, 2) when empty.
"""

from __future__ import annotations

import numpy as np

from zippypoint.binary_desc.hamming import hamming_distance_matrix
from zippypoint.binary_desc.matcher import match_hamming

DESCRIPTOR_KINDS = ("binary", "float")


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


def l2_distances(desc1: np.ndarray, desc2: np.ndarray) -> np.ndarray:
    """Euclidean distances between float descriptors: [N,D] x [M,D] -> float64 [N,M]."""
    _check_pair(desc1, desc2, "float")
    a = desc1.astype(np.float64)
    b = desc2.astype(np.float64)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(squared, 0.0))


def mutual_nearest_neighbours(distances: np.ndarray) -> np.ndarray:
    """Pairs (i, j) where j is i's nearest neighbour and i is j's: int64 (M, 2), sorted by i."""
    if distances.shape[0] == 0 or distances.shape[1] == 0:
        return np.zeros((0, 2), dtype=np.int64)
    forward = distances.argmin(axis=1)
    backward = distances.argmin(axis=0)
    rows = np.flatnonzero(backward[forward] == np.arange(distances.shape[0]))
    return np.stack([rows, forward[rows]], axis=1).astype(np.int64)


def match_mutual(desc1: np.ndarray, desc2: np.ndarray, kind: str) -> np.ndarray:
    """Mutual nearest neighbours without a ratio test: int64 (M, 2), sorted by the first index."""
    _check_pair(desc1, desc2, kind)
    if kind == "binary":
        if len(desc1) == 0 or len(desc2) == 0:
            return np.zeros((0, 2), dtype=np.int64)
        return match_hamming(np.ascontiguousarray(desc1), np.ascontiguousarray(desc2), mutual=True, ratio=None)
    return mutual_nearest_neighbours(l2_distances(desc1, desc2))


def match_one_way(desc1: np.ndarray, desc2: np.ndarray, kind: str) -> np.ndarray:
    """Each row of ``desc1`` with its nearest neighbour in ``desc2``: int64 (N, 2); (0, 2) if either is empty."""
    _check_pair(desc1, desc2, kind)
    if len(desc1) == 0 or len(desc2) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if kind == "binary":
        distances = hamming_distance_matrix(np.ascontiguousarray(desc1), np.ascontiguousarray(desc2))
    else:
        distances = l2_distances(desc1, desc2)
    nearest = distances.argmin(axis=1).astype(np.int64)
    return np.stack([np.arange(len(desc1), dtype=np.int64), nearest], axis=1)
