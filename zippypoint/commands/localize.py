"""`zippypoint localize`: absolute poses of query images in a map of `zippypoint reconstruct`."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("localize", help="2D-3D matching against a map and absolute pose RANSAC",
                       description="Writes OUT/localize.json (per query: pose, matches, inliers; with --gt the "
                                   "errors after Sim(3) alignment of the map to the ground truth) and "
                                   "OUT/localize.md.")
    p.add_argument("queries", nargs="+", help="query images or folders")
    p.add_argument("--map", required=True, help="map folder written by `zippypoint reconstruct`")
    p.add_argument("--method", default=None, help="method (default: the one the map was built with)")
    p.add_argument("--gt", default=None,
                   help="camera-to-world poses (KITTI format) of the image folder, one line per image in name "
                        "order; the map's images must be in the same folder")
    p.add_argument("--gt-images", default=None,
                   help="folder whose sorted image names the --gt lines follow (default: the queries' folder)")
    p.add_argument("--local", type=int, default=10,
                   help="with --gt: also align the map locally, on the N map images nearest to each query")
    p.add_argument("--max-error", type=float, default=4.0,
                   help="absolute pose RANSAC threshold in pixels (4 for small frames such as KITTI's 416x128; "
                        "hloc uses 12 for ~1024-pixel images)")
    p.add_argument("--min-inliers", type=int, default=20, help="report no pose below this many inliers")
    p.add_argument("--max-keypoints", type=int, default=None, help="keypoints per query (default 1000)")
    p.add_argument("--out", default=None, help="output folder (default: MAP/localize)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from zippypoint.commands.reconstruct import quiet_colmap
    from zippypoint.eval.report import environment, write_json
    from zippypoint.io import list_images
    from zippypoint.methods import MethodUnavailable, create_method
    from zippypoint.sfm.localization import localization_errors, localize_queries, map_camera_poses, map_drift
    from zippypoint.sfm.trajectory import read_kitti_poses

    try:
        map_dir = Path(args.map)
        if not (map_dir / "map.json").is_file():
            raise FileNotFoundError(f"{map_dir} is not a map folder (no map.json); build one with "
                                    "`zippypoint reconstruct`")
        map_info = json.loads((map_dir / "map.json").read_text())
        queries = [p for q in args.queries for p in list_images(q)]
        if not queries:
            raise ValueError("no query images")
        gt = None
        if args.gt:
            folder = Path(args.gt_images) if args.gt_images else queries[0].parent
            names = [p.name for p in list_images(folder, recursive=False)]
            poses = read_kitti_poses(args.gt)
            if len(poses) != len(names):
                raise ValueError(f"{args.gt} has {len(poses)} poses for {len(names)} images in {folder}")
            gt = dict(zip(names, poses, strict=True))
        method = create_method(args.method or map_info["method"], args.max_keypoints or 1000)
        method.load()
    except (FileNotFoundError, ValueError, MethodUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    quiet_colmap()
    rows, summary = localize_queries(queries, map_dir, method, max_error_px=args.max_error,
                                     min_inliers=args.min_inliers)
    report = {"map": str(map_dir), "map_summary": summary, "method": method.name, "max_error_px": args.max_error,
              "min_inliers": args.min_inliers,
              "queries": rows, "environment": environment()}
    if gt is not None:
        map_poses = map_camera_poses(map_dir)
        report["map_drift"] = map_drift(map_poses, gt)
        report["summary_local"] = localization_errors(rows, map_poses, gt, local=args.local)
        report["summary"] = localization_errors(rows, map_poses, gt)  # last: rows keep the global errors
        report["alignment_scale"] = report["summary"]["alignment_scale"]
    else:
        report["summary"] = {"queries": len(rows), "localized": int(sum(r["success"] for r in rows))}
    out = Path(args.out) if args.out else map_dir / "localize"
    out.mkdir(parents=True, exist_ok=True)
    write_json(report, out / "localize.json")
    (out / "localize.md").write_text(localize_markdown(report))
    s = report["summary"]
    line = f"localized {s['localized']} of {s['queries']} queries"
    if "median_error_m" in s:
        loc = report["summary_local"]
        line += (f"; median error {s['median_error_m']:.3f} m, {s['median_error_deg']:.3f} deg (global alignment), "
                 f"{loc['median_error_m']:.3f} m, {loc['median_error_deg']:.3f} deg (local)")
    print(line)
    print(f"wrote {out / 'localize.json'}, {out / 'localize.md'}")
    return 0 if s["localized"] else 1


def localize_markdown(report: dict) -> str:
    from zippypoint.eval.report import _fmt

    m, s = report["map_summary"], report["summary"]
    lines = [
        "# Localisation",
        "",
        f"Map `{report['map']}`: {m['registered']} of {m['images']} images registered, {m['points3D']} points, "
        f"{m['bytes_per_point']} B of descriptor a point ({m['map_descriptor_bytes']} B in all), "
        f"method `{m['method']}`. Queries: {s['queries']}, localised: {s['localized']} (absolute pose LO-RANSAC "
        f"{report['max_error_px']} px + refinement, pycolmap; at least {report['min_inliers']} inliers).",
        "",
    ]
    if "median_error_m" in s:
        d = report["map_drift"]
        lines += [f"Map drift: after one Sim(3) of the map onto the ground truth (scale {report['alignment_scale']:.3f}) "
                  f"the map's own {d['map_images']} camera centres are {_fmt(d['map_centre_rmse_m'])} m RMSE "
                  f"(max {_fmt(d['map_centre_max_m'])} m) from the truth.", ""]
        for summary in (s, report["summary_local"]):
            lines += [f"Alignment {summary['alignment']}: median error {_fmt(summary['median_error_m'])} m, "
                      f"{_fmt(summary['median_error_deg'])} deg; "
                      + ", ".join(f"recall {k.split('@')[1]}: {v:.3f}" for k, v in summary.items()
                                  if k.startswith("recall@")), ""]
    lines += ["Per query (errors after the global alignment):", "",
              "| query | matches | inliers | error (m) | error (deg) |", "|---|---|---|---|---|"]
    for r in report["queries"]:
        lines.append(f"| {r['name']} | {r['matches']} | {r['inliers']} | {_fmt(r.get('error_m'))} | "
                     f"{_fmt(r.get('error_deg'))} |")
    return "\n".join(lines) + "\n"
