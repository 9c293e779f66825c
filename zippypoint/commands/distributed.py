"""`zippypoint distributed extract|match|merge`: large collections on Ray (zippypoint.distributed, docs/distributed.md)."""

from __future__ import annotations

import argparse

from zippypoint.model.registry import DEFAULT_PRESET


def register(sub) -> None:
    p = sub.add_parser("distributed", help="extract / match large image collections on a Ray cluster",
                       description="Sharded, resumable extraction and matching with Ray Data. Without --ray a "
                                   "local Ray instance is started on this machine.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    e = actions.add_parser("extract", help="features of every image of a folder, glob or list file")
    e.add_argument("source", help="folder, glob ('photos/**/*.jpg') or list file (.txt), local or a URI "
                                  "such as s3://bucket/photos")
    e.add_argument("--out", required=True, help="output folder (features-*.parquet|h5, errors.parquet)")
    e.add_argument("--model", default=DEFAULT_PRESET, help="preset or an exported model file")
    e.add_argument("--weights", default=None, help="safetensors to export instead of the shipped weights")
    e.add_argument("--runtime", default="onnx-int8", choices=("onnx", "onnx-int8", "openvino", "openvino-int8"),
                   help="deployed runtime run by the workers")
    e.add_argument("--max-keypoints", type=int, default=1000, help="keep the N best keypoints (0 = all)")
    e.add_argument("--score-threshold", type=float, default=1e-4, help="minimum keypoint score")
    e.add_argument("--nms-radius", type=int, default=0, help="NMS radius in 8x8 cells (0 = off)")
    e.add_argument("--resize", default=None, metavar="WxH", help="resize images to WxH before the network")
    e.add_argument("--max-size", type=int, default=None, metavar="PX",
                   help="without --resize: downscale images whose longest side exceeds PX (default 2048; 0 = never)")
    e.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="refuse images above N pixels (default 100000000)")
    e.add_argument("--shard-size", type=int, default=256, help="images per output shard")
    _common(e)
    e.set_defaults(func=run_extract)

    m = actions.add_parser("match", help="match a pair list over the features of `distributed extract`")
    m.add_argument("features", help="folder written by `zippypoint distributed extract`")
    m.add_argument("--pairs", default="sequential",
                   help="exhaustive, sequential, or a pairs file (two names per line)")
    m.add_argument("--window", type=int, default=None, help="exhaustive: only pairs fewer than N images apart")
    m.add_argument("--overlap", type=int, default=5, help="sequential: successors matched per image")
    m.add_argument("--quadratic", action="store_true", help="sequential: also successors at 2^k beyond")
    m.add_argument("--ratio", type=float, default=0.95, help="Lowe's ratio (1 = off)")
    m.add_argument("--max-distance", type=int, default=None, help="largest Hamming distance in bits")
    m.add_argument("--pairs-per-task", type=int, default=512, help="pairs per task and output shard")
    m.add_argument("--out", default=None, help="output folder (default: the features folder)")
    _common(m)
    m.set_defaults(func=run_match)

    g = actions.add_parser("merge", help="one hloc features.h5 / matches.h5 from the shards of a run")
    g.add_argument("run", help="folder written by `zippypoint distributed extract` (and `match`)")
    g.add_argument("--features", default=None, help="features.h5 to write")
    g.add_argument("--matches", default=None, help="matches.h5 to write")
    g.set_defaults(func=run_merge)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", default=None, nargs="?", const="auto", metavar="ADDRESS",
                   help="join a running Ray cluster ('auto', host:6379 or ray://host:10001); "
                        "without it a local instance is started")
    p.add_argument("--runtime-env", default=None, metavar="JSON",
                   help="Ray runtime environment for the workers, as JSON or a .json file "
                        "(e.g. '{\"pip\": [\"zippypoint[distributed]\"]}')")
    p.add_argument("--workers", type=int, default=2, help="Ray actors (each loads the model once)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (and Ray CPUs) per actor")
    p.add_argument("--format", choices=("parquet", "h5"), default="parquet",
                   help="parquet (one row per image / pair) or h5 (hloc's layout), one file per shard")
    p.add_argument("--json", default=None, help="also write the run summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _runtime_env(text: str | None) -> dict | None:
    import json
    from pathlib import Path

    if not text:
        return None
    value = json.loads(Path(text).read_text() if text.endswith(".json") else text)
    if not isinstance(value, dict):
        raise ValueError(f"--runtime-env must be a JSON object, got {type(value).__name__}")
    return value


def _finish(result, args) -> None:
    import json

    if args.json:
        from pathlib import Path

        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2))


def run_extract(args: argparse.Namespace) -> int:
    import sys

    from zippypoint.distributed.extract import ExtractionOptions, extract_collection
    from zippypoint.model.weights import WeightsError

    try:
        options = ExtractionOptions(
            model=args.model, runtime=args.runtime, weights=args.weights,
            max_keypoints=args.max_keypoints or None, score_threshold=args.score_threshold,
            nms_radius=args.nms_radius, resize=args.resize, shard_size=args.shard_size, format=args.format,
            **({} if args.max_size is None else {"max_size": args.max_size}),
            **({} if args.max_pixels is None else {"max_pixels": args.max_pixels}),
            workers=args.workers, threads_per_worker=args.threads)
        result = extract_collection(args.source, args.out, options, address=args.ray,
                                    runtime_env=_runtime_env(args.runtime_env), progress=not args.quiet)
    except (WeightsError, FileNotFoundError, ValueError, TypeError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, reason in result.errors:
        print(f"failed: {name}: {reason}", file=sys.stderr)
    print(f"{result.images} image(s) in {result.shards} shard(s): {result.extracted} extracted now, "
          f"{result.skipped_shards} shard(s) already done, {len(result.errors)} failed in all; "
          f"{result.seconds:.1f} s -> {args.out}")
    _finish(result, args)
    return 1 if result.errors else 0


def run_match(args: argparse.Namespace) -> int:
    import sys

    from zippypoint.distributed.extract import feature_files
    from zippypoint.distributed.match import MatchingOptions, feature_index, match_collection
    from zippypoint.distributed.pairs import make_pairs

    try:
        names = sorted(feature_index(feature_files(args.features)))
        mode = args.pairs if args.pairs in ("exhaustive", "sequential") else "file"
        pairs = make_pairs(names, mode, window=args.window, overlap=args.overlap, quadratic=args.quadratic,
                           pairs_file=args.pairs if mode == "file" else None)
        options = MatchingOptions(ratio=None if args.ratio >= 1 else args.ratio, max_distance=args.max_distance,
                                  pairs_per_task=args.pairs_per_task, format=args.format, workers=args.workers,
                                  threads_per_worker=args.threads)
        result = match_collection(args.features, pairs, options, out_dir=args.out, address=args.ray,
                                  runtime_env=_runtime_env(args.runtime_env), progress=not args.quiet)
    except (FileNotFoundError, ValueError, TypeError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{result.pairs} pair(s) in {result.tasks} task(s): {result.matched} matched now, "
          f"{result.skipped_tasks} task(s) already done; {result.seconds:.1f} s -> {result.out_dir}")
    _finish(result, args)
    return 0


def run_merge(args: argparse.Namespace) -> int:
    import sys

    from zippypoint.distributed.merge import merge_to_hloc

    if not args.features and not args.matches:
        print("error: pass --features FILE and/or --matches FILE", file=sys.stderr)
        return 2
    try:
        images, pairs = merge_to_hloc(args.run, args.features, args.matches)
    except (FileNotFoundError, ValueError, KeyError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{images} image(s) -> {args.features}; {pairs} pair(s) -> {args.matches}")
    return 0
