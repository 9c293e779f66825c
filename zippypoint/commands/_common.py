"""Options shared by the commands that build an extractor (extract, match, demo)."""

from __future__ import annotations

import argparse


def add_extractor_args(p: argparse.ArgumentParser, max_keypoints: int = 1000) -> None:
    from zippypoint.model.registry import DEFAULT_PRESET
    from zippypoint.resolve import available_runtimes

    runtimes = available_runtimes()
    p.add_argument("--model", default=DEFAULT_PRESET,
                   help="preset name (see `zippypoint info`) or, with --runtime onnx/onnx-int8, an exported .onnx file")
    p.add_argument("--weights", default=None, help="safetensors weights to load instead of the shipped ones")
    p.add_argument("--runtime", choices=runtimes, default=None,
                   help="torch (PyTorch), onnx or onnx-int8 (ONNX Runtime; no torch needed for an .onnx file)"
                   + (", openvino (binary blocks as 1-bit convolutions) or openvino-int8 (binary blocks as int8)"
                      if "openvino" in runtimes else "")
                   + ". Default: the fastest model shipped in the package for the preset's own weights "
                     "(openvino-int8 where OpenVINO is installed, else onnx-int8; no torch needed); torch for "
                     "other --weights")
    p.add_argument("--max-keypoints", type=int, default=max_keypoints, help="keep the N best keypoints (0 = none)")
    p.add_argument("--score-threshold", type=float, default=1e-4, help="minimum keypoint score")
    p.add_argument("--nms-radius", type=int, default=0, help="NMS radius in 8x8 cells (0 = off, the default; 1 = 3x3)")
    p.add_argument("--resize", default=None, metavar="WxH", help="resize images to WxH before the network")
    p.add_argument("--max-size", type=int, default=None, metavar="PX",
                   help="without --resize: images whose longest side exceeds PX are downscaled for the network, "
                        "keypoints mapped back to the original pixels (default 2048; 0 = never)")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="refuse images above N pixels, read from the file header before decoding (default 100000000)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the network")


def make_extractor(args: argparse.Namespace, config=None):
    """Build the extractor the options describe (``zippypoint.resolve.build_extractor``); ``config``: the
    result of :func:`extractor_config` when the command already checked the options."""
    from zippypoint.resolve import build_extractor

    config = config if config is not None else extractor_config(args)
    return build_extractor(args.model, args.runtime, args.weights, config, args.threads)


def extractor_config(args: argparse.Namespace):
    """Check the options before any work (``UsageError`` naming the fix) and return the ExtractorConfig; sets
    ``args.runtime`` when it was left to the default (``zippypoint.resolve.default_runtime``)."""
    import sys
    from pathlib import Path

    from zippypoint.cli import UsageError
    from zippypoint.extractor import ExtractorConfig
    from zippypoint.io import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIZE
    from zippypoint.model.registry import get_preset
    from zippypoint.resolve import default_runtime

    if args.runtime is None:
        args.runtime = default_runtime(args.model, args.weights)
    model_file = str(args.model).endswith((".onnx", ".xml")) or Path(args.model).is_file()
    if model_file and args.runtime == "torch":
        raise UsageError(f"--model {args.model} is an exported file; run it with --runtime onnx-int8 (or onnx, "
                         "openvino), or pass a preset name (see `zippypoint info`)")
    if model_file and not Path(args.model).is_file():
        raise UsageError(f"model file not found: {args.model}; pass an exported file or a preset name "
                         "(see `zippypoint info`)")
    if args.weights is not None and not Path(args.weights).is_file():
        raise UsageError(f"weights file not found: {args.weights}; pass a .safetensors file")
    try:
        if not model_file:
            get_preset(str(args.model))
        max_size = DEFAULT_MAX_SIZE if args.max_size is None else args.max_size
        if max_size < 0 or (args.max_pixels is not None and args.max_pixels <= 0):
            raise ValueError("--max-size must be >= 0 and --max-pixels > 0")
        config = ExtractorConfig(max_keypoints=args.max_keypoints, score_threshold=args.score_threshold,
                                 nms_radius=args.nms_radius, resize=args.resize, max_size=max_size,
                                 max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS)
    except ValueError as exc:
        raise UsageError(str(exc).replace("resize must", "--resize must")) from None
    if args.runtime in ("onnx", "onnx-int8") and not model_file:
        from zippypoint.runtime.model_cache import cached_model_path, packaged_model_path

        if packaged_model_path(str(args.model), args.runtime, weights=args.weights) is None and \
                not cached_model_path(str(args.model), args.runtime, weights=args.weights).is_file():
            print(f"exporting {args.model} as {args.runtime} once (about a minute; then cached in "
                  f"{cached_model_path(str(args.model), args.runtime, weights=args.weights).parent})",
                  file=sys.stderr)
    return config
