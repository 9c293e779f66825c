"""Options shared by the commands that build an extractor (extract, match, demo)."""

from __future__ import annotations

import argparse


def add_extractor_args(p: argparse.ArgumentParser, max_keypoints: int = 1000) -> None:
    from zippypoint.resolve import available_runtimes

    runtimes = available_runtimes()
    p.add_argument("--model", default="zippypoint",
                   help="preset name (see `zippypoint info`) or, with --runtime onnx/onnx-int8, an exported .onnx file")
    p.add_argument("--weights", default=None, help="safetensors weights to load instead of the shipped ones")
    p.add_argument("--runtime", choices=runtimes, default="torch",
                   help="torch (PyTorch), onnx or onnx-int8 (ONNX Runtime; no torch needed for an .onnx file)"
                   + (", openvino" if "openvino" in runtimes else ""))
    p.add_argument("--max-keypoints", type=int, default=max_keypoints, help="keep the N best keypoints (0 = none)")
    p.add_argument("--score-threshold", type=float, default=1e-4, help="minimum keypoint score")
    p.add_argument("--nms-radius", type=int, default=0, help="NMS radius in 8x8 cells (0 = off, the default; 1 = 3x3)")
    p.add_argument("--resize", default=None, metavar="WxH", help="resize images to WxH before the network")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the network")


def make_extractor(args: argparse.Namespace):
    """Build the extractor the options describe (``zippypoint.resolve.build_extractor``)."""
    from zippypoint.extractor import ExtractorConfig
    from zippypoint.resolve import build_extractor

    config = ExtractorConfig(max_keypoints=args.max_keypoints, score_threshold=args.score_threshold,
                             nms_radius=args.nms_radius, resize=args.resize)
    return build_extractor(args.model, args.runtime, args.weights, config, args.threads)
