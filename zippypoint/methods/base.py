"""The method interface every consumer uses (evaluation, benchmark, VO, mapping), and its output contract.

A method has ``name``, ``descriptor_kind`` (``"binary"``: packed uint8 compared by Hamming distance;
``"float"``: compared by L2), ``settings`` (a JSON-able dict that identifies its predictions, e.g. for a
cache) and:

- ``load()``: imports the backend and reads weights; raises :class:`MethodUnavailable` with the reason
  when it cannot run here. Constructors store settings only.
- ``__call__(image_bgr uint8 [H, W, 3]) -> {"keypoints" float32 [N, 2] (x, y px), "scores" float32 [N]
  sorted descending, "descriptors" [N, D]}``.
- ``match(features1, features2) -> int64 [M, 2]``: mutual nearest neighbours without a ratio test
  (Hamming for binary descriptors, L2 for float ones; ``zippypoint.methods.matching``), so that every
  consumer matches the same way.

This module is a leaf: numpy only.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class MethodUnavailable(RuntimeError):
    """The method cannot run here (missing package, weights or OpenCV module); the message says why."""


class Method(Protocol):
    name: str
    descriptor_kind: str
    settings: dict

    def load(self) -> None: ...

    def __call__(self, image_bgr: np.ndarray) -> dict[str, np.ndarray]: ...

    def match(self, features1: dict, features2: dict) -> np.ndarray: ...


class MutualMatching:
    """``match`` for a method with a ``descriptor_kind``: mutual nearest neighbours, no ratio test."""

    descriptor_kind: str

    def match(self, features1: dict, features2: dict) -> np.ndarray:
        from zippypoint.methods.matching import match_mutual

        return match_mutual(features1["descriptors"], features2["descriptors"], self.descriptor_kind)


def empty_features(descriptor_width: int, dtype) -> dict[str, np.ndarray]:
    return {
        "keypoints": np.zeros((0, 2), np.float32),
        "scores": np.zeros(0, np.float32),
        "descriptors": np.zeros((0, descriptor_width), dtype),
    }


def sorted_features(keypoints, scores, descriptors) -> dict[str, np.ndarray]:
    """The output contract: float32 keypoints/scores, scores sorted descending (stable)."""
    keypoints = np.asarray(keypoints, dtype=np.float32).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    descriptors = np.asarray(descriptors)
    order = np.argsort(-scores, kind="stable")
    return {
        "keypoints": np.ascontiguousarray(keypoints[order]),
        "scores": np.ascontiguousarray(scores[order]),
        "descriptors": np.ascontiguousarray(descriptors[order]),
    }


def check_features(features: dict, method: Method) -> dict[str, np.ndarray]:
    """Validate a method's output against the contract; returns the three arrays."""
    try:
        kp, sc, de = features["keypoints"], features["scores"], features["descriptors"]
    except (KeyError, TypeError):
        raise ValueError(f"{method.name}: expected a dict with keypoints, scores, descriptors") from None
    n = len(sc)
    if kp.shape != (n, 2) or sc.shape != (n,) or de.ndim != 2 or len(de) != n:
        raise ValueError(
            f"{method.name}: inconsistent shapes keypoints {kp.shape}, scores {sc.shape}, descriptors {de.shape}"
        )
    if method.descriptor_kind == "binary" and de.dtype != np.uint8:
        raise TypeError(f"{method.name}: binary descriptors must be uint8, got {de.dtype}")
    if not (np.isfinite(kp).all() and np.isfinite(sc).all()):
        raise ValueError(f"{method.name}: keypoints or scores contain NaN or Inf")
    return {"keypoints": kp.astype(np.float32), "scores": sc.astype(np.float32), "descriptors": de}
