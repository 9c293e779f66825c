"""Dense network maps -> sparse keypoints and packed binary descriptors (numpy only).

Shared by every runtime (PyTorch, ONNX Runtime, OpenVINO) so all give identical output. Nothing runs per
keypoint in Python: the top-k is a partition plus a sort of the survivors only, the descriptor map is read
once per kept keypoint (one gather of its four bilinear neighbours, blended in one weighted sum), binarisation is
a partition per row (a cumulative count only for rows tied at the k-th place).
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
    dedupe_radius: float = 0.0  # drop keypoints closer than this many pixels to a higher-scoring one; 0 = off

    def __post_init__(self) -> None:
        if self.max_keypoints is not None and self.max_keypoints < 0:
            raise ValueError(f"max_keypoints must be >= 0 or None, got {self.max_keypoints}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if self.nms_radius < 0:
            raise ValueError(f"nms_radius must be >= 0, got {self.nms_radius}")
        if not (np.isfinite(self.dedupe_radius) and self.dedupe_radius >= 0):
            raise ValueError(f"dedupe_radius must be a finite number >= 0, got {self.dedupe_radius}")


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


def sample_descriptors(desc_map: np.ndarray, keypoints: np.ndarray, image_size: tuple[int, int], *,
                       channels_last: bool = False) -> np.ndarray:
    """Bilinear sampling of a (D, h4, w4) map at keypoints (N,2) -> (N, D) float32, align-corners convention.

    ``u = x / (W - 1) * (w4 - 1)`` with (W, H) the padded network input size. The four neighbours of every
    keypoint are fetched in one gather over the flattened map (fancy indexing on two axes costs twice as much).
    ``channels_last``: the map is (h4, w4, D) (a runtime that can write it so saves the strided gather: each
    neighbour is then one contiguous row); the result is the same, bit for bit.
    """
    if not channels_last and desc_map.strides[0] == desc_map.itemsize and desc_map.strides[2] > desc_map.strides[0]:
        # a (D, h, w) view of channels-last memory (as the OpenVINO extractor returns it): read it as such
        desc_map, channels_last = desc_map.transpose(1, 2, 0), True
    if channels_last:
        h4, w4, d = desc_map.shape
    else:
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
    fu = (u - u0).astype(np.float32)
    fv = (v - v0).astype(np.float32)
    # in range by construction, so the gathers below skip numpy's bounds check (mode="clip": about 10 % faster)
    corners = np.concatenate([v0 * w4 + u0, v0 * w4 + u1, v1 * w4 + u0, v1 * w4 + u1])
    # the four bilinear weights per keypoint, (4, N) in the order of ``corners``
    weights = np.stack([(1 - fu) * (1 - fv), fu * (1 - fv), (1 - fu) * fv, fu * fv])
    if channels_last:  # (4N, D): each neighbour one contiguous row; one weighted sum over the four per keypoint
        g = desc_map.reshape(h4 * w4, d).take(corners, axis=0, mode="clip").reshape(4, n, d)
        g = g.transpose(1, 0, 2).astype(np.float32)  # (N, 4, D); integer codes become float here only
        return np.matmul(weights.T[:, None, :], g)[:, 0]
    # (D, 4N), weighted in that layout (contiguous rows) and transposed once at the end
    g = desc_map.reshape(d, h4 * w4).take(corners, axis=1, mode="clip").reshape(d, 4, n)
    return np.ascontiguousarray(np.einsum("kn,dkn->nd", weights, g.astype(np.float32, copy=False)), dtype=np.float32)


def dominated_cells(scores: np.ndarray, keypoints: np.ndarray, candidates: np.ndarray, radius: float) -> np.ndarray:
    """Cells whose keypoint lies closer than ``radius`` px to the keypoint of a higher-ranked candidate cell.

    scores (h, w); keypoints (2, h, w) pixels; candidates (h, w) bool. Rank: higher score first, ties by lower
    cell index (the output order). A cell's keypoint lies within [8c - 3.5, 8c + 10.5], so only cells up to
    ``ceil((radius + 14) / 8)`` apart can be that close: the test runs over those grid shifts, vectorised.
    Returns an (h, w) bool mask.
    """
    h, w = scores.shape
    out = np.zeros((h, w), bool)
    if radius <= 0:
        return out
    reach = int(np.ceil((radius + 14.0) / 8.0))
    r2 = np.float32(radius) * np.float32(radius)
    for dy in range(-min(reach, h - 1), min(reach, h - 1) + 1):
        for dx in range(-min(reach, w - 1), min(reach, w - 1) + 1):
            if dy == 0 and dx == 0:
                continue
            # cell (y, x) against its neighbour (y + dy, x + dx), over the part of the grid where both exist
            ys, yn = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h + min(0, dy))
            xs, xn = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w + min(0, dx))
            s_self, s_nb = scores[ys, xs], scores[yn, xn]
            earlier = (dy, dx) < (0, 0)  # the neighbour has the lower cell index
            higher = (s_nb > s_self) | ((s_nb == s_self) & earlier)
            ddx = keypoints[0, yn, xn] - keypoints[0, ys, xs]
            ddy = keypoints[1, yn, xn] - keypoints[1, ys, xs]
            out[ys, xs] |= candidates[yn, xn] & higher & (ddx * ddx + ddy * ddy < r2)
    return out


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
    channels_last: bool = False,
) -> dict[str, np.ndarray]:
    """One image's dense maps -> features dict (keypoints [N,2] f32, scores [N] f32 desc, descriptors [N,32] u8).

    scores (h, w) or (1, h, w); keypoints (2, h, w) pixels; descriptors (D, H/4, W/4).
    ``image_size`` is the (W, H) the network saw (padded); ``valid_size`` the unpadded (W, H): keypoints
    outside it (from padding) are dropped. ``channels_last``: descriptors are (H/4, W/4, D) instead.
    The descriptor map may also be integer codes of which the network's map is an increasing affine function
    (an int8 output's u8 codes): the bits are the same, since bilinear weights sum to 1.
    """
    scores = np.asarray(scores, np.float32).reshape(np.asarray(scores).shape[-2:])
    keypoints = np.asarray(keypoints, np.float32)
    descriptors = np.asarray(descriptors)
    if not np.issubdtype(descriptors.dtype, np.integer):  # integer codes stay as they are (sampled as float)
        descriptors = np.asarray(descriptors, np.float32)
    if keypoints.shape != (2, *scores.shape):
        raise ValueError(f"keypoints map must be (2, {scores.shape[0]}, {scores.shape[1]}), got {keypoints.shape}")
    if descriptors.ndim != 3:
        layout = "(H/4, W/4, D)" if channels_last else "(D, H/4, W/4)"
        raise ValueError(f"descriptor map must be {layout}, got {descriptors.shape}")
    nbytes = descriptors.shape[-1 if channels_last else 0] // 8
    if config.max_keypoints == 0:
        return empty_features(nbytes)
    keep = cell_nms(scores, config.nms_radius) & (scores >= config.score_threshold) & np.isfinite(scores)
    kp = keypoints.reshape(2, -1).T
    if valid_size is not None:
        inside = (kp[:, 0] <= valid_size[0] - 1) & (kp[:, 1] <= valid_size[1] - 1)
        keep &= inside.reshape(scores.shape)
    if config.dedupe_radius > 0:
        keep &= ~dominated_cells(scores, keypoints, keep, config.dedupe_radius)
    flat = np.flatnonzero(keep.reshape(-1))
    if flat.size == 0:
        return empty_features(nbytes)
    s = scores.reshape(-1)[flat]
    k = config.max_keypoints
    if k is not None and k < flat.size:
        # only the cells scoring at least the k-th best are sorted (ties at the k-th score all stay candidates)
        kth = np.partition(s, flat.size - k)[flat.size - k]
        top = s >= kth
        flat, s = flat[top], s[top]
    order = np.lexsort((flat, -s))[:k]  # descending score, ties by cell index (deterministic)
    flat, s = flat[order], s[order]
    kp = np.ascontiguousarray(kp[flat], dtype=np.float32)
    raw = sample_descriptors(descriptors, kp, image_size, channels_last=channels_last)
    bits = topk_binarize(raw, config.descriptor_ones)
    return {"keypoints": kp, "scores": s.astype(np.float32), "descriptors": pack_bits(bits)}
