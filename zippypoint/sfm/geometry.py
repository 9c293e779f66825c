"""Two-view and trajectory geometry: intrinsics, essential-matrix pose, pose errors, Umeyama alignment.

Conventions: a relative pose ``(R, t)`` maps points of camera 0 into camera 1, ``x1 = R @ x0 + t``
(``T_0to1``); camera poses of a trajectory are camera-to-world 4x4 matrices (KITTI's poses.txt).
Keypoints are pixels with the centre of the top-left pixel at (0, 0), as in the intrinsics of KITTI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SOLVERS = ("opencv", "poselib")


def read_intrinsics(path: str | Path) -> np.ndarray:
    """A 3x3 K from a text file of 9 numbers (row-major 3x3) or 4 numbers (fx fy cx cy)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"intrinsics file not found: {path}")
    try:
        values = np.array(path.read_text().replace(",", " ").split(), dtype=np.float64)
    except ValueError:
        raise ValueError(f"{path}: expected 9 numbers (3x3 K) or 4 numbers (fx fy cx cy)") from None
    if values.size == 4:
        fx, fy, cx, cy = values
        values = np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], dtype=np.float64)
    if values.size != 9:
        raise ValueError(f"{path}: expected 9 numbers (3x3 K) or 4 numbers (fx fy cx cy), got {values.size}")
    return check_intrinsics(values.reshape(3, 3), str(path))


def check_intrinsics(K, what: str = "K") -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all():
        raise ValueError(f"{what}: expected a finite 3x3 intrinsics matrix, got shape {K.shape}")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0, 0, 1]):
        raise ValueError(f"{what}: expected fx, fy > 0 and last row (0, 0, 1), got {K.tolist()}")
    return K


def normalize_points(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixels [N,2] -> normalised image coordinates [N,2] (K^-1 applied)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return (pts - K[[0, 1], [2, 2]]) / K[[0, 1], [0, 1]]


def relative_pose(points0, points1, K0, K1, *, threshold_px: float = 1.0, confidence: float = 0.9999,
                  solver: str = "opencv", min_matches: int = 8):
    """Essential-matrix RANSAC and pose recovery from matched pixels [M,2] of two calibrated cameras.

    Returns ``(R 3x3, t unit 3, inliers bool [M])`` with ``x1 = R x0 + t`` up to the scale of t, or None
    when there are fewer than ``min_matches`` matches or no model is found. ``threshold_px`` is the
    epipolar threshold in pixels (divided by the mean focal length for the normalised solvers).
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    p0 = np.asarray(points0, dtype=np.float64).reshape(-1, 2)
    p1 = np.asarray(points1, dtype=np.float64).reshape(-1, 2)
    if len(p0) != len(p1):
        raise ValueError(f"points0 and points1 must have the same length, got {len(p0)} and {len(p1)}")
    if len(p0) < max(min_matches, 5):
        return None
    K0, K1 = check_intrinsics(K0, "K0"), check_intrinsics(K1, "K1")
    if solver == "poselib":
        return _relative_pose_poselib(p0, p1, K0, K1, threshold_px, confidence)
    return _relative_pose_opencv(p0, p1, K0, K1, threshold_px, confidence)


def _relative_pose_opencv(p0, p1, K0, K1, threshold_px, confidence):
    import cv2

    n0, n1 = normalize_points(p0, K0), normalize_points(p1, K1)
    focal = np.mean([K0[0, 0], K0[1, 1], K1[0, 0], K1[1, 1]])
    E, mask = cv2.findEssentialMat(n0, n1, np.eye(3), method=cv2.RANSAC, prob=confidence,
                                   threshold=threshold_px / focal)
    if E is None or mask is None:
        return None
    best = None
    for k in range(0, E.shape[0] // 3):  # the five-point solver may return several candidates
        count, R, t, inl = cv2.recoverPose(E[3 * k:3 * k + 3], n0, n1, np.eye(3), 1e9, mask=mask.copy())
        if best is None or count > best[0]:
            best = (count, R, t.reshape(3), inl.reshape(-1) > 0)
    if best is None or best[0] < 5:
        return None
    return best[1], best[2] / np.linalg.norm(best[2]), best[3]


def _relative_pose_poselib(p0, p1, K0, K1, threshold_px, confidence):
    import poselib

    def camera(K):
        return {"model": "PINHOLE", "width": 0, "height": 0, "params": [K[0, 0], K[1, 1], K[0, 2], K[1, 2]]}

    pose, info = poselib.estimate_relative_pose(
        p0, p1, camera(K0), camera(K1),
        {"max_epipolar_error": threshold_px, "success_prob": confidence, "max_iterations": 10000}, {})
    inliers = np.asarray(info.get("inliers", []), dtype=bool)
    if inliers.sum() < 5:
        return None
    t = np.asarray(pose.t, dtype=np.float64)
    norm = np.linalg.norm(t)
    if norm == 0 or not np.isfinite(norm):
        return None
    return np.asarray(pose.R, dtype=np.float64), t / norm, inliers


def rotation_angle_deg(R: np.ndarray) -> float:
    """Angle of a rotation matrix in degrees."""
    cos = (np.trace(R) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def angle_between_deg(v0: np.ndarray, v1: np.ndarray) -> float:
    """Angle between two vectors in degrees (nan if either is zero)."""
    n = np.linalg.norm(v0) * np.linalg.norm(v1)
    if n == 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(np.dot(v0, v1) / n, -1.0, 1.0))))


def relative_pose_error(T_0to1: np.ndarray, R: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """(rotation error, translation-direction error) in degrees of an estimate against the true 4x4
    ``T_0to1``. The direction error ignores the sign of t (min(e, 180 - e)), as the SuperGlue protocol does,
    since an essential matrix cannot tell a forward from a backward baseline."""
    T = np.asarray(T_0to1, dtype=np.float64)
    err_R = rotation_angle_deg(T[:3, :3].T @ R)
    err_t = angle_between_deg(T[:3, 3], np.asarray(t, dtype=np.float64))
    return err_R, min(err_t, 180.0 - err_t) if np.isfinite(err_t) else float("nan")


def umeyama(src: np.ndarray, dst: np.ndarray, *, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (s, R, t) with ``dst ~ s R src + t`` for point sets [N,3] (Umeyama 1991).

    ``with_scale=False`` gives the rigid (SE(3)) alignment. Needs N >= 3 points not all on a line."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3:
        raise ValueError(f"expected two point sets of the same shape [N, 3], got {src.shape} and {dst.shape}")
    if len(src) < 3:
        raise ValueError(f"alignment needs at least 3 points, got {len(src)}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0
    R = U @ S @ Vt
    var_s = (xs ** 2).sum() / len(src)
    if with_scale:
        if var_s == 0:
            raise ValueError("alignment: the source points all coincide")
        s = float(np.trace(np.diag(D) @ S) / var_s)
    else:
        s = 1.0
    t = mu_d - s * R @ mu_s
    return s, R, t


def to_homogeneous(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(t).reshape(3)
    return T
