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


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    import cv2

    from zippypoint.io import read_image
    from zippypoint.matching import match_and_fit
    from zippypoint.model.weights import WeightsError
    from zippypoint.viz import draw_matches

    try:
        extractor = make_extractor(args)
        images = [read_image(p) for p in (args.image1, args.image2)]
        f1, f2 = (extractor.extract(im) for im in images)
    except (WeightsError, FileNotFoundError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
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
    cv2.imwrite(str(args.out), picture)
    print(f"wrote {args.out}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0
