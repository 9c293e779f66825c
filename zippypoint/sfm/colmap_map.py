"""Mapping and localisation with COLMAP (pycolmap) on the features and matches of any method.

``build_map``: features of every image (stored in ``MAP/features.h5``, hloc layout) and matches of the
chosen pairs (``MAP/matches.h5``) go into a COLMAP database (``MAP/database.db``: images imported by
pycolmap, keypoints and raw matches written by us), then COLMAP's geometric verification and incremental
mapping (``MAP/sparse/``). Every 3D point keeps one descriptor of its track, the medoid (the track
descriptor with the smallest summed distance to the others: Hamming for binary, L2 for float), in
``MAP/map_points.npz`` (point ids, xyz, descriptors): 32 bytes a point for ours.

``localize``: 2D-3D matches between a query's descriptors and the map points' (mutual nearest
neighbours, the method's own matcher), then absolute pose with LO-RANSAC and refinement
(``pycolmap.estimate_and_refine_absolute_pose``).

COLMAP puts the centre of the top-left pixel at (0.5, 0.5); our keypoints put it at (0, 0), so 0.5 is
added on the way in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PAIR_MODES = ("exhaustive", "sequential")


def _pycolmap():
    try:
        import pycolmap
    except ImportError as exc:
        raise ImportError("mapping needs pycolmap: pip install 'zippypoint[sfm]'") from exc
    return pycolmap


@dataclass(frozen=True)
class MapConfig:
    pairs: str = "sequential"  # "exhaustive", "sequential" or a file of "name0 name1" lines
    overlap: int = 10  # sequential: each image is matched with the next `overlap` images
    min_num_matches: int = 15  # image pairs with fewer verified matches are not used by the mapper
    refine_intrinsics: bool = False  # with given intrinsics, keep them fixed in bundle adjustment


def make_pairs(names: list[str], mode: str, overlap: int = 10) -> list[tuple[str, str]]:
    """Image pairs: ``exhaustive`` (all), ``sequential`` (each with its next ``overlap``) or a pairs file."""
    if mode == "exhaustive":
        return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    if mode == "sequential":
        if overlap < 1:
            raise ValueError(f"overlap must be >= 1, got {overlap}")
        return [(a, b) for i, a in enumerate(names) for b in names[i + 1:i + 1 + overlap]]
    path = Path(mode)
    if not path.is_file():
        raise ValueError(f"pairs must be one of {PAIR_MODES} or an existing pairs file, got {mode!r}")
    known = set(names)
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2 or fields[0] not in known or fields[1] not in known:
            raise ValueError(f"{path}:{number}: expected two image names of the image folder, got {line!r}")
        pairs.append((fields[0], fields[1]))
    return pairs


def medoid_descriptor(descriptors: np.ndarray, kind: str) -> np.ndarray:
    """The descriptor of a set [K, D] with the smallest summed distance to the others."""
    if len(descriptors) <= 2:
        return descriptors[0]
    if kind == "binary":
        from zippypoint.binary_desc.hamming import hamming_distance_matrix

        dist = np.asarray(hamming_distance_matrix(descriptors, descriptors), dtype=np.float64)
    else:
        from zippypoint.methods.matching import l2_distances

        dist = l2_distances(descriptors.astype(np.float32), descriptors.astype(np.float32))
    return descriptors[int(dist.sum(1).argmin())]


def build_map(images: str | Path, out: str | Path, method, *, K=None, config: MapConfig = MapConfig(),
              image_names: list[str] | None = None, progress: bool = True) -> dict:
    """Extract, match, verify and map; returns a summary dict (also written to ``out/map.json``).

    ``images``: image folder; ``image_names``: the subset to map (relative names; default all);
    ``K``: 3x3 intrinsics of a single PINHOLE camera shared by all images (None: COLMAP guesses a
    SIMPLE_RADIAL camera from the image size and refines it).
    """
    import time

    from zippypoint.io import list_images, read_image
    from zippypoint.store.hloc import write_features, write_matches

    pycolmap = _pycolmap()
    images, out = Path(images), Path(out)
    if not images.is_dir():
        raise FileNotFoundError(f"image folder not found: {images}")
    names = image_names or [p.relative_to(images).as_posix() for p in list_images(images)]
    if len(names) < 2:
        raise ValueError(f"mapping needs at least 2 images, got {len(names)}")
    pairs = make_pairs(names, config.pairs, config.overlap)
    if not pairs:
        raise ValueError("no image pairs to match")
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("database.db", "features.h5", "matches.h5"):
        (out / stale).unlink(missing_ok=True)
    bar = _progress(progress)
    t0 = time.perf_counter()
    features = {}
    for name in bar(names, desc=f"map: extract {method.name}", unit="img"):
        image = read_image(images / name)
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        features[name] = method(image)
        write_features(out / "features.h5", name, features[name], (image.shape[1], image.shape[0]))
    t1 = time.perf_counter()
    matches = {}
    for a, b in bar(pairs, desc="map: match", unit="pair"):
        matches[a, b] = method.match(features[a], features[b])
        write_matches(out / "matches.h5", a, b, matches[a, b], num_keypoints0=len(features[a]["scores"]))
    t2 = time.perf_counter()

    database = out / "database.db"
    reader = pycolmap.ImageReaderOptions()
    if K is not None:
        reader.camera_model = "PINHOLE"
        reader.camera_params = ",".join(f"{v:.10g}" for v in (K[0, 0], K[1, 1], K[0, 2], K[1, 2]))
    pycolmap.Database.open(database).close()  # creates the empty database
    pycolmap.import_images(database, images, pycolmap.CameraMode.SINGLE, names, reader)
    with pycolmap.Database.open(database) as db:
        ids = {image.name: image.image_id for image in db.read_all_images()}
        for name in names:
            db.write_keypoints(ids[name], features[name]["keypoints"].astype(np.float32) + 0.5)
        for (a, b), m in matches.items():
            if len(m):
                db.write_matches(ids[a], ids[b], m.astype(np.uint32))
    pycolmap.geometric_verification(database)
    t3 = time.perf_counter()

    options = pycolmap.IncrementalPipelineOptions()
    options.min_num_matches = config.min_num_matches
    if K is not None and not config.refine_intrinsics:
        options.ba_refine_focal_length = False
        options.ba_refine_principal_point = False
        options.ba_refine_extra_params = False
    sparse = out / "sparse"
    sparse.mkdir(exist_ok=True)
    models = pycolmap.incremental_mapping(database, images, sparse, options)
    t4 = time.perf_counter()
    if not models:
        raise RuntimeError(f"COLMAP registered no model from {len(names)} images ({method.name}): too few "
                           "verified matches")
    best_id = max(models, key=lambda k: models[k].num_reg_images())
    rec = models[best_id]
    model_dir = sparse / str(best_id)
    points = map_points(rec, features, method.descriptor_kind)
    np.savez(out / "map_points.npz", **points)
    summary = {
        "method": method.name, "descriptor_kind": method.descriptor_kind, "images": len(names),
        "pairs": len(pairs), "pair_mode": config.pairs, "registered": int(rec.num_reg_images()),
        "points3D": int(rec.num_points3D()), "mean_track_length": float(rec.compute_mean_track_length()),
        "mean_reprojection_error_px": float(rec.compute_mean_reprojection_error()),
        "models": len(models), "model_dir": str(model_dir), "intrinsics_given": K is not None,
        "map_descriptor_bytes": int(points["descriptors"].nbytes),
        "bytes_per_point": int(points["descriptors"].nbytes // max(len(points["descriptors"]), 1)),
        "seconds": {"extract": t1 - t0, "match": t2 - t1, "verify": t3 - t2, "mapping": t4 - t3},
    }
    (out / "map.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _progress(enabled: bool):
    if not enabled:
        return lambda items, **_: items
    from tqdm import tqdm

    return lambda items, **kw: tqdm(items, leave=False, **kw)


def map_points(rec, features: dict, kind: str) -> dict:
    """Per 3D point of a pycolmap Reconstruction: id, xyz and the medoid descriptor of its track."""
    names = {image_id: rec.image(image_id).name for image_id in rec.reg_image_ids()}
    ids, xyz, desc = [], [], []
    for point_id, point in rec.points3D.items():
        track = [features[names[el.image_id]]["descriptors"][el.point2D_idx] for el in point.track.elements
                 if el.image_id in names]
        if not track:
            continue
        ids.append(point_id)
        xyz.append(point.xyz)
        desc.append(medoid_descriptor(np.stack(track), kind))
    width = next(iter(features.values()))["descriptors"].shape[1] if features else 0
    dtype = np.uint8 if kind == "binary" else np.float32
    return {"point3D_ids": np.asarray(ids, np.int64), "xyz": np.asarray(xyz, np.float64).reshape(-1, 3),
            "descriptors": np.asarray(desc, dtype).reshape(-1, width)}


def load_map(map_dir: str | Path) -> tuple[object, dict, dict]:
    """(pycolmap Reconstruction, map points dict, map summary) of a ``build_map`` folder."""
    pycolmap = _pycolmap()
    map_dir = Path(map_dir)
    summary_path = map_dir / "map.json"
    if not summary_path.is_file():
        raise FileNotFoundError(f"{map_dir} is not a map folder (no map.json); build one with `zippypoint reconstruct`")
    summary = json.loads(summary_path.read_text())
    rec = pycolmap.Reconstruction(summary["model_dir"])
    with np.load(map_dir / "map_points.npz") as data:
        points = {k: data[k] for k in data.files}
    return rec, points, summary


def camera_to_world(cam_from_world) -> np.ndarray:
    """4x4 camera-to-world of a pycolmap Rigid3d cam_from_world."""
    T = np.eye(4)
    T[:3, :4] = np.asarray(cam_from_world.matrix())
    return np.linalg.inv(T)


def localize_image(image_bgr: np.ndarray, method, points: dict, camera, *, max_error_px: float = 4.0,
                   min_inliers: int = 20) -> dict:
    """Absolute pose of one query image against map points; returns a dict with ``success``,
    ``camera_to_world`` (4x4, map frame), ``matches``, ``inliers``. A pose with fewer than ``min_inliers``
    RANSAC inliers is not reported (``success`` False, ``reason`` says why)."""
    pycolmap = _pycolmap()
    feats = method(image_bgr)
    query = {"keypoints": feats["keypoints"], "scores": feats["scores"], "descriptors": feats["descriptors"]}
    mapped = {"keypoints": np.zeros((len(points["xyz"]), 2), np.float32),
              "scores": np.zeros(len(points["xyz"]), np.float32), "descriptors": points["descriptors"]}
    matches = method.match(query, mapped) if len(points["xyz"]) and len(feats["scores"]) else np.zeros((0, 2), int)
    out = {"keypoints": int(len(feats["scores"])), "matches": int(len(matches)), "inliers": 0, "success": False,
           "camera_to_world": None}
    if len(matches) < 4:
        out["reason"] = f"only {len(matches)} 2D-3D matches"
        return out
    options = pycolmap.AbsolutePoseEstimationOptions()
    options.ransac.max_error = max_error_px
    result = pycolmap.estimate_and_refine_absolute_pose(
        feats["keypoints"][matches[:, 0]].astype(np.float64) + 0.5, points["xyz"][matches[:, 1]], camera, options)
    if result is None:
        out["reason"] = "absolute pose RANSAC found no model"
        return out
    out["inliers"] = int(result["num_inliers"])
    if out["inliers"] < min_inliers:
        out["reason"] = f"only {out['inliers']} inliers (< {min_inliers})"
        return out
    out.update(success=True, camera_to_world=camera_to_world(result["cam_from_world"]))
    return out
