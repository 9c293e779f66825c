"""``zippypoint benchmark``: frames per second and per-stage times of our runtimes against the peers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_OUT = Path("runs/benchmark")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report folder (default: {DEFAULT_OUT})")
    p.add_argument("--resolutions", default="320x240,640x480",
                   help="comma-separated WxH[:TOPK]; 320x240 keeps 300 keypoints, 640x480 1000, others scale "
                   "1000 by the pixel count (default: 320x240,640x480)")
    p.add_argument("--runs", type=int, default=20, help="timed rounds per resolution (default: 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up extractions per method (default: 3)")
    p.add_argument("--block", type=int, default=5,
                   help="consecutive timed runs of a method before the next method's block (default: 5)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for torch, OpenCV, ONNX Runtime and faiss alike (default: all usable cores)")
    p.add_argument("--methods", default=None,
                   help="comma-separated <preset>:<runtime> (runtimes pytorch, onnx-fp32, onnx-int8, openvino, "
                   "openvino-int8, coreml on macOS) and peers orb, sift, xfeat, aliked-t16, aliked-n16, disk "
                   "(default: the default preset's and the paper topology's (zippypoint) runtimes, zippypoint-fp "
                   "in PyTorch and ONNX Runtime fp32, and all peers)")
    p.add_argument("--images", default=None,
                   help="comma-separated photos to time on, at least two (default: images 1 and 2 of the first "
                   "sequence under --data)")
    from zippypoint.data_paths import DATA_ENV, data_path

    p.add_argument("--data", type=Path, default=data_path("hpatches-dev"),
                   help=f"HPatches-layout folder for the default photos (default: {data_path('hpatches-dev')}, "
                   f"from ${DATA_ENV})")
    p.add_argument("--work", type=Path, default=Path("runs/benchmark-work"),
                   help="cache of our ONNX exports, reused across runs (default: runs/benchmark-work)")
    p.add_argument("--weights", action="append", default=[], metavar="PRESET=FILE",
                   help="time PRESET with this safetensors file (repeatable); default: shipped weights, or "
                   "random ones (labelled) when a preset has none")
    p.add_argument("--random-weights", action="store_true",
                   help="time our presets with random weights even where trained ones exist")
    p.add_argument("--calibration-dir", type=Path, default=None,
                   help=f"photos for int8 calibration (default: {data_path('train-images')})")
    p.add_argument("--calibration-count", type=int, default=64, help="calibration photos (default: 64)")
    p.add_argument("--matching-sizes", default="1024,2048,4096",
                   help="n for the n x n matching throughput, comma-separated; 'none' to skip")
    p.add_argument("--no-profile", action="store_true", help="skip the per-layer profiles (ONNX Runtime, OpenVINO)")
    p.add_argument("--profile-runs", type=int, default=10, help="profiled runs per model (default: 10)")
    p.add_argument("--accuracy", type=Path, default=None,
                   help="results.json of `zippypoint evaluate` for the speed-against-accuracy figure (C3)")
    p.add_argument("--from-json", type=Path, default=None, metavar="BENCHMARK_JSON",
                   help="time nothing: rewrite the report under --out from an earlier benchmark.json (e.g. to add "
                   "--accuracy after an evaluation)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table on stdout")


def _split(text: str | None) -> list[str]:
    return [v.strip() for v in (text or "").split(",") if v.strip()]


def config_from_args(args: argparse.Namespace):
    """BenchmarkConfig from parsed arguments; ValueError with a message for bad values."""
    from zippypoint.bench.runner import BenchmarkConfig

    weights = []
    for item in args.weights:
        preset, sep, file = item.partition("=")
        if not sep or not preset or not file:
            raise ValueError(f"--weights expects PRESET=FILE, got {item!r}")
        weights.append((preset, file))
    sizes = () if args.matching_sizes.strip().lower() == "none" else tuple(int(v) for v in _split(args.matching_sizes))
    return BenchmarkConfig(
        resolutions=tuple(_split(args.resolutions)), runs=args.runs, warmup=args.warmup, block=args.block,
        threads=args.threads,
        methods=tuple(_split(args.methods)) or None, images=tuple(_split(args.images)), data=str(args.data),
        work=str(args.work), weights=tuple(weights), random_weights=args.random_weights,
        calibration_dir=str(args.calibration_dir) if args.calibration_dir else None,
        calibration_count=args.calibration_count, matching_sizes=sizes, profile=not args.no_profile,
        profile_runs=args.profile_runs, accuracy=str(args.accuracy) if args.accuracy else None,
        extra={"command": "zippypoint benchmark " + " ".join(sys.argv[2:]) if len(sys.argv) > 1 else ""},
    )


def run(args: argparse.Namespace) -> int:
    from zippypoint.bench.methods import check_method_name
    from zippypoint.bench.report import markdown_report, write_outputs
    from zippypoint.bench.runner import run_benchmark

    def say(message: str) -> None:
        print(message, file=sys.stderr)

    if args.from_json is not None:
        return rewrite_report(args)
    try:
        config = config_from_args(args)
        for name in config.methods or ():
            check_method_name(name)
        if config.accuracy and not Path(config.accuracy).is_file():
            raise FileNotFoundError(f"--accuracy file not found: {config.accuracy}")
    except (ValueError, FileNotFoundError) as exc:
        say(f"error: {exc}")
        return 2
    try:
        results = run_benchmark(config, progress=not args.quiet, log=say)
    except (ValueError, FileNotFoundError) as exc:
        say(f"error: {exc}")
        return 2
    written = write_outputs(results, args.out)
    if not args.quiet:
        print(markdown_report(results))
    say("wrote " + ", ".join(str(p) for p in written))
    timed = sum(len(r["methods"]) for r in results["resolutions"].values())
    if timed == 0:
        say("error: no method could be timed")
        return 1
    return 1 if results["failed"] else 0


def rewrite_report(args: argparse.Namespace) -> int:
    """``--from-json``: the outputs of an earlier run, with accuracy attached when ``--accuracy`` is given."""
    import json

    from zippypoint.bench.environment import oversubscribed
    from zippypoint.bench.report import attach_accuracy, markdown_report, write_outputs
    from zippypoint.bench.runner import SCHEMA

    try:
        results = json.loads(args.from_json.read_text())
        if not isinstance(results, dict) or results.get("schema") != SCHEMA:
            raise ValueError(f"{args.from_json} is not a benchmark.json (schema {SCHEMA})")
        if args.accuracy is not None:
            attach_accuracy(results, args.accuracy)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    env = results["environment"]
    env.setdefault("oversubscribed", oversubscribed(env.get("load_average_start"), env.get("load_average_end"),
                                                    env.get("usable_cores", 1)))
    from zippypoint.bench.runner import summarize

    results["summary"] = summarize(results)
    written = write_outputs(results, args.out)
    if not args.quiet:
        print(markdown_report(results))
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("benchmark", help="speed of our runtimes against the peers (fps, stages, matching)",
                              description="Per-stage timing (pre-processing, network, post-processing, matching) "
                              "of our extractor in PyTorch, ONNX Runtime fp32 and int8 (CoreML on macOS) and of "
                              "the peers (ORB, SIFT, XFeat, ALIKED, DISK) on the same photos; matching throughput; "
                              "per-layer ONNX Runtime and OpenVINO profiles. Writes benchmark.json, benchmark.md, "
                              "speed.png, profile_*.md/png and, with --accuracy, speed_vs_accuracy.png under --out.")
    add_arguments(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_benchmark", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
