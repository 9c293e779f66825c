"""`zippypoint demo`: detect, describe and match two real images with the shipped weights."""

from __future__ import annotations

import argparse

from zippypoint.commands._common import add_extractor_args, make_extractor


def register(sub) -> None:
    p = sub.add_parser("demo", help="match a real photo against a warped, relit copy (or two images of yours)",
                       description="Without --images: a photo shipped with the package and a copy warped by a "
                                   "known homography and relit; prints matches, inliers and the homography error. "
                                   "Runs on the packaged int8 model by default (no torch needed).")
    p.add_argument("--images", nargs=2, metavar=("IMAGE1", "IMAGE2"), default=None, help="use your own two images")
    p.add_argument("--sample", default="astronaut",
                   help="photo: astronaut or coffee (shipped), chelsea or rocket (with scikit-image)")
    p.add_argument("--out", default="zippypoint_demo.png", help="picture to write")
    p.add_argument("--ratio", type=float, default=0.95, help="Lowe's ratio (1 = off)")
    add_extractor_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import cv2

    from zippypoint.cli import UsageError
    from zippypoint.commands._common import extractor_config
    from zippypoint.commands.match import check_picture_path
    from zippypoint.demo import check_sample, make_demo_pair
    from zippypoint.eval.protocol import corner_error
    from zippypoint.io import read_image
    from zippypoint.matching import match_and_fit
    from zippypoint.viz import draw_matches

    check_picture_path(args.out)
    if args.images is None:
        try:
            check_sample(args.sample)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    config = extractor_config(args)
    if args.images:
        img1, img2 = (read_image(p, max_pixels=config.max_pixels) for p in args.images)
        h_true, label = None, f"{args.images[0]} vs {args.images[1]}"
    else:
        img1, img2, h_true = make_demo_pair(args.sample)
        label = f"sample '{args.sample}' vs a warped, relit copy"
    extractor = make_extractor(args, config)
    t0 = time.perf_counter()
    f1 = extractor.extract(img1)  # the first image of a size also pays the runtime's set-up for that size
    t_first = time.perf_counter()
    f2 = extractor.extract(img2)
    t1 = time.perf_counter()
    result = match_and_fit(f1, f2, ratio=None if args.ratio >= 1 else args.ratio)
    t2 = time.perf_counter()
    print(f"zippypoint demo: {label}")
    print(f"  model {args.model} ({args.runtime}), images {img1.shape[1]}x{img1.shape[0]}")
    print(f"  keypoints: {len(f1['scores'])} / {len(f2['scores'])}  (extraction {1000 * (t1 - t_first):.0f} ms; "
          f"the first image {1000 * (t_first - t0):.0f} ms with the set-up)")
    print(f"  matches: {len(result.matches)}  RANSAC inliers: {result.num_inliers}  (matching+RANSAC "
          f"{1000 * (t2 - t1):.0f} ms)")
    title = f"{len(result.matches)} matches, {result.num_inliers} inliers"
    if h_true is not None:
        err = corner_error(h_true, result.homography, (img1.shape[1], img1.shape[0]))
        print(f"  homography corner error vs ground truth: {err:.2f} px")
        title += f", corner error {err:.2f} px"
    picture = draw_matches(img1, img2, f1["keypoints"], f2["keypoints"], result.matches, result.inliers, title=title)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), picture):
        raise OSError(f"could not write {args.out}")
    print(f"  picture: {args.out}")
    return 0
