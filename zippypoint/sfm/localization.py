"""Localising query images in a map of ``build_map`` and scoring the poses against ground truth.

The map has its own frame and scale; to compare with ground-truth camera-to-world poses, the camera centres
of the registered map images are aligned to their ground-truth centres by Sim(3), and the same
similarity moves the query poses (rotation from the camera orientations, see
``align_map_to_ground_truth``). Errors: camera-centre distance (ground-truth units) and rotation angle. A monocular map drifts in scale along
a drive, so the errors are also given after a local alignment (the map images nearest to each query).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zippypoint.sfm.colmap_map import camera_to_world, load_map, localize_image
from zippypoint.sfm.geometry import rotation_angle_deg

RECALL_THRESHOLDS = ((0.25, 2.0), (0.5, 5.0), (5.0, 10.0))  # (metres, degrees), the Aachen Day-Night bins


def localize_queries(queries: list, map_dir: str | Path, method, *, max_error_px: float = 4.0,
                     min_inliers: int = 20, progress: bool = True) -> tuple[list[dict], dict]:
    """Localise every query image path; returns (one dict per query, the map summary)."""
    from zippypoint.io import read_image

    rec, points, summary = load_map(map_dir)
    if summary["descriptor_kind"] != method.descriptor_kind:
        raise ValueError(f"the map holds {summary['descriptor_kind']} descriptors of {summary['method']!r}; "
                         f"{method.name!r} gives {method.descriptor_kind} ones")
    camera = next(iter(rec.cameras.values()))
    iterator = [Path(q) for q in queries]
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc=f"localize {method.name}", unit="img", leave=False)
    rows = []
    for path in iterator:
        image = read_image(path)
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        row = localize_image(image, method, points, camera, max_error_px=max_error_px, min_inliers=min_inliers)
        row["name"] = path.name
        rows.append(row)
    return rows, summary


def map_camera_poses(map_dir: str | Path) -> dict[str, np.ndarray]:
    """Camera-to-world poses (map frame) of the registered map images, by image name."""
    rec, _, _ = load_map(map_dir)
    return {rec.image(i).name: camera_to_world(rec.image(i).cam_from_world()) for i in rec.reg_image_ids()}


def align_map_to_ground_truth(map_poses: dict[str, np.ndarray], gt_poses: dict[str, np.ndarray]):
    """Sim(3) (s, R, t) taking the map frame onto the ground-truth frame, from the registered images that have
    ground truth. The rotation comes from the camera orientations (the chordal mean of R_gt R_map^T), since a
    driving sequence's camera centres lie close to a line and leave the roll about it undetermined; scale and
    translation then come from the centres."""
    common = sorted(set(map_poses) & set(gt_poses))
    if len(common) < 3:
        raise ValueError(f"aligning the map to ground truth needs 3 registered images with poses, got {len(common)}")
    src = np.array([map_poses[n][:3, 3] for n in common])
    dst = np.array([gt_poses[n][:3, 3] for n in common])
    acc = sum(gt_poses[n][:3, :3] @ map_poses[n][:3, :3].T for n in common)
    U, _, Vt = np.linalg.svd(acc)
    R = U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))]) @ Vt
    xs, xd = src - src.mean(0), dst - dst.mean(0)
    denom = (xs ** 2).sum()
    if denom == 0:
        raise ValueError("aligning the map to ground truth: the registered camera centres all coincide")
    s = float(((xs @ R.T) * xd).sum() / denom)
    t = dst.mean(0) - s * R @ src.mean(0)
    return s, R, t


def apply_sim3(sim3, pose: np.ndarray) -> np.ndarray:
    s, R, t = sim3
    out = np.eye(4)
    out[:3, :3] = R @ pose[:3, :3]
    out[:3, 3] = s * R @ pose[:3, 3] + t
    return out


def localization_errors(rows: list[dict], map_poses: dict[str, np.ndarray], gt_poses: dict[str, np.ndarray], *,
                        local: int = 0) -> dict:
    """Adds ``error_m`` / ``error_deg`` to each row with ground truth; returns the summary (medians, recall).

    ``local=0``: one Sim(3) from all registered map images (map drift counts as error). ``local=k``: per
    query, a Sim(3) from the k registered map images nearest to the query's true position, which measures
    the pose against the map around the query rather than the map's global shape."""
    global_sim3 = align_map_to_ground_truth(map_poses, gt_poses)
    common = sorted(set(map_poses) & set(gt_poses))
    centres = np.array([gt_poses[n][:3, 3] for n in common])
    errors = []
    for row in rows:
        gt = gt_poses.get(row["name"])
        if gt is None:
            continue
        if row["success"]:
            sim3 = global_sim3
            if local:
                nearest = np.argsort(np.linalg.norm(centres - gt[:3, 3], axis=1))[:max(local, 3)]
                subset = [common[i] for i in nearest]
                sim3 = align_map_to_ground_truth({n: map_poses[n] for n in subset}, gt_poses)
            pose = apply_sim3(sim3, np.asarray(row["camera_to_world"]))
            row["error_m"] = float(np.linalg.norm(pose[:3, 3] - gt[:3, 3]))
            row["error_deg"] = rotation_angle_deg(gt[:3, :3].T @ pose[:3, :3])
        else:
            row["error_m"] = row["error_deg"] = float("inf")
        errors.append((row["error_m"], row["error_deg"]))
    err = np.array(errors, dtype=np.float64).reshape(-1, 2)
    out = {"alignment": f"local ({local} nearest map images)" if local else "global",
           "alignment_scale": float(global_sim3[0]), "queries": len(rows), "with_ground_truth": len(err),
           "localized": int(sum(r["success"] for r in rows)),
           "median_error_m": float(np.median(err[:, 0])) if len(err) else float("nan"),
           "median_error_deg": float(np.median(err[:, 1])) if len(err) else float("nan")}
    for m, d in RECALL_THRESHOLDS:
        out[f"recall@{m:g}m,{d:g}deg"] = float(((err[:, 0] <= m) & (err[:, 1] <= d)).mean()) if len(err) else 0.0
    return out


def map_drift(map_poses: dict[str, np.ndarray], gt_poses: dict[str, np.ndarray]) -> dict:
    """How far the map's own camera centres are from the ground truth after the global Sim(3)."""
    sim3 = align_map_to_ground_truth(map_poses, gt_poses)
    common = sorted(set(map_poses) & set(gt_poses))
    err = np.array([np.linalg.norm(apply_sim3(sim3, map_poses[n])[:3, 3] - gt_poses[n][:3, 3]) for n in common])
    return {"map_images": len(common), "map_centre_rmse_m": float(np.sqrt((err ** 2).mean())),
            "map_centre_max_m": float(err.max())}
