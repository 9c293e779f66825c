"""Monocular visual odometry: frame-to-frame tracking with any method of ``zippypoint.methods``.

Each frame is detected and described once; its features are matched with the previous frame's by the
method's own matcher (mutual nearest neighbours: Hamming for binary descriptors, L2 for float ones), and an
essential matrix with RANSAC gives the relative rotation and the direction of the translation. Monocular
VO has no metric scale: without ground truth every step has unit length; with ground truth, each step is
given the length of the true step (for evaluation only, the usual protocol for monocular frame-to-frame
VO), so that the errors measure the estimated rotations and translation directions. A frame whose pose
cannot be estimated (too few matches or inliers) repeats the previous motion and is counted as failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zippypoint.sfm.geometry import SOLVERS, check_intrinsics, relative_pose, to_homogeneous


@dataclass(frozen=True)
class VOConfig:
    threshold_px: float = 1.0  # epipolar RANSAC threshold in pixels
    confidence: float = 0.9999  # RANSAC success probability
    solver: str = "opencv"  # "opencv" (findEssentialMat + recoverPose) or "poselib" (LO-RANSAC + refinement)
    min_inliers: int = 12  # fewer essential-matrix inliers than this = tracking failure for the frame

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if not self.threshold_px > 0:
            raise ValueError(f"threshold_px must be > 0, got {self.threshold_px}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.min_inliers < 5:
            raise ValueError(f"min_inliers must be >= 5 (five-point solver), got {self.min_inliers}")


@dataclass
class VOResult:
    method: str
    frames: list[str]
    poses: np.ndarray  # [N, 4, 4] camera-to-world, frame 0 = identity
    frame_stats: list[dict] = field(default_factory=list)  # per frame: keypoints, matches, inliers, times (ms)
    total_s: float = 0.0  # wall time of the whole loop (read, extract, match, pose)

    @property
    def failed(self) -> int:
        return sum(1 for s in self.frame_stats if s.get("failed"))

    @property
    def fps(self) -> float:
        return len(self.frames) / self.total_s if self.total_s > 0 else float("nan")


def check_frames(frames: list) -> list[Path]:
    frames = [Path(f) for f in frames]
    if len(frames) < 2:
        raise ValueError(f"visual odometry needs at least 2 frames, got {len(frames)}")
    return frames


def run_vo(frames: list, K, method, *, config: VOConfig = VOConfig(), gt_poses=None,
           progress: bool = True) -> VOResult:
    """Track a camera through ``frames`` (image paths in order) with a loaded ``method``.

    ``K``: 3x3 intrinsics shared by all frames; ``gt_poses``: [N,4,4] camera-to-world ground truth, used
    only to give each step its true length. Returns a :class:`VOResult`.
    """
    from zippypoint.io import read_image

    frames = check_frames(frames)
    K = check_intrinsics(K)
    if gt_poses is not None:
        gt_poses = np.asarray(gt_poses, dtype=np.float64)
        if gt_poses.shape != (len(frames), 4, 4):
            raise ValueError(f"ground truth has {gt_poses.shape[0]} poses for {len(frames)} frames")
    poses = np.tile(np.eye(4), (len(frames), 1, 1))
    stats: list[dict] = []
    previous = None
    last_motion = np.eye(4)  # T_prev_to_cur of the last good frame
    iterator = frames
    if progress:
        from tqdm import tqdm

        iterator = tqdm(frames, desc=f"vo {method.name}", unit="frame", leave=False)
    t_loop = time.perf_counter()
    for i, path in enumerate(iterator):
        t0 = time.perf_counter()
        image = read_image(path)
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        t1 = time.perf_counter()
        feats = method(image)
        t2 = time.perf_counter()
        row = {"frame": path.name, "keypoints": int(len(feats["scores"]))}
        if previous is None:
            row.update(read_ms=(t1 - t0) * 1e3, extract_ms=(t2 - t1) * 1e3, match_ms=0.0, pose_ms=0.0)
            row["total_ms"] = (t2 - t0) * 1e3
            stats.append(row)
            previous = feats
            continue
        matches = method.match(previous, feats)
        t3 = time.perf_counter()
        estimate = relative_pose(previous["keypoints"][matches[:, 0]], feats["keypoints"][matches[:, 1]], K, K,
                                 threshold_px=config.threshold_px, confidence=config.confidence,
                                 solver=config.solver, min_matches=config.min_inliers)
        t4 = time.perf_counter()
        inliers = 0 if estimate is None else int(estimate[2].sum())
        failed = estimate is None or inliers < config.min_inliers
        if failed:
            motion = last_motion.copy()
        else:
            R, t, _ = estimate
            motion = to_homogeneous(R, t)
        if gt_poses is not None:
            true_step = np.linalg.norm((np.linalg.inv(gt_poses[i]) @ gt_poses[i - 1])[:3, 3])
            norm = np.linalg.norm(motion[:3, 3])
            motion[:3, 3] = motion[:3, 3] / norm * true_step if norm > 0 else 0.0
        poses[i] = poses[i - 1] @ np.linalg.inv(motion)
        if not failed:
            last_motion = motion
        row.update(matches=int(len(matches)), inliers=inliers, failed=bool(failed),
                   read_ms=(t1 - t0) * 1e3, extract_ms=(t2 - t1) * 1e3, match_ms=(t3 - t2) * 1e3,
                   pose_ms=(t4 - t3) * 1e3, total_ms=(t4 - t0) * 1e3)
        stats.append(row)
        previous = feats
    total = time.perf_counter() - t_loop
    return VOResult(method=method.name, frames=[p.name for p in frames], poses=poses, frame_stats=stats,
                    total_s=total)


def vo_metrics(result: VOResult, gt_poses=None) -> dict:
    """Counts, timing (median per stage, end-to-end fps of the loop) and, with ground truth, ATE and RPE."""
    stats = result.frame_stats
    tracked = stats[1:]
    out = {
        "method": result.method,
        "frames": len(result.frames),
        "failed_frames": result.failed,
        "mean_keypoints": float(np.mean([s["keypoints"] for s in stats])),
        "mean_matches": float(np.mean([s["matches"] for s in tracked])) if tracked else 0.0,
        "mean_inliers": float(np.mean([s["inliers"] for s in tracked])) if tracked else 0.0,
        "loop_seconds": result.total_s,
        "fps": result.fps,
    }
    for stage in ("read", "extract", "match", "pose", "total"):
        rows = tracked if stage in ("match", "pose") else stats
        if rows:
            out[f"{stage}_median_ms"] = float(np.median([s[f"{stage}_ms"] for s in rows]))
    if gt_poses is not None:
        from zippypoint.sfm.trajectory import absolute_trajectory_error, relative_pose_errors

        out.update(absolute_trajectory_error(result.poses, gt_poses))
        out.update(relative_pose_errors(result.poses, gt_poses))
    return out


def plot_trajectories(results: list[VOResult], gt_poses, path: str | Path) -> None:
    """Top view (x right, z forward; axes not to the same scale, so that lateral drift shows) of each
    estimate, Sim(3)-aligned to the ground truth where given; with ground truth, a second panel shows
    each frame's position error."""
    from zippypoint.sfm.trajectory import align_sim3
    from zippypoint.viz import agg_figure

    figure = agg_figure(10.0, 4.6, dpi=110) if gt_poses is not None else agg_figure(5.6, 4.6, dpi=110)
    ax = figure.add_subplot(1, 2 if gt_poses is not None else 1, 1)
    if gt_poses is not None:
        gt = np.asarray(gt_poses)
        ax.plot(gt[:, 0, 3], gt[:, 2, 3], color="black", lw=2.5, label="ground truth")
        err_ax = figure.add_subplot(1, 2, 2)
    for result in results:
        poses = result.poses if gt_poses is None else align_sim3(result.poses, gt_poses)[0]
        line, = ax.plot(poses[:, 0, 3], poses[:, 2, 3], lw=1.2, label=result.method)
        if gt_poses is not None:
            err = np.linalg.norm(poses[:, :3, 3] - gt[:, :3, 3], axis=1)
            err_ax.plot(err, lw=1.2, color=line.get_color(), label=result.method)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("z (m, forward)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("top view" + (", Sim(3)-aligned" if gt_poses is not None else ""), fontsize=10)
    if gt_poses is not None:
        err_ax.set_xlabel("frame")
        err_ax.set_ylabel("position error after alignment (m)")
        err_ax.grid(alpha=0.3)
        err_ax.set_title("absolute trajectory error per frame", fontsize=10)
    figure.tight_layout()
    figure.savefig(str(path))
