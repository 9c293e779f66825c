"""Trajectories: KITTI / TUM files, absolute trajectory error and relative pose error.

A trajectory is a float64 array [N, 4, 4] of camera-to-world poses. KITTI format: one line per pose, the
12 numbers of the row-major 3x4 [R | t]. TUM format: ``timestamp tx ty tz qx qy qz qw`` per line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zippypoint.sfm.geometry import rotation_angle_deg, umeyama


def check_trajectory(poses, what: str = "poses") -> np.ndarray:
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise ValueError(f"{what}: expected shape [N, 4, 4], got {poses.shape}")
    if not np.isfinite(poses).all():
        raise ValueError(f"{what}: contains NaN or Inf")
    return poses


def read_kitti_poses(path: str | Path) -> np.ndarray:
    """KITTI poses file (12 numbers a line) -> [N, 4, 4]."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"poses file not found: {path}")
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if any(len(r) != 12 for r in rows):
        bad = next(i for i, r in enumerate(rows) if len(r) != 12)
        raise ValueError(f"{path}: line {bad + 1} has {len(rows[bad])} numbers, expected 12 (row-major 3x4 [R|t])")
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    if rows:
        poses[:, :3, :] = np.array(rows, dtype=np.float64).reshape(-1, 3, 4)
    return poses


def write_kitti_poses(path: str | Path, poses) -> None:
    poses = check_trajectory(poses)
    lines = [" ".join(f"{v:.9g}" for v in p[:3, :].reshape(-1)) for p in poses]
    Path(path).write_text("".join(line + "\n" for line in lines))


def rotation_to_quaternion(R: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion (x, y, z, w) with w >= 0."""
    R = np.asarray(R, dtype=np.float64)
    K = np.array([
        [R[0, 0] - R[1, 1] - R[2, 2], R[1, 0] + R[0, 1], R[2, 0] + R[0, 2], R[2, 1] - R[1, 2]],
        [R[1, 0] + R[0, 1], R[1, 1] - R[0, 0] - R[2, 2], R[2, 1] + R[1, 2], R[0, 2] - R[2, 0]],
        [R[2, 0] + R[0, 2], R[2, 1] + R[1, 2], R[2, 2] - R[0, 0] - R[1, 1], R[1, 0] - R[0, 1]],
        [R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1], R[0, 0] + R[1, 1] + R[2, 2]],
    ]) / 3.0
    w, v = np.linalg.eigh(K)
    q = v[:, np.argmax(w)]
    return q if q[3] >= 0 else -q


def quaternion_to_rotation(q) -> np.ndarray:
    """Quaternion (x, y, z, w) -> rotation matrix (normalised first)."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def write_tum_trajectory(path: str | Path, poses, timestamps=None) -> None:
    """TUM format; timestamps default to the frame index."""
    poses = check_trajectory(poses)
    stamps = np.arange(len(poses), dtype=np.float64) if timestamps is None else np.asarray(timestamps, np.float64)
    if len(stamps) != len(poses):
        raise ValueError(f"timestamps: expected {len(poses)}, got {len(stamps)}")
    lines = []
    for ts, p in zip(stamps, poses, strict=True):
        q = rotation_to_quaternion(p[:3, :3])
        lines.append(" ".join(f"{v:.9g}" for v in (ts, *p[:3, 3], *q)))
    Path(path).write_text("".join(line + "\n" for line in lines))


def read_tum_trajectory(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """TUM file -> (timestamps [N], poses [N, 4, 4]); lines starting with '#' are comments."""
    rows = [line.split() for line in Path(path).read_text().splitlines() if line.strip() and not line.startswith("#")]
    if any(len(r) != 8 for r in rows):
        raise ValueError(f"{path}: expected 8 numbers a line (timestamp tx ty tz qx qy qz qw)")
    data = np.array(rows, dtype=np.float64).reshape(-1, 8)
    poses = np.tile(np.eye(4), (len(data), 1, 1))
    for p, row in zip(poses, data, strict=True):
        p[:3, :3] = quaternion_to_rotation(row[4:])
        p[:3, 3] = row[1:4]
    return data[:, 0], poses


def align_sim3(estimate, reference) -> tuple[np.ndarray, float]:
    """Estimate positions aligned onto the reference by Umeyama Sim(3): (aligned poses [N,4,4], scale)."""
    est, ref = check_trajectory(estimate, "estimate"), check_trajectory(reference, "reference")
    if len(est) != len(ref):
        raise ValueError(f"estimate has {len(est)} poses, reference {len(ref)}")
    s, R, t = umeyama(est[:, :3, 3], ref[:, :3, 3])
    aligned = est.copy()
    aligned[:, :3, :3] = R @ est[:, :3, :3]
    aligned[:, :3, 3] = s * est[:, :3, 3] @ R.T + t
    return aligned, s


def absolute_trajectory_error(estimate, reference) -> dict:
    """ATE: position RMSE (and mean, max) after Sim(3) alignment of the estimate onto the reference."""
    aligned, scale = align_sim3(estimate, reference)
    err = np.linalg.norm(aligned[:, :3, 3] - np.asarray(reference)[:, :3, 3], axis=1)
    return {"ate_rmse": float(np.sqrt((err ** 2).mean())), "ate_mean": float(err.mean()),
            "ate_max": float(err.max()), "sim3_scale": float(scale)}


def relative_pose_errors(estimate, reference, delta: int = 1) -> dict:
    """RPE over frame pairs ``delta`` apart: translation RMSE (reference units; the estimate is Sim(3)-aligned
    first so that both share a scale) and mean / RMSE rotation error in degrees."""
    est, _ = align_sim3(estimate, reference)
    ref = check_trajectory(reference, "reference")
    if delta < 1 or len(ref) <= delta:
        raise ValueError(f"RPE needs more than delta={delta} poses, got {len(ref)}")
    t_err, r_err = [], []
    for i in range(len(ref) - delta):
        rel_ref = np.linalg.inv(ref[i]) @ ref[i + delta]
        rel_est = np.linalg.inv(est[i]) @ est[i + delta]
        E = np.linalg.inv(rel_ref) @ rel_est
        t_err.append(np.linalg.norm(E[:3, 3]))
        r_err.append(rotation_angle_deg(E[:3, :3]))
    t_err, r_err = np.array(t_err), np.array(r_err)
    return {"rpe_trans_rmse": float(np.sqrt((t_err ** 2).mean())), "rpe_rot_mean_deg": float(r_err.mean()),
            "rpe_rot_rmse_deg": float(np.sqrt((r_err ** 2).mean())), "rpe_delta": int(delta)}
