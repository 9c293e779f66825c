"""`zippypoint match`: match two images, fit a RANSAC homography, draw the matches."""

from __future__ import annotations

import argparse

from zippypoint.commands._common import add_extractor_args, make_extractor


def register(sub) -> None:
    p = sub.add_parser("match", help="match two images and draw the matches")
    p.add_argument("image1")
    p.add_argument("image2")
    p.add_argument("--out", default="matches.png", help="picture to write (PNG/JPEG)")
    p.add_argument("--ratio", type=float, default=0.95, help="Lowe's ratio (1 = off)")
    p.add_argument("--json", default=None, help="also write counts and the homography as JSON")
    add_extractor_args(p)
    p.set_defaults(func=run)


def check_picture_path(path: str, option: str = "--out") -> None:
    """UsageError unless OpenCV can write a picture to ``path`` (checked before any work)."""
    import cv2

    from zippypoint.cli import UsageError

    if not cv2.haveImageWriter(str(path)):
        raise UsageError(f"{option} {path}: OpenCV cannot write this file type; use .png or .jpg")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import cv2

    from zippypoint.commands._common import extractor_config
    from zippypoint.io import read_image
    from zippypoint.matching import match_and_fit
    from zippypoint.viz import draw_matches

    check_picture_path(args.out)
    config = extractor_config(args)
    images = [read_image(p, max_pixels=config.max_pixels) for p in (args.image1, args.image2)]
    extractor = make_extractor(args, config)
    f1, f2 = (extractor.extract(im) for im in images)
    result = match_and_fit(f1, f2, ratio=None if args.ratio >= 1 else args.ratio)
    summary = {
        "keypoints": [len(f1["scores"]), len(f2["scores"])],
        "matches": len(result.matches),
        "inliers": result.num_inliers,
        "homography": None if result.homography is None else result.homography.tolist(),
    }
    print(f"keypoints: {summary['keypoints'][0]} / {summary['keypoints'][1]}  matches: {summary['matches']}  "
          f"inliers: {summary['inliers']}")
    if result.homography is not None:
        print("homography (image1 -> image2):\n" + "\n".join("  " + " ".join(f"{v: .5g}" for v in row)
                                                           for row in result.homography))
    picture = draw_matches(images[0], images[1], f1["keypoints"], f2["keypoints"], result.matches, result.inliers,
                           title=f"{summary['matches']} matches, {summary['inliers']} inliers")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), picture):
        raise OSError(f"could not write {args.out}")
    print(f"wrote {args.out}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0
