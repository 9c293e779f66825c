"""`zippypoint reconstruct`: a COLMAP map (pycolmap) from the features and matches of a method."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("reconstruct", help="COLMAP incremental mapping on our features and matches",
                       description="Writes MAP/features.h5 and matches.h5 (hloc layout), MAP/database.db, "
                                   "MAP/sparse/<model>/ (COLMAP), MAP/map_points.npz (one descriptor per 3D "
                                   "point) and MAP/map.json.")
    p.add_argument("images", help="image folder (names relative to it)")
    p.add_argument("--out", required=True, help="map folder")
    p.add_argument("--method", default="onnx-int8:zippypoint", help="method of zippypoint.methods")
    p.add_argument("--pairs", default="sequential",
                   help="exhaustive, sequential or a file of 'name0 name1' lines (default sequential)")
    p.add_argument("--overlap", type=int, default=10, help="sequential pairs: match each image with the next N")
    p.add_argument("--intrinsics", default=None,
                   help="3x3 K (or fx fy cx cy) of one PINHOLE camera, kept fixed; default: COLMAP estimates it")
    p.add_argument("--first", type=int, default=None, help="map only the first N images (sorted by name)")
    p.add_argument("--image-list", default=None, help="map only the images named in this file (one a line)")
    p.add_argument("--max-keypoints", type=int, default=1000, help="keypoints per image")
    p.set_defaults(func=run)


def quiet_colmap() -> None:
    """COLMAP logs every mapper step to stderr; keep warnings and errors only."""
    try:
        import pycolmap

        pycolmap.logging.minloglevel = 1
    except (ImportError, AttributeError):
        pass


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from zippypoint.io import list_images
    from zippypoint.methods import MethodUnavailable, create_method
    from zippypoint.sfm.colmap_map import MapConfig, build_map
    from zippypoint.sfm.geometry import read_intrinsics

    try:
        K = read_intrinsics(args.intrinsics) if args.intrinsics else None
        names = [p.relative_to(args.images).as_posix() for p in list_images(args.images)]
        if args.image_list:
            wanted = [line.strip() for line in Path(args.image_list).read_text().splitlines() if line.strip()]
            unknown = sorted(set(wanted) - set(names))
            if unknown:
                raise ValueError(f"{args.image_list}: {len(unknown)} name(s) not in {args.images}, e.g. {unknown[0]}")
            names = [n for n in names if n in set(wanted)]
        if args.first:
            names = names[:args.first]
        if len(names) < 2:
            raise ValueError(f"{args.images}: mapping needs at least 2 images, found {len(names)}")
        config = MapConfig(pairs=args.pairs, overlap=args.overlap)
        method = create_method(args.method, args.max_keypoints)
        method.load()
    except (FileNotFoundError, ValueError, MethodUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    quiet_colmap()
    try:
        summary = build_map(args.images, args.out, method, K=K, config=config, image_names=names)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=1))
    print(f"registered {summary['registered']} of {summary['images']} images, {summary['points3D']} points; "
          f"map descriptors {summary['map_descriptor_bytes']} bytes ({summary['bytes_per_point']} B a point) "
          f"in {Path(args.out) / 'map_points.npz'}")
    return 0
