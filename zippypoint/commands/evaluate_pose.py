"""`zippypoint evaluate-pose` (relative pose AUC on pairs_with_gt files) and `zippypoint make-pose-pairs`."""

from __future__ import annotations

import argparse

from zippypoint.model.registry import DEFAULT_PRESET


def register(sub) -> None:
    p = sub.add_parser("evaluate-pose", help="relative pose AUC@5/10/20 on pairs_with_gt.txt files",
                       description="Pairs in the pairs_with_gt.txt layout (name0 name1 rot0 rot1 K0(9) K1(9) "
                                   "T_0to1(16)); error = max(rotation, translation-direction) in degrees; "
                                   "writes OUT/pose.json and OUT/pose.md.")
    p.add_argument("pairs", nargs="+", help="one or more pair files (one table column group each)")
    p.add_argument("--images", required=True, help="folder the image names are relative to")
    p.add_argument("--method", action="append", default=None,
                   help="method of zippypoint.methods (repeat; default: onnx-int8:zippypoint orb sift xfeat "
                        "aliked-n16)")
    p.add_argument("--out", default="pose-out", help="output folder")
    p.add_argument("--max-keypoints", type=int, default=1000, help="keypoints per image")
    p.add_argument("--threshold", type=float, default=1.0, help="epipolar RANSAC threshold in pixels")
    p.add_argument("--solver", choices=("opencv", "poselib"), default="opencv", help="essential-matrix solver")
    p.set_defaults(func=run)

    m = sub.add_parser("make-pose-pairs", help="pairs_with_gt files from a posed frame sequence (e.g. KITTI)",
                       description="Writes OUT/pairs_b<B>.txt for every baseline B: frames (i, i + B) with the "
                                   "relative pose from camera-to-world poses (KITTI format).")
    m.add_argument("frames", help="folder of frames (sorted by name)")
    m.add_argument("--intrinsics", required=True, help="3x3 K (9 numbers) or fx fy cx cy")
    m.add_argument("--poses", required=True, help="camera-to-world poses, KITTI format, one line per frame")
    m.add_argument("--baselines", default="1,3,5,10", help="comma-separated frame distances")
    m.add_argument("--stride", type=int, default=2, help="step between first frames of consecutive pairs")
    m.add_argument("--out", required=True, help="output folder")
    m.set_defaults(func=make_pairs)


DEFAULT_METHODS = (f"onnx-int8:{DEFAULT_PRESET}", "orb", "sift", "xfeat", "aliked-n16")


def make_pairs(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from zippypoint.io import list_images
    from zippypoint.sfm.geometry import read_intrinsics
    from zippypoint.sfm.pose_eval import make_sequence_pairs, write_pairs_with_gt
    from zippypoint.sfm.trajectory import read_kitti_poses

    try:
        K = read_intrinsics(args.intrinsics)
        poses = read_kitti_poses(args.poses)
        frames = list_images(args.frames, recursive=False)
        if len(poses) != len(frames):
            raise ValueError(f"{len(frames)} frames in {args.frames} but {len(poses)} poses in {args.poses}")
        baselines = [int(b) for b in args.baselines.split(",") if b.strip()]
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for b in baselines:
            pairs = make_sequence_pairs([f.name for f in frames], K, poses, b, args.stride)
            write_pairs_with_gt(out / f"pairs_b{b}.txt", pairs)
            print(f"wrote {len(pairs)} pairs to {out / f'pairs_b{b}.txt'}")
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from zippypoint.eval.report import environment, write_json
    from zippypoint.methods import MethodUnavailable, create_method
    from zippypoint.sfm.pose_eval import evaluate_pairs, read_pairs_with_gt
    from zippypoint.sfm.pose_report import pose_markdown

    try:
        pair_sets = {Path(p).stem: read_pairs_with_gt(p) for p in args.pairs}
        if not Path(args.images).is_dir():
            raise FileNotFoundError(f"images folder not found: {args.images}")
        missing = sorted({n for pairs in pair_sets.values() for p in pairs for n in (p.name0, p.name1)
                          if not (Path(args.images) / n).is_file()})
        if missing:
            raise FileNotFoundError(f"{len(missing)} image(s) of the pairs are not in {args.images}, e.g. {missing[0]}")
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, skipped, details = {}, {}, {}
    for name in args.method or DEFAULT_METHODS:
        try:
            method = create_method(name, args.max_keypoints)
            method.load()
        except (MethodUnavailable, ValueError) as exc:
            print(f"skipped {name}: {exc}", file=sys.stderr)
            skipped[name] = str(exc)
            continue
        cache: dict = {}
        results[name], details[name] = {}, {}
        for set_name, pairs in pair_sets.items():
            res = evaluate_pairs(pairs, args.images, method, threshold_px=args.threshold, solver=args.solver,
                                 cache=cache)
            results[name][set_name] = res["summary"]
            details[name][set_name] = res["pairs"]
            s = res["summary"]
            print(f"{name} {set_name}: AUC@5/10/20 {s['auc@5']:.3f} / {s['auc@10']:.3f} / {s['auc@20']:.3f} "
                  f"({s['failed']} of {s['pairs']} failed)")
    report = {"pairs": {k: len(v) for k, v in pair_sets.items()}, "images": str(args.images),
              "threshold_px": args.threshold, "solver": args.solver, "max_keypoints": args.max_keypoints,
              "methods": results, "skipped": skipped, "environment": environment()}
    write_json(report, out / "pose.json")
    write_json(details, out / "pose_pairs.json")
    (out / "pose.md").write_text(pose_markdown(report))
    print(f"wrote {out / 'pose.json'}, {out / 'pose.md'}")
    return 0 if results else 1
