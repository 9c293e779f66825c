"""``zippypoint export``: write a deployable model (ONNX fp32, ONNX int8 for ONNX Runtime, CoreML)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zippypoint.model.registry import DEFAULT_PRESET

FORMATS = ("onnx", "onnx-int8", "coreml", "openvino")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", required=True, choices=FORMATS, help="onnx (fp32), onnx-int8 (QDQ), coreml or openvino (IR: 1-bit + int8 kernels)")
    p.add_argument("--model", default=DEFAULT_PRESET, help="preset name (see `zippypoint info`)")
    p.add_argument("--out", required=True, type=Path, help="output file (.onnx or .mlpackage)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", type=Path, help="safetensors weights to export (default: the preset's shipped ones)")
    src.add_argument("--random-weights", action="store_true", help="export random weights (testing and timing only)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17)")
    q = p.add_argument_group("int8 calibration (onnx-int8)")
    q.add_argument("--calibration-dir", type=Path, default=None,
                   help="folder of real photos (recursive; default $ZIPPYPOINT_DATA/train-images, else "
                        "../shared/data/train-images)")
    q.add_argument("--calibration-count", type=int, default=64, help="photos used, spread over the folder")
    q.add_argument("--calibration-resize", default=None, help="WxH the photos are resized to (default: native)")
    q.add_argument("--sign", choices=("threshold", "compare"), default="threshold",
                   help="binary-conv input: int8 threshold conv (default) or fp32 comparison")
    q.add_argument("--hswish-inputs", choices=("design", "calibrated"), default="design",
                   help="range of conv outputs feeding hard-swish: fixed by design (default) or calibrated")
    q.add_argument("--fp32-first-convs", type=int, choices=(0, 1, 2), default=2,
                   help="leading convs kept in fp32 (default 2: the input conv and the first downsampling)")
    q.add_argument("--calibrate-all", action="store_true",
                   help="calibrate every tensor instead of using the fake-quantisers' exact scales")
    q.add_argument("--calibration-method", choices=("minmax", "percentile", "entropy"), default="minmax")
    p.add_argument("--openvino-binary", choices=("1bit", "int8"), default="1bit",
                   help="openvino: binary blocks as 1-bit BinaryConvolution (default) or as int8 convolutions "
                   "(faster on CPUs with AMX int8, see export/README.md)")


SUFFIXES = {"onnx": ".onnx", "onnx-int8": ".onnx", "coreml": ".mlpackage", "openvino": ".xml"}


def check_arguments(args: argparse.Namespace) -> Path | None:
    """``UsageError`` naming the fix for a bad option, before anything is built; returns the calibration folder
    (int8) or None."""
    from zippypoint.cli import UsageError
    from zippypoint.model.registry import get_preset

    try:
        get_preset(args.model)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    suffix = SUFFIXES.get(args.format)
    if suffix and args.out.suffix != suffix:
        raise UsageError(f"--out {args.out}: a {args.format} export is written as {suffix}; "
                         f"use --out {args.out.with_suffix(suffix)}")
    if args.weights is not None and not args.weights.is_file():
        raise UsageError(f"--weights {args.weights}: no such file; pass a .safetensors file")
    if args.format not in ("onnx-int8", "openvino"):  # both are calibrated int8 exports
        return None
    from zippypoint.export.int8 import DEFAULT_CALIBRATION_DIR

    folder = args.calibration_dir or Path(DEFAULT_CALIBRATION_DIR)
    if not folder.is_dir():
        how = "--calibration-dir" if args.calibration_dir else "the default (ZIPPYPOINT_DATA/train-images)"
        raise UsageError(f"calibration folder not found: {folder} (from {how}); an int8 export needs real "
                         "photos: pass --calibration-dir DIR or set ZIPPYPOINT_DATA to a folder holding "
                         "train-images/")
    return folder.resolve()


def run(args: argparse.Namespace) -> int:
    from zippypoint.export.exporter import export_model
    from zippypoint.export.int8 import Int8Options
    from zippypoint.io import parse_resize
    from zippypoint.model.weights import sha256_file

    calibration_dir = check_arguments(args)
    options = Int8Options(design_ranges=not args.calibrate_all,
                          sign="compare" if args.calibrate_all else args.sign,
                          hswish_inputs="calibrated" if args.calibrate_all else args.hswish_inputs,
                          fp32_first_convs=args.fp32_first_convs, calibration_method=args.calibration_method)
    kwargs = {"calibration_dir": calibration_dir} if calibration_dir is not None else {}
    path = export_model(
        args.format, args.out, args.model, weights=args.weights, random_weights=args.random_weights,
        opset=args.opset, calibration_count=args.calibration_count,
        calibration_resize=parse_resize(args.calibration_resize), int8_options=options,
        openvino_one_bit=args.openvino_binary == "1bit", **kwargs,
    )
    digest = sha256_file(path) if path.is_file() else "(directory)"
    print(f"wrote {path} ({args.format}, model {args.model}) sha256 {digest}")
    if args.format == "onnx-int8":
        from zippypoint.export.int8 import optimized_op_counts

        ops = optimized_op_counts(path)
        print(f"ONNX Runtime integer kernels: QLinearConv x{ops.get('QLinearConv', 0)}, "
              f"QLinearAdd x{ops.get('QLinearAdd', 0)}; fp32 Conv x{ops.get('Conv', 0)}, "
              f"float additions (Sum) x{ops.get('Sum', 0)}")
    if args.format == "openvino":
        from zippypoint.export.openvino_export import runtime_layer_counts
        from zippypoint.runtime.openvino_extractor import OpenVinoExtractor

        ex = OpenVinoExtractor(path)
        counts = runtime_layer_counts(ex.compiled((1, ex.in_channels, 240, 320)))
        print(f"OpenVINO CPU kernels at 320x240: BinaryConvolution u1 x{counts.get(('BinaryConvolution', 'u1'), 0)}, "
              f"Convolution u8/i8 x{counts.get(('Convolution', 'u8'), 0) + counts.get(('Convolution', 'i8'), 0)}, "
              f"fp32 Convolution x{counts.get(('Convolution', 'f32'), 0)}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a deployable model (onnx, onnx-int8, coreml, openvino)",
                              description=__doc__.splitlines()[0])
    add_arguments(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    from zippypoint.cli import EXIT_FAILED, EXIT_USAGE, UsageError, error_line
    from zippypoint.model.weights import WeightsError

    parser = argparse.ArgumentParser(prog="export_model", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except UsageError as exc:
        print(f"export_model: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (WeightsError, ValueError, OSError, ImportError) as exc:
        print(f"export failed: {error_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
