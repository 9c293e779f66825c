"""Stage depth of the lean topology: full-pipeline frames per second against XFeat, side by side in one run.

    python benchmarks/bench_stage_depth.py --calibration ../shared/data/train-images --out runs/stage-depth

Every variant is the lean topology (``zippypoint-lean``) with some stages cut to one binary block
(``ModelConfig.stage_blocks``), random weights, exported as the packaged ``openvino-int8`` IR is (int8 QDQ ONNX
calibrated on real photos, then the IR with the binary blocks as int8 convolutions) and run through
``OpenVinoExtractor.extract``: pre-processing, network and post-processing of an image already decoded, top-300
at 320x240 and top-1000 at 640x480 (score threshold 0, so every variant keeps exactly that many keypoints).
The shipped lean IR (trained weights) is timed too, to show that random weights cost what trained ones do.
XFeat (kornia, published weights when cached, else random) runs in the same process with the same threads;
blocks of all methods alternate (``zippypoint.timing.interleaved_times``). Writes ``stage_depth.json`` and
``stage_depth.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# the tiny-r64 preset's changes to the lean topology
TINY_R64 = {"stage_blocks": (1, 1, 1, 1), "head_width": 64, "widths": (32, 32, 64, 128, 128),
            "descriptor_rank": 64}
VARIANTS = {
    "lean (2, 2, 2, 2)": {},
    "(1, 1, 1, 2)": {"stage_blocks": (1, 1, 1, 2)},
    "(1, 1, 2, 1)": {"stage_blocks": (1, 1, 2, 1)},
    "(1, 1, 1, 1) = zippypoint-slim": {"stage_blocks": (1, 1, 1, 1)},
    "(1, 1, 1, 1), head 96": {"stage_blocks": (1, 1, 1, 1), "head_width": 96},
    "(1, 1, 1, 1), head 64": {"stage_blocks": (1, 1, 1, 1), "head_width": 64},
    # no binary block at H/2: the stride-2 stem feeds down2 directly (docs/search.md, "No binary block at H/2")
    "(0, 1, 1, 1), head 64": {"stage_blocks": (0, 1, 1, 1), "head_width": 64},
    "(1, 1, 1, 1), head 64, c4 128, rank 64 = zippypoint-tiny-r64": TINY_R64,
    "(0, 1, 1, 1), head 64, c4 128, rank 64": {**TINY_R64, "stage_blocks": (0, 1, 1, 1)},
}
SIZES = ((320, 240, 300), (640, 480, 1000))


def export_variant(overrides: dict, folder: Path, calibration: Path, runtime: str = "openvino-int8") -> Path:
    """The ``runtime`` IR (``openvino-int8``: binary blocks as int8 convolutions; ``openvino``: as 1-bit
    convolutions) of the lean topology with ``overrides`` and seeded random weights (one calibration photo at
    160x120: the ranges do not change the cost)."""
    import torch

    from zippypoint.export.exporter import export_model
    from zippypoint.model.network import ZippyPointNet
    from zippypoint.model.registry import get_preset

    torch.manual_seed(0)
    net = ZippyPointNet(dataclasses.replace(get_preset("zippypoint-lean").config, **overrides)).eval()
    return export_model("openvino", folder / "int8.xml", "zippypoint-gray", net=net, calibration_dir=calibration,
                        calibration_count=1, calibration_resize=(160, 120),
                        openvino_one_bit=runtime == "openvino")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", type=Path, required=True, help="photos for the int8 calibration")
    parser.add_argument("--photo", type=Path, default=None,
                        help="the image to time (default: the first photo of --calibration)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=40, help="timed runs per method and size (blocks of 5)")
    parser.add_argument("--runtimes", default="openvino-int8",
                        help="comma-separated: openvino-int8 (binary blocks as int8), openvino (1-bit)")
    parser.add_argument("--variants", default=None,
                        help="comma-separated indices of the variants to time (default: all): "
                        + "; ".join(f"{i} = {name}" for i, name in enumerate(VARIANTS)))
    args = parser.parse_args(argv)
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    if not runtimes or any(r not in ("openvino-int8", "openvino") for r in runtimes):
        parser.error(f"--runtimes: expected openvino-int8 and/or openvino, got {args.runtimes!r}")
    variants = VARIANTS
    if args.variants:
        names = list(VARIANTS)
        try:
            wanted = [names[int(v)] for v in args.variants.split(",")]
        except (ValueError, IndexError):
            parser.error(f"--variants: expected indices 0-{len(names) - 1}, got {args.variants!r}")
        variants = {v: VARIANTS[v] for v in wanted}

    import cv2
    import torch

    from zippypoint.io import list_images
    from zippypoint.methods.peer_weights import weights_path
    from zippypoint.methods.registry import create_method
    from zippypoint.runtime.base import ExtractorConfig
    from zippypoint.runtime.latency import machine_description
    from zippypoint.runtime.model_cache import packaged_model_path
    from zippypoint.runtime.openvino_extractor import OpenVinoExtractor
    from zippypoint.timing import interleaved_times

    torch.set_num_threads(args.threads)
    photo = args.photo or list_images(args.calibration)[0]
    image0 = cv2.imread(str(photo))
    if image0 is None:
        raise SystemExit(f"cannot read {photo}")
    files: dict[str, Path] = {}
    tmp = Path(tempfile.mkdtemp(prefix="stage-depth-"))
    for runtime in runtimes:
        tag = "" if runtimes == ["openvino-int8"] else f" [{runtime}]"
        shipped = packaged_model_path("zippypoint-lean", runtime)
        if shipped is not None and not args.variants:
            files[f"lean, shipped weights{tag}"] = shipped
        for k, (name, overrides) in enumerate(variants.items()):
            files[name + tag] = export_variant(overrides, tmp / f"{runtime}-{k}", args.calibration, runtime)
    published = weights_path("xfeat").exists()
    result = {"machine": machine_description(), "threads": args.threads, "runs": args.runs, "photo": str(photo),
              "runtimes": runtimes,
              "xfeat_weights": "published" if published else "random", "sizes": {}}
    for width, height, top in SIZES:
        image = cv2.resize(image0, (width, height), interpolation=cv2.INTER_AREA)
        config = ExtractorConfig(max_keypoints=top, score_threshold=0.0)
        extractors = {name: OpenVinoExtractor(path, config=config, threads=args.threads).load()
                      for name, path in files.items()}
        xfeat = create_method("xfeat", top, random_weights=not published)
        xfeat.load()
        calls = {name: (lambda _i, e=e, im=image: e.extract(im)) for name, e in extractors.items()}
        calls["xfeat"] = lambda _i, x=xfeat, im=image: x(im)
        times = interleaved_times(calls, args.runs, warmup=3, block=5)
        med = {name: float(np.median(t)) for name, t in times.items()}
        result["sizes"][f"{width}x{height}"] = {
            name: {"median_ms": med[name], "fps": 1000.0 / med[name], "x_xfeat": med["xfeat"] / med[name]}
            for name in calls}
        print(f"{width}x{height}: " + ", ".join(f"{n} {v:.2f} ms" for n, v in med.items()), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stage_depth.json").write_text(json.dumps(result, indent=1))
    lines = ["| variant | 320x240 ms | fps | x XFeat | 640x480 ms | fps | x XFeat |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name in files | {"xfeat": None}:
        cells = []
        for size in ("320x240", "640x480"):
            r = result["sizes"][size][name]
            cells += [f"{r['median_ms']:.2f}", f"{r['fps']:.1f}", f"{r['x_xfeat']:.2f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (args.out / "stage_depth.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
