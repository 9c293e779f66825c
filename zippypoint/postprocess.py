"""Dense network maps -> sparse keypoints and packed binary descriptors (numpy only).

Shared by the PyTorch extractor and the torch-free ONNX runtime so both give identical output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zippypoint.binary_desc.binarize import topk_binarize
from zippypoint.binary_desc.packing import pack_bits


@dataclass(frozen=True)
class PostprocessConfig:
    max_keypoints: int | None = 1000  # keep at most this many (highest scores); None = all
    score_threshold: float = 1e-4  # drop cells scoring below this
    nms_radius: int = 0  # suppression radius in cells (1 = 3x3 on the cell grid, the original); 0 = off
    descriptor_ones: int = 64  # ones per binary descriptor

    def __post_init__(self) -> None:
        if self.max_keypoints is not None and self.max_keypoints < 0:
            raise ValueError(f"max_keypoints must be >= 0 or None, got {self.max_keypoints}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if self.nms_radius < 0:
            raise ValueError(f"nms_radius must be >= 0, got {self.nms_radius}")


def _max_filter(x: np.ndarray, r: int) -> np.ndarray:
    import cv2

    k = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
    return cv2.dilate(x, k, borderType=cv2.BORDER_CONSTANT, borderValue=-np.inf)


def cell_nms(scores: np.ndarray, radius: int) -> np.ndarray:
    """Iterative max-pool suppression on the cell grid (SuperGlue style, two refinement passes).

    Returns a boolean (h, w) mask of cells that survive.
    """
    s = scores.astype(np.float32)
    if radius == 0:
        return np.ones_like(s, dtype=bool)
    keep = s == _max_filter(s, radius)
    for _ in range(2):
        suppressed = _max_filter(keep.astype(np.float32), radius) > 0
        rest = np.where(suppressed, 0.0, s).astype(np.float32)
        new_keep = (rest == _max_filter(rest, radius)) & ~suppressed
        keep = keep | new_keep
    return keep


def sample_descriptors(desc_map: np.ndarray, keypoints: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Bilinear sampling of a (D, h4, w4) map at keypoints (N,2), align-corners convention.

    ``u = x / (W - 1) * (w4 - 1)`` with (W, H) the padded network input size.
    """
    d, h4, w4 = desc_map.shape
    n = keypoints.shape[0]
    if n == 0:
        return np.zeros((0, d), np.float32)
    width, height = image_size
    u = keypoints[:, 0].astype(np.float64) / max(width - 1, 1) * (w4 - 1)
    v = keypoints[:, 1].astype(np.float64) / max(height - 1, 1) * (h4 - 1)
    u0 = np.clip(np.floor(u).astype(np.int64), 0, w4 - 1)
    v0 = np.clip(np.floor(v).astype(np.int64), 0, h4 - 1)
    u1 = np.minimum(u0 + 1, w4 - 1)
    v1 = np.minimum(v0 + 1, h4 - 1)
    fu = (u - u0)[None].astype(np.float32)
    fv = (v - v0)[None].astype(np.float32)
    top = desc_map[:, v0, u0] * (1 - fu) + desc_map[:, v0, u1] * fu
    bottom = desc_map[:, v1, u0] * (1 - fu) + desc_map[:, v1, u1] * fu
    return np.ascontiguousarray((top * (1 - fv) + bottom * fv).T.astype(np.float32))


def empty_features(bytes_per_descriptor: int = 32) -> dict[str, np.ndarray]:
    return {
        "keypoints": np.zeros((0, 2), np.float32),
        "scores": np.zeros((0,), np.float32),
        "descriptors": np.zeros((0, bytes_per_descriptor), np.uint8),
    }


def dense_to_features(
    scores: np.ndarray,
    keypoints: np.ndarray,
    descriptors: np.ndarray,
    *,
    image_size: tuple[int, int],
    config: PostprocessConfig = PostprocessConfig(),
    valid_size: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
    """One image's dense maps -> features dict (keypoints [N,2] f32, scores [N] f32 desc, descriptors [N,32] u8).

    scores (h, w) or (1, h, w); keypoints (2, h, w) pixels; descriptors (D, H/4, W/4).
    ``image_size`` is the (W, H) the network saw (padded); ``valid_size`` the unpadded (W, H): keypoints
    outside it (from padding) are dropped.
    """
    scores = np.asarray(scores, np.float32).reshape(np.asarray(scores).shape[-2:])
    keypoints = np.asarray(keypoints, np.float32)
    descriptors = np.asarray(descriptors, np.float32)
    if keypoints.shape != (2, *scores.shape):
        raise ValueError(f"keypoints map must be (2, {scores.shape[0]}, {scores.shape[1]}), got {keypoints.shape}")
    if descriptors.ndim != 3:
        raise ValueError(f"descriptor map must be (D, H/4, W/4), got {descriptors.shape}")
    nbytes = descriptors.shape[0] // 8
    if config.max_keypoints == 0:
        return empty_features(nbytes)
    keep = cell_nms(scores, config.nms_radius) & (scores >= config.score_threshold) & np.isfinite(scores)
    kp = keypoints.reshape(2, -1).T
    if valid_size is not None:
        inside = (kp[:, 0] <= valid_size[0] - 1) & (kp[:, 1] <= valid_size[1] - 1)
        keep &= inside.reshape(scores.shape)
    flat = np.flatnonzero(keep.reshape(-1))
    if flat.size == 0:
        return empty_features(nbytes)
    s = scores.reshape(-1)[flat]
    order = np.lexsort((flat, -s))  # descending score, ties by cell index (deterministic)
    if config.max_keypoints is not None:
        order = order[: config.max_keypoints]
    flat, s = flat[order], s[order]
    kp = np.ascontiguousarray(kp[flat], dtype=np.float32)
    raw = sample_descriptors(descriptors, kp, image_size)
    bits = topk_binarize(raw, config.descriptor_ones)
    return {"keypoints": kp, "scores": s.astype(np.float32), "descriptors": pack_bits(bits)}
