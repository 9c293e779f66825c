"""``zippypoint make-benchmark``: HPatches-layout synthetic sequences from any image folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "make-benchmark",
        help="build HPatches-layout synthetic sequences from a folder of images",
        description="Each sequence is one photo (1.png) and warped copies 2.png..N.png with viewpoint-like "
        "homographies (rotation, scale, perspective; harder with k) and illumination changes, plus H_1_k files. "
        "Evaluate them with `zippypoint evaluate --data OUT`.",
    )
    parser.add_argument("--images", type=Path, required=True, help="folder of photos (searched recursively)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the sequences into")
    parser.add_argument("--sequences", type=int, default=10, help="number of sequences (default: 10)")
    parser.add_argument("--per-sequence", type=int, default=5,
                        help="warped images per sequence, i.e. pairs (default: 5, like HPatches)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--max-side", type=int, default=640, help="longest side of image 1 (default: 640)")
    parser.add_argument("--kind", choices=("viewpoint", "illumination"), default="viewpoint",
                        help="viewpoint: homographies (rotation, scale, perspective); illumination: lighting "
                        "changes only (default: viewpoint)")
    parser.add_argument("--held-out", action="store_true",
                        help="use only the fixed development split of the photos (the ones training leaves out)")
    parser.add_argument("--overwrite", action="store_true", help="replace sequence folders that exist")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from zippypoint.eval.synthetic import SyntheticConfig, make_benchmark

    def say(message: str) -> None:
        print(message, file=sys.stderr)

    try:
        config = SyntheticConfig(sequences=args.sequences, per_sequence=args.per_sequence, seed=args.seed,
                                 max_side=args.max_side, kind=args.kind, held_out=args.held_out)
        folders = make_benchmark(args.images, args.out, config, overwrite=args.overwrite, log=say)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        say(f"error: {exc}")
        return 2
    say(f"wrote {len(folders)} sequences x {config.per_sequence} pairs to {args.out}")
    return 0
