"""Match two feature sets and fit a homography: the core of `zippypoint match` and the demo."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zippypoint.binary_desc.matcher import match_hamming


@dataclass(frozen=True)
class MatchResult:
    matches: np.ndarray  # int64 (M, 2) index pairs into (features1, features2)
    homography: np.ndarray | None  # 3x3 mapping image-1 pixels to image-2 pixels; None if it failed
    inliers: np.ndarray  # bool (M,): RANSAC inliers (all False when no homography)

    @property
    def num_inliers(self) -> int:
        return int(self.inliers.sum())


def match_and_fit(features1: dict, features2: dict, *, ratio: float | None = 0.95, max_distance: int | None = None,
                  ransac_px: float = 3.0, ransac_iters: int = 5000) -> MatchResult:
    """Mutual-NN Hamming matching (Lowe's ratio) then a RANSAC homography."""
    import cv2

    matches = match_hamming(features1["descriptors"], features2["descriptors"], mutual=True, ratio=ratio,
                            max_distance=max_distance)
    if len(matches) < 4:
        return MatchResult(matches, None, np.zeros(len(matches), bool))
    p1 = features1["keypoints"][matches[:, 0]].astype(np.float64)
    p2 = features2["keypoints"][matches[:, 1]].astype(np.float64)
    cv2.setRNGSeed(0)
    h, mask = cv2.findHomography(p1, p2, cv2.RANSAC, ransac_px, maxIters=ransac_iters)
    if h is None:
        return MatchResult(matches, None, np.zeros(len(matches), bool))
    return MatchResult(matches, h, mask.reshape(-1).astype(bool))

