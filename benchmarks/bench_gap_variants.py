"""What would make our int8 network faster: ONNX Runtime latency of architecture variants, against XFeat.

    python benchmarks/bench_gap_variants.py --sizes 640x480,320x240 --threads 1 --runs 10 --out gap.json

Timing only: every variant has random weights (a variant changes the topology, so it needs retraining before
its accuracy is known). Each variant is folded and quantised to int8 QDQ exactly as ``zippypoint export
--format onnx-int8`` does (``FoldedZippyPoint`` -> ``trace_to_onnx`` -> ``quantize_folded_onnx``, calibrated
on real photos), then timed interleaved with the others under the same session options; XFeat (kornia) is
timed in the same process with the same thread count. Variants:

- ``base``: the zippypoint preset;
- ``gray``: 1-channel input (the ``zippypoint-gray`` preset);
- ``desc-1x1``: the last descriptor conv (256->256 at H/4) as 1x1 instead of 3x3;
- ``desc-h8``: descriptors at H/8 as in SuperPoint (desc_conv1 then a 1x1 256->256; no pixel shuffle, no H/4
  convs); the runtime would sample the H/8 map;
- ``shared-head``: score and location outputs share one 3x3 256->256 conv (drops loc_conv);
- ``stem-h2``: no full-resolution layer: the input is space-to-depth'd (2x2) and one 3x3 conv gives the H/2
  features (replaces conv_in and down1);
- ``no-binary``: the eight binary blocks removed: a bound on what 1-bit kernels could save (they cost 0 here);
- ``lean`` = gray + desc-h8 + shared-head; ``lean-stem`` = lean + stem-h2; ``...-no-binary``: without the
  binary blocks.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VARIANTS = ("base", "gray", "desc-1x1", "desc-h8", "shared-head", "stem-h2", "no-binary", "lean", "lean-stem",
            "lean-no-binary", "lean-stem-no-binary")
COMBINED = {"lean": {"gray", "desc-h8", "shared-head"}, "lean-stem": {"gray", "desc-h8", "shared-head", "stem-h2"},
            "lean-no-binary": {"gray", "desc-h8", "shared-head", "no-binary"},
            "lean-stem-no-binary": {"gray", "desc-h8", "shared-head", "stem-h2", "no-binary"}}
BLOCKS = ("block1a", "block1b", "block2a", "block2b", "block3a", "block3b", "block4a", "block4b")


def build_variant(name: str):
    """(folded module, input channels) of variant ``name`` with seeded random weights."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from zippypoint.export.folded import FixedRangeQuant, FoldedZippyPoint, offsets_to_pixels, zero_border
    from zippypoint.model.registry import create_model

    parts = COMBINED.get(name, {name})
    torch.manual_seed(0)
    net = create_model("zippypoint-gray" if "gray" in parts else "zippypoint").eval()

    class Variant(FoldedZippyPoint):
        def __init__(self) -> None:
            super().__init__(net, rounding=False, sign_as_threshold=True)
            c4, d = net.config.widths[4], net.config.descriptor_dim
            if "desc-1x1" in parts:
                self.desc_out = nn.Conv2d(c4, d, 1)
            if "desc-h8" in parts:
                self.desc_h8 = nn.Conv2d(c4, d, 1)
            if "stem-h2" in parts:
                cin, c0 = net.config.in_channels, net.config.widths[0]
                self.stem = nn.Sequential(nn.Conv2d(4 * cin, c0, 3, padding=1), nn.Hardswish(),
                                          FixedRangeQuant(2 * net.config.act_range_early / 255, -128, 127, False))
            if "no-binary" in parts:
                # block4a widens 128 -> 256: keep only its int8 projection shortcut
                self.widen = nn.Sequential(nn.Conv2d(net.config.widths[3], c4, 1), FixedRangeQuant(12 / 255, -128, 127, False))

        def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
            x = (image - 0.5) * self.config.input_scale
            if "stem-h2" in parts:
                x = self.stem(F.pixel_unshuffle(x, 2))
            else:
                x = self.down1(self.conv_in(x))
            if "no-binary" in parts:
                feat = self.widen(self.down3(self.down2(x)))
            else:
                x = self.block1b(self.block1a(x))
                x = self.block2b(self.block2a(self.down2(x)))
                x = self.block3b(self.block3a(self.down3(x)))
                feat = self.block4b(self.block4a(x))
            score_feat = self.score_conv(feat)
            loc_feat = score_feat if "shared-head" in parts else self.loc_conv(feat)
            scores = torch.sigmoid(self.score_out(score_feat))
            offsets = torch.tanh(self.loc_out(loc_feat))
            if "desc-h8" in parts:
                desc = self.desc_h8(self.desc_conv1(feat))
            else:
                desc = self.desc_conv2(self.desc_conv1(feat))
                desc = self.desc_out(self.desc_conv3(F.pixel_shuffle(desc, 2)))
            return {"scores": zero_border(scores), "keypoints": offsets_to_pixels(offsets), "descriptors": desc}

    return Variant().eval(), net.config.in_channels


def gmac(module, in_channels: int, size: tuple[int, int]) -> float:
    """Multiply-accumulates of the convolutions at ``size`` (W, H), in GMAC."""
    import torch
    from torch import nn

    total = [0]

    def hook(m, _inp, out):
        total[0] += out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        module(torch.rand(1, in_channels, size[1], size[0]))
    for h in handles:
        h.remove()
    return total[0] / 1e9


def export_variant(name: str, out: Path, calibration: list[Path]) -> tuple[Path, float, float]:
    """int8 export of variant ``name``; returns (path, GMAC at 640x480, GMAC at 320x240)."""
    import onnx

    from zippypoint.export.int8 import Int8Options, calibration_batches, quantize_folded_onnx
    from zippypoint.export.onnx_export import trace_to_onnx

    module, channels = build_variant(name)
    float_path = out / f"{name}-folded.onnx"
    onnx.save_model(trace_to_onnx(module, channels), str(float_path))
    # the exporter keeps the leading full-resolution convs in fp32; the H/2 stem replaces both of them
    options = Int8Options(fp32_first_convs=1) if "stem-h2" in COMBINED.get(name, {name}) else Int8Options()
    path = quantize_folded_onnx(float_path, out / f"{name}-int8.onnx", calibration_batches(calibration, channels),
                                options)
    return path, gmac(module, channels, (640, 480)), gmac(module, channels, (320, 240))


def time_xfeat(size: tuple[int, int], runs: int, warmup: int, image: np.ndarray) -> dict:
    import cv2

    from zippypoint.methods.registry import create_method
    from zippypoint.timing import interleaved_times, summarize_ms

    method = create_method("xfeat", 1000 if size[0] >= 640 else 300)
    method.load()
    frame = cv2.resize(image, size)
    times = interleaved_times({"xfeat": lambda r: method(frame)}, runs, warmup=warmup)
    return summarize_ms(times["xfeat"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--sizes", default="640x480,320x240")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--calibration-dir", type=Path, default=Path("../shared/data/train-images"))
    p.add_argument("--calibration-count", type=int, default=8)
    p.add_argument("--image", type=Path, default=Path("../shared/data/hpatches-dev/v_churchill/1.ppm"),
                   help="photo XFeat is timed on (network latency does not depend on content)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = p.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")

    import cv2
    import torch

    from zippypoint.bench.environment import capture_environment, load_average, set_threads
    from zippypoint.export.int8 import find_images
    from zippypoint.io import parse_resize
    from zippypoint.runtime.latency import compare_latency
    from zippypoint.timing import speedup_cell

    set_threads(args.threads)
    torch.set_num_threads(args.threads)
    env = capture_environment(args.threads)
    calibration = find_images(args.calibration_dir, args.calibration_count)
    image = cv2.imread(str(args.image))
    if image is None:  # no data folder here: any photo times the same
        import skimage.data

        image = np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])
    results = {"environment": env, "runs": args.runs, "variants": {}, "latency": {}, "xfeat": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name in variants:
            print(f"exporting {name}", file=sys.stderr)
            paths[name], g640, g320 = export_variant(name, Path(tmp), calibration)
            results["variants"][name] = {"gmac_640x480": g640, "gmac_320x240": g320}
        for size in (parse_resize(s) for s in args.sizes.split(",")):
            key = f"{size[0]}x{size[1]}"
            print(f"timing {key}", file=sys.stderr)
            results["latency"][key] = compare_latency(paths, size, runs=args.runs, threads=args.threads)
            results["xfeat"][key] = time_xfeat(size, args.runs, 3, image)
    env["load_average_end"] = load_average()

    sizes = list(results["latency"])
    lines = [f"{env['cpu']}, {args.threads} thread(s), ONNX Runtime int8 (QDQ) network only, median of {args.runs} interleaved "
             f"runs; load {env['load_average_start']} -> {env['load_average_end']}; random weights (timing only)", "",
             "| variant | GMAC 640x480 | " + " | ".join(f"{s} ms (vs base)" for s in sizes) + " |",
             "|---|---:|" + "---:|" * len(sizes)]
    for name in variants:
        cells = [speedup_cell(results["latency"][s][name]["median_ms"],
                              results["latency"][s].get("base", {}).get("median_ms")) for s in sizes]
        lines.append(f"| {name} | {results['variants'][name]['gmac_640x480']:.1f} | " + " | ".join(cells) + " |")
    lines.append("| XFeat (kornia, fp32, end to end incl. its NMS and sampling) | - | " +
                 " | ".join(f"{results['xfeat'][s]['median_ms']:.1f}" for s in sizes) + " |")
    print("\n".join(lines))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
