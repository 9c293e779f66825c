"""Random homographies (docs/design.md §4) and warping helpers.

Homographies live in normalised coordinates ([-1, 1], align-corners convention: pixel x maps to
``2 x / (W - 1) - 1``). ``H`` maps a *source* (warped image) point to the *target* (original) point:
the source image is ``source(p) = target(H p)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class HomographyConfig:
    patch_ratio: float = 0.7  # side of the sampled patch relative to the image
    perspective: float = 0.2  # std (and clip) of the perspective corner shifts
    scale_std: float = 0.1  # std of the scale factor around 1
    scale_range: tuple[float, float] = (0.9, 1.1)  # clip of the scale factor
    max_angle: float = math.pi / 4  # rotations drawn uniformly in [-max_angle, max_angle]
    translation: bool = True  # random translation within the remaining margins
    max_tries: int = 50  # resampling attempts for rotations that leave the image
    # "normalised": the KP2D sampler above, in [-1, 1] coordinates (a rotation there also stretches a
    # non-square image); "pixel": a rigid rotation and an isotropic scale in pixel space (below)
    space: str = "normalised"
    rotation_deg: float = 45.0  # pixel space: rotation drawn uniformly in [-rotation_deg, rotation_deg]
    scale_bounds: tuple[float, float] = (0.65, 1.5)  # pixel space: scale drawn log-uniformly in this range
    perspective_px: float = 0.0  # pixel space: std of a perspective corner jitter, fraction of the shorter side
    shift: float = 0.1  # pixel space: translation drawn uniformly within +- this fraction of each side

    def __post_init__(self) -> None:
        if self.space not in ("normalised", "pixel"):
            raise ValueError(f"homography space must be 'normalised' or 'pixel', got {self.space!r}")
        lo, hi = self.scale_bounds
        if not 0 < lo <= hi:
            raise ValueError(f"scale_bounds must satisfy 0 < low <= high, got {self.scale_bounds}")


def _perspective_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 homography mapping 4 points src -> dst (DLT, exact for 4 points)."""
    a = []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
    _, _, vt = np.linalg.svd(np.asarray(a, np.float64))
    h = vt[-1].reshape(3, 3)
    return h / h[2, 2]


def sample_homography(rng: np.random.Generator, cfg: HomographyConfig = HomographyConfig()) -> np.ndarray:
    """One random homography (3x3 float64, normalised coords) mapping source -> target."""
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)
    r = cfg.patch_ratio
    patch = corners * r
    # perspective: move the top and bottom edges' corners in opposite directions (KP2D style)
    if cfg.perspective > 0:
        p = cfg.perspective
        left = np.clip(rng.normal(0, p / 2), -p, p)
        right = np.clip(rng.normal(0, p / 2), -p, p)
        patch = patch + np.array([[0, left], [0, right], [0, -right], [0, -left]]) * r
    # scale about the centre
    lo, hi = cfg.scale_range
    s = float(np.clip(rng.normal(1.0, cfg.scale_std), lo, hi))
    patch = patch * s
    # rotation, resampled until the patch stays inside the image
    if cfg.max_angle > 0:
        for _ in range(cfg.max_tries):
            a = rng.uniform(-cfg.max_angle, cfg.max_angle)
            rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
            cand = patch @ rot.T
            if np.all(np.abs(cand) <= 1.0):
                patch = cand
                break
    if cfg.translation:
        lo_t = -1.0 - patch.min(axis=0)
        hi_t = 1.0 - patch.max(axis=0)
        t = np.array([rng.uniform(min(lo_t[i], hi_t[i]), max(lo_t[i], hi_t[i])) for i in range(2)])
        patch = patch + t
    return _perspective_transform(corners, patch)


def sample_pixel_homography(rng: np.random.Generator, size: tuple[int, int],
                            cfg: HomographyConfig = HomographyConfig(space="pixel")) -> np.ndarray:
    """A rigid rotation + isotropic scale (+ optional perspective jitter) about the image centre, in pixels.

    Returns a 3x3 float64 matrix mapping *source* pixels to *target* pixels of a (W, H) image. Without
    perspective jitter its linear part is ``s R``: no stretch, whatever the aspect ratio. Rotation and
    log-scale are uniform, so large turns are as frequent as small ones.
    """
    w, h = size
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    angle = math.radians(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg))
    lo, hi = cfg.scale_bounds
    scale = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    linear = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    shift = rng.uniform(-cfg.shift, cfg.shift, 2) * np.array([w, h])
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
    mapped = (corners - centre) @ linear.T + centre + shift
    if cfg.perspective_px > 0:
        mapped = mapped + rng.normal(0, cfg.perspective_px * min(w, h), (4, 2))
    return _perspective_transform(corners, mapped)


def sample_training_homography(rng: np.random.Generator, size: tuple[int, int], cfg: HomographyConfig) -> np.ndarray:
    """The configured sampler, as a normalised source->target homography for a (W, H) image."""
    if cfg.space == "normalised":
        return sample_homography(rng, cfg)
    w, h = size
    n = np.array([[(w - 1) / 2, 0, (w - 1) / 2], [0, (h - 1) / 2, (h - 1) / 2], [0, 0, 1]])
    return np.linalg.inv(n) @ sample_pixel_homography(rng, size, cfg) @ n


def pixel_to_norm(points: torch.Tensor, width: int, height: int) -> torch.Tensor:
    scale = points.new_tensor([2.0 / (width - 1), 2.0 / (height - 1)])
    return points * scale - 1.0


def norm_to_pixel(points: torch.Tensor, width: int, height: int) -> torch.Tensor:
    scale = points.new_tensor([(width - 1) / 2.0, (height - 1) / 2.0])
    return (points + 1.0) * scale


def apply_homography(h: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply (B,3,3) homographies to (B,N,2) points."""
    ones = torch.ones_like(points[..., :1])
    p = torch.cat([points, ones], dim=-1) @ h.transpose(1, 2)
    w = p[..., 2:]
    w = torch.where(w.abs() < 1e-8, torch.full_like(w, 1e-8), w)
    return p[..., :2] / w
