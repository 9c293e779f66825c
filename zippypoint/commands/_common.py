"""Options shared by the commands that build an extractor (extract, match, demo)."""

from __future__ import annotations

import argparse

RUNTIMES = ("torch", "onnx", "onnx-int8")


def add_extractor_args(p: argparse.ArgumentParser, max_keypoints: int = 1000) -> None:
    p.add_argument("--model", default="zippypoint",
                   help="preset name (see `zippypoint info`) or, with --runtime onnx/onnx-int8, an exported .onnx file")
    p.add_argument("--weights", default=None, help="safetensors weights to load instead of the shipped ones")
    p.add_argument("--runtime", choices=RUNTIMES, default="torch",
                   help="torch (PyTorch), onnx or onnx-int8 (ONNX Runtime; no torch needed for an .onnx file)")
    p.add_argument("--max-keypoints", type=int, default=max_keypoints, help="keep the N best keypoints (0 = none)")
    p.add_argument("--score-threshold", type=float, default=1e-4, help="minimum keypoint score")
    p.add_argument("--nms-radius", type=int, default=0, help="NMS radius in 8x8 cells (0 = off, the default; 1 = 3x3)")
    p.add_argument("--resize", default=None, metavar="WxH", help="resize images to WxH before the network")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the network")


def make_extractor(args: argparse.Namespace):
    """Build the extractor the options describe (PyTorch or ONNX Runtime)."""
    from zippypoint.extractor import ExtractorConfig

    config = ExtractorConfig(max_keypoints=args.max_keypoints, score_threshold=args.score_threshold,
                             nms_radius=args.nms_radius, resize=args.resize)
    if args.runtime == "torch":
        import torch

        from zippypoint.extractor import Extractor
        from zippypoint.model.registry import create_model, load_weights

        if args.threads:
            torch.set_num_threads(args.threads)
        if args.weights:
            model = create_model(args.model)
            load_weights(model, args.weights)
            return Extractor(model, config=config)
        return Extractor(args.model, pretrained=True, config=config)
    from zippypoint.runtime.onnx_extractor import OnnxExtractor

    path = args.model
    if not str(path).endswith(".onnx"):
        from zippypoint.runtime.model_cache import exported_model_path

        path = exported_model_path(args.model, "onnx-int8" if args.runtime == "onnx-int8" else "onnx",
                                   weights=args.weights)
    return OnnxExtractor(path, config=config, intra_op_num_threads=args.threads).load()
