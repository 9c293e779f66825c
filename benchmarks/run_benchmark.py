"""Stage timing of our runtimes on your photos: image preparation, network and post-processing, side by side.

    python benchmarks/run_benchmark.py --images photos/ --size 640x480 --runtimes torch,onnx,onnx-int8 --runs 20

Every runtime comes from the factory the CLI uses (``zippypoint.resolve.build_extractor``) and runs the stages
of the shared extractor base (``prepare``, ``infer``, ``postprocess``) on the same photos, resized to
``--size``. Runtimes are interleaved in rotating blocks (``zippypoint.timing.interleaved_times``) so that
background load spreads over all of them alike. Prints a Markdown table of median milliseconds per stage and
end to end, p90 and frames per second; ``--json`` also writes them with the machine description. For the full
comparison with the peers, reports and charts use ``zippypoint benchmark``.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from zippypoint.timing import StageClock, fps, interleaved_times, summarize_ms


def staged_call(extractor, images: list[np.ndarray], stages: dict[str, list[float]]):
    """A timing call for ``interleaved_times``: one extraction, stage by stage, recorded into ``stages``."""

    def call(run: int) -> None:
        clock = StageClock()
        batch, info = extractor.prepare(images[max(run, 0) % len(images)])
        clock.lap("pre")
        dense = extractor.infer(batch)
        clock.lap("network")
        extractor.postprocess(dense, info)
        clock.lap("post")
        if run >= 0:  # -1: the untimed call that settles the previous runtime's thread pools
            for stage, ms in clock.stages.items():
                stages.setdefault(stage, []).append(ms)

    return call


def main(argv: list[str] | None = None) -> int:
    import cv2

    from zippypoint.bench.environment import capture_environment
    from zippypoint.extractor import ExtractorConfig
    from zippypoint.io import list_images, parse_resize, read_image
    from zippypoint.resolve import build_extractor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="a photo or a folder of photos (at least one)")
    parser.add_argument("--size", default="640x480", help="WxH the photos are resized to (default: 640x480)")
    parser.add_argument("--model", default="zippypoint", help="preset (default: zippypoint)")
    parser.add_argument("--runtimes", default="torch,onnx,onnx-int8", help="comma-separated runtimes")
    parser.add_argument("--max-keypoints", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--block", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="network threads (default: the runtime's)")
    parser.add_argument("--json", default=None, metavar="OUT", help="also write the results as JSON")
    args = parser.parse_args(argv)
    size = parse_resize(args.size)
    paths = list_images(args.images)
    if not paths:
        parser.error(f"no images under {args.images}")
    images = [cv2.resize(read_image(p), size, interpolation=cv2.INTER_AREA) for p in paths]
    config = ExtractorConfig(max_keypoints=args.max_keypoints)
    stages: dict[str, dict[str, list[float]]] = {}
    calls = {}
    for runtime in [r.strip() for r in args.runtimes.split(",") if r.strip()]:
        print(f"building {args.model} on {runtime}", file=sys.stderr)
        extractor = build_extractor(args.model, runtime, config=config, threads=args.threads)
        calls[runtime] = staged_call(extractor, images, stages.setdefault(runtime, {}))
    total = interleaved_times(calls, args.runs, warmup=args.warmup, block=args.block, rotate=True, settle=True)
    results = {}
    for runtime, times in total.items():
        e2e = summarize_ms(times)
        results[runtime] = {"end_to_end": e2e, "fps": fps(e2e["median_ms"]),
                            "stages": {s: summarize_ms(v) for s, v in stages[runtime].items()}}
    lines = [f"{args.model} at {size[0]}x{size[1]}, top-{args.max_keypoints}, {len(images)} photo(s), "
             f"{args.runs} runs", "", "| runtime | pre ms | network ms | post ms | total ms | p90 ms | fps |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for runtime, r in results.items():
        st = r["stages"]
        lines.append(f"| {runtime} | {st['pre']['median_ms']:.2f} | {st['network']['median_ms']:.2f} | "
                     f"{st['post']['median_ms']:.2f} | {r['end_to_end']['median_ms']:.2f} | "
                     f"{r['end_to_end']['p90_ms']:.2f} | {r['fps']:.1f} |")
    print("\n".join(lines))
    if args.json:
        env = capture_environment(args.threads)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"settings": vars(args), "environment": env, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
