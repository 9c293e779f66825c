"""`zippypoint vo`: monocular visual odometry over a folder of frames with one or more methods."""

from __future__ import annotations

import argparse

DEFAULT_METHOD = "onnx-int8:zippypoint"


def register(sub) -> None:
    p = sub.add_parser("vo", help="visual odometry on a frame folder; trajectory, plot, timing, report",
                       description="Frame-to-frame monocular visual odometry (essential matrix + RANSAC). Writes, "
                                   "per method, OUT/<method>/trajectory_kitti.txt, trajectory_tum.txt and "
                                   "frames.json; OUT/vo.json, OUT/vo.md and OUT/trajectory.png for all methods.")
    p.add_argument("frames", help="folder of frames (sorted by name) in driving order")
    p.add_argument("--intrinsics", required=True, help="text file with the 3x3 K (9 numbers) or fx fy cx cy")
    p.add_argument("--method", action="append", default=None,
                   help=f"method of zippypoint.methods (repeat to compare; default {DEFAULT_METHOD}, "
                        "or openvino:zippypoint where that runtime is installed)")
    p.add_argument("--gt", default=None, help="ground-truth camera-to-world poses (KITTI format) for ATE / RPE; "
                                              "also gives each step its true length (monocular VO has no scale)")
    p.add_argument("--out", default="vo-out", help="output folder")
    p.add_argument("--max-keypoints", type=int, default=1000, help="keypoints per frame")
    p.add_argument("--max-frames", type=int, default=None, help="use only the first N frames")
    p.add_argument("--threshold", type=float, default=1.0, help="epipolar RANSAC threshold in pixels")
    p.add_argument("--solver", choices=("opencv", "poselib"), default="opencv",
                   help="essential-matrix solver (opencv: findEssentialMat + recoverPose; see docs/vo_kitti.md)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of our networks")
    p.add_argument("--rounds", type=int, default=1,
                   help="run every method's loop N times in alternating method order (ABC CBA ...) and report "
                        "the median loop fps and stage times, so that load changes on a shared machine hit all "
                        "methods alike; accuracy and files come from the first round")
    p.set_defaults(func=run)


def default_method() -> str:
    """The fastest deployed runtime of ours that is installed here."""
    from zippypoint.methods import MethodUnavailable, create_method

    try:
        create_method("openvino:zippypoint", 1).load()
        return "openvino:zippypoint"
    except (MethodUnavailable, ValueError):
        return DEFAULT_METHOD


def run(args: argparse.Namespace) -> int:
    import os
    import sys
    from pathlib import Path

    import numpy as np

    from zippypoint.eval.report import environment, write_json
    from zippypoint.io import list_images
    from zippypoint.methods import MethodUnavailable, create_method
    from zippypoint.sfm.geometry import read_intrinsics
    from zippypoint.sfm.trajectory import read_kitti_poses, write_kitti_poses, write_tum_trajectory
    from zippypoint.sfm.vo import VOConfig, plot_trajectories, run_vo, vo_metrics
    from zippypoint.sfm.vo_report import vo_markdown

    try:
        K = read_intrinsics(args.intrinsics)
        frames = list_images(args.frames, recursive=False)
        if args.max_frames:
            frames = frames[:args.max_frames]
        if len(frames) < 2:
            raise ValueError(f"{args.frames}: visual odometry needs at least 2 frames, found {len(frames)}")
        gt = None
        if args.gt:
            gt = read_kitti_poses(args.gt)
            if len(gt) < len(frames):
                raise ValueError(f"{args.gt} has {len(gt)} poses for {len(frames)} frames")
            gt = gt[:len(frames)]
        config = VOConfig(threshold_px=args.threshold, solver=args.solver)
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = args.method or [default_method()]
    if args.rounds < 1:
        print(f"error: --rounds must be >= 1, got {args.rounds}", file=sys.stderr)
        return 2
    methods, skipped = {}, {}
    for name in names:
        try:
            method = create_method(name, args.max_keypoints, threads=args.threads)
            method.load()
        except (MethodUnavailable, ValueError) as exc:
            print(f"skipped {name}: {exc}", file=sys.stderr)
            skipped[name] = str(exc)
            continue
        methods[name] = method
    load_before = os.getloadavg()
    results, metrics, timings = {}, {}, {name: [] for name in methods}
    for round_index in range(args.rounds):
        order = list(methods) if round_index % 2 == 0 else list(reversed(methods))
        for name in order:
            result = run_vo(frames, K, methods[name], config=config, gt_poses=gt)
            timings[name].append(vo_metrics(result))
            if round_index == 0:
                results[name] = result
    for name, result in results.items():
        folder = out / name.replace(":", "-").replace("/", "-").replace("=", "-")
        folder.mkdir(exist_ok=True)
        write_kitti_poses(folder / "trajectory_kitti.txt", result.poses)
        write_tum_trajectory(folder / "trajectory_tum.txt", result.poses)
        write_json({"method": name, "frames": result.frame_stats}, folder / "frames.json")
        metrics[name] = vo_metrics(result, gt)
        for key in ("fps", "read_median_ms", "extract_median_ms", "match_median_ms", "pose_median_ms",
                    "total_median_ms"):
            values = [t[key] for t in timings[name] if key in t]
            if values:
                metrics[name][key] = float(np.median(values))
        metrics[name]["fps_rounds"] = [t["fps"] for t in timings[name]]
        line = f"{name}: {metrics[name]['fps']:.1f} fps, {result.failed} failed frame(s)"
        if gt is not None:
            line += f", ATE {metrics[name]['ate_rmse']:.3f} m, RPE {metrics[name]['rpe_trans_rmse']:.3f} m / " \
                    f"{metrics[name]['rpe_rot_mean_deg']:.3f} deg"
        print(line)
    report = {"frames_dir": str(args.frames), "frames": len(frames), "intrinsics": K.tolist(),
              "ground_truth": args.gt, "config": vars(config), "max_keypoints": args.max_keypoints,
              "rounds": args.rounds, "load_average": {"before": load_before, "after": os.getloadavg()},
              "methods": metrics, "skipped": skipped, "environment": environment()}
    write_json(report, out / "vo.json")
    (out / "vo.md").write_text(vo_markdown(report))
    if results:
        plot_trajectories(list(results.values()), gt, out / "trajectory.png")
    print(f"wrote {out / 'vo.json'}, {out / 'vo.md'}" + (f", {out / 'trajectory.png'}" if results else ""))
    return 0 if results else 1
