"""Relative pose evaluation on ``pairs_with_gt.txt`` files (the ScanNet / YFCC layout of SuperGlue).

One pair a line: ``name0 name1 rot0 rot1 K0(9) K1(9) T_0to1(16)``, all row-major; ``rot`` is the number of
90-degree counter-clockwise turns (``np.rot90``) applied to the image before detection (EXIF-style);
keypoints are mapped back to the stored image, so K and T_0to1 always refer to the stored images.
A pair's error is the larger of the rotation error and the translation-direction error (degrees); a pair
without an estimate has an infinite error. Pose AUC at 5/10/20 degrees integrates the recall curve of the
errors up to each threshold, as in the SuperGlue protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zippypoint.sfm.geometry import check_intrinsics, relative_pose, relative_pose_error

AUC_THRESHOLDS = (5.0, 10.0, 20.0)


@dataclass(frozen=True)
class PosePair:
    name0: str  # image path relative to the images folder
    name1: str
    rot0: int  # 90-degree CCW turns before detection
    rot1: int
    K0: np.ndarray  # 3x3
    K1: np.ndarray  # 3x3
    T_0to1: np.ndarray  # 4x4, x1 = R x0 + t

    def line(self) -> str:
        nums = [*self.K0.reshape(-1), *self.K1.reshape(-1), *self.T_0to1.reshape(-1)]
        return " ".join([self.name0, self.name1, str(self.rot0), str(self.rot1), *(f"{v:.10g}" for v in nums)])


def read_pairs_with_gt(path: str | Path) -> list[PosePair]:
    """Parse a pairs_with_gt file; a malformed line raises ValueError naming the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pairs file not found: {path}")
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != 38:
            raise ValueError(f"{path}:{number}: expected 38 fields (name0 name1 rot0 rot1 K0(9) K1(9) "
                             f"T_0to1(16)), got {len(fields)}")
        try:
            rot0, rot1 = int(fields[2]), int(fields[3])
            nums = np.array(fields[4:], dtype=np.float64)
        except ValueError:
            raise ValueError(f"{path}:{number}: rotations must be integers and K, T numbers") from None
        K0 = check_intrinsics(nums[:9].reshape(3, 3), f"{path}:{number} K0")
        K1 = check_intrinsics(nums[9:18].reshape(3, 3), f"{path}:{number} K1")
        pairs.append(PosePair(fields[0], fields[1], rot0 % 4, rot1 % 4, K0, K1, nums[18:].reshape(4, 4)))
    return pairs


def write_pairs_with_gt(path: str | Path, pairs: list[PosePair]) -> None:
    Path(path).write_text("".join(p.line() + "\n" for p in pairs))


def make_sequence_pairs(names: list[str], K, poses, baseline: int, stride: int = 1) -> list[PosePair]:
    """Pairs (i, i + baseline) for i = 0, stride, ... of a sequence with camera-to-world ``poses`` [N,4,4]."""
    if baseline < 1 or stride < 1:
        raise ValueError(f"baseline and stride must be >= 1, got {baseline} and {stride}")
    poses = np.asarray(poses, dtype=np.float64)
    if len(poses) != len(names):
        raise ValueError(f"{len(names)} frames but {len(poses)} poses")
    K = check_intrinsics(K)
    return [PosePair(names[i], names[i + baseline], 0, 0, K, K, np.linalg.inv(poses[i + baseline]) @ poses[i])
            for i in range(0, len(names) - baseline, stride)]


def pose_auc(errors, thresholds=AUC_THRESHOLDS) -> dict[str, float]:
    """Area under the recall-vs-error curve up to each threshold, divided by the threshold (0..1)."""
    errors = np.sort(np.asarray(errors, dtype=np.float64).reshape(-1))
    out = {}
    if errors.size == 0:
        return {f"auc@{t:g}": float("nan") for t in thresholds}
    recall = np.arange(1, len(errors) + 1) / len(errors)
    errors = np.concatenate([[0.0], errors])
    recall = np.concatenate([[0.0], recall])
    for t in thresholds:
        last = np.searchsorted(errors, t)
        e = np.concatenate([errors[:last], [t]])
        r = np.concatenate([recall[:last], [recall[last - 1]]])
        out[f"auc@{t:g}"] = float(np.trapezoid(r, x=e) / t)
    return out


def unrotate_keypoints(keypoints: np.ndarray, turns: int, original_size: tuple[int, int]) -> np.ndarray:
    """Keypoints detected in ``np.rot90(image, turns)`` -> coordinates in ``image`` of size (W, H)."""
    w, h = original_size
    pts = np.asarray(keypoints, dtype=np.float32).reshape(-1, 2).copy()
    for k in range(turns % 4, 0, -1):
        # np.rot90 once maps stored (x, y) to (y, W' - 1 - x) where W' is the width before that turn
        width_before = w if k % 2 == 1 else h
        pts = np.stack([width_before - 1 - pts[:, 1], pts[:, 0]], axis=1)
    return pts


def evaluate_pairs(pairs: list[PosePair], images: str | Path, method, *, threshold_px: float = 1.0,
                   solver: str = "opencv", cache: dict | None = None, progress: bool = True) -> dict:
    """Estimate the relative pose of every pair with ``method`` (loaded); returns per-pair errors and AUCs.

    ``cache`` (name, rot) -> features is reused across calls (several pair files over the same images)."""
    from zippypoint.io import read_image

    images = Path(images)
    cache = {} if cache is None else cache

    def features(name: str, rot: int) -> dict:
        key = (name, rot)
        if key not in cache:
            image = read_image(images / name)
            if image.ndim == 2:
                image = np.repeat(image[:, :, None], 3, axis=2)
            feats = dict(method(np.ascontiguousarray(np.rot90(image, rot))))
            feats["keypoints"] = unrotate_keypoints(feats["keypoints"], rot, (image.shape[1], image.shape[0]))
            cache[key] = feats
        return cache[key]

    iterator = pairs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(pairs, desc=f"pose {method.name}", unit="pair", leave=False)
    rows = []
    for pair in iterator:
        f0, f1 = features(pair.name0, pair.rot0), features(pair.name1, pair.rot1)
        matches = method.match(f0, f1)
        estimate = relative_pose(f0["keypoints"][matches[:, 0]], f1["keypoints"][matches[:, 1]], pair.K0, pair.K1,
                                 threshold_px=threshold_px, solver=solver)
        if estimate is None:
            err_R = err_t = float("inf")
            inliers = 0
        else:
            err_R, err_t = relative_pose_error(pair.T_0to1, estimate[0], estimate[1])
            inliers = int(estimate[2].sum())
        rows.append({"name0": pair.name0, "name1": pair.name1, "matches": int(len(matches)), "inliers": inliers,
                     "error_R_deg": err_R, "error_t_deg": err_t, "error_deg": max(err_R, err_t)})
    errors = [r["error_deg"] for r in rows]
    summary = {"pairs": len(rows), "failed": sum(1 for e in errors if not np.isfinite(e)),
               "mean_matches": float(np.mean([r["matches"] for r in rows])) if rows else 0.0,
               "mean_inliers": float(np.mean([r["inliers"] for r in rows])) if rows else 0.0,
               **pose_auc(errors)}
    return {"summary": summary, "pairs": rows}
