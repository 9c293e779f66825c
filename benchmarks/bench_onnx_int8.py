"""ONNX Runtime int8 vs fp32 latency of the ZippyPoint network, side by side in one run.

    python benchmarks/bench_onnx_int8.py --random-weights --sizes 640x480,320x240 --out bench_int8.json

Models timed (same session options, intra-op threads = --threads, median of --runs interleaved runs):
- ``fp32-onnx``: the ``onnx`` export (the network as PyTorch computes it, fake-quant arithmetic included);
- ``fp32-folded``: the same network as a plain fp32 graph (BN folded, quantisers only clamp): the fair fp32
  baseline, i.e. what deploying the network without int8 costs;
- ``int8``: the ``onnx-int8`` export (QDQ, integer kernels);
- with ``--choices``: int8 variants of the measured quantisation choices.
Parity of each int8 model: layer-by-layer agreement with the fake-quant network on one real photo
(``zippypoint.export.int8_check``): mean fraction of outputs on the same level over the int8 layers, and the
agreement of the descriptor top-64 bits.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHOICES = {
    "int8-calibrate-all": dict(design_ranges=False, sign="compare", hswish_inputs="calibrated", fp32_first_convs=0),
    "int8-fp32-sign": dict(sign="compare"),
    "int8-all-convs-int8": dict(fp32_first_convs=0),
    "int8-first-conv-fp32": dict(fp32_first_convs=1),
    "int8-int8-heads": dict(fp32_heads=False),
    "int8-qlinear-add": dict(float_adds=False),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="zippypoint")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", type=Path)
    src.add_argument("--random-weights", action="store_true")
    p.add_argument("--sizes", default="640x480,320x240", help="comma-separated WxH")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calibration-dir", type=Path, default=None)
    p.add_argument("--calibration-count", type=int, default=32)
    p.add_argument("--choices", action="store_true", help="also time the int8 variants of the measured choices")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = p.parse_args(argv)

    import numpy as np
    import onnx

    from zippypoint.export.exporter import export_model, load_export_model
    from zippypoint.export.folded import FoldedZippyPoint
    from zippypoint.export.int8 import DEFAULT_CALIBRATION_DIR, Int8Options, find_images, optimized_op_counts
    from zippypoint.export.int8_check import layer_agreement
    from zippypoint.export.onnx_export import trace_to_onnx
    from zippypoint.io import parse_resize, prepare_image, read_image
    from zippypoint.runtime.latency import compare_latency, machine_description
    from zippypoint.timing import speedup_cell

    net, sha = load_export_model(args.model, weights=args.weights, random_weights=args.random_weights)
    calib = dict(calibration_dir=args.calibration_dir or DEFAULT_CALIBRATION_DIR,
                 calibration_count=args.calibration_count)
    results = {"machine": machine_description(), "model": args.model, "weights_sha256": sha,
               "threads": args.threads, "runs": args.runs, "latency": {}, "kernels": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = {"fp32-onnx": export_model("onnx", tmp / "fp32.onnx", args.model, net=net)}
        folded = trace_to_onnx(FoldedZippyPoint(net, rounding=False), net.config.in_channels)
        onnx.save_model(folded, str(tmp / "fp32-folded.onnx"))
        paths["fp32-folded"] = tmp / "fp32-folded.onnx"
        paths["int8"] = export_model("onnx-int8", tmp / "int8.onnx", args.model, net=net, **calib)
        if args.choices:
            for name, kw in CHOICES.items():
                paths[name] = export_model("onnx-int8", tmp / f"{name}.onnx", args.model, net=net,
                                           int8_options=Int8Options(**kw), **calib)
        photo = find_images(calib["calibration_dir"], 3)[1]
        batch, _ = prepare_image(read_image(photo), net.config.in_channels, (640, 480))
        results["agreement"] = {}
        for name, path in paths.items():
            ops = optimized_op_counts(path)
            results["kernels"][name] = {k: ops[k] for k in ("QLinearConv", "QLinearAdd", "Conv") if ops.get(k)}
            if name.startswith("int8"):
                layers = layer_agreement(net, path, batch)
                results["agreement"][name] = {
                    "mean_equal": float(np.mean([v["equal"] for v in layers.values()])),
                    "min_equal": float(min(v["equal"] for v in layers.values())),
                    "descriptor_bits_equal": layers["desc_out"]["bits_equal"], "layers": layers}
        for size in (parse_resize(s) for s in args.sizes.split(",")):
            key = f"{size[0]}x{size[1]}"
            results["latency"][key] = compare_latency(paths, size, runs=args.runs, threads=args.threads)

    lines = [f"machine: {results['machine']['cpu']} ({results['machine']['logical_cores']} logical cores), "
             f"onnxruntime {results['machine']['onnxruntime']}, intra-op threads {args.threads}, "
             f"median of {args.runs} interleaved runs", "",
             "| model | " + " | ".join(results["latency"]) + " | layer agreement (mean / min) | desc bits | kernels |",
             "|---|" + "---|" * len(results["latency"]) + "---|---|---|"]
    for name in paths:
        cells = [speedup_cell(lat[name]["median_ms"], lat["fp32-folded"]["median_ms"], " ms")
                 for lat in results["latency"].values()]
        agree = results["agreement"].get(name)
        parity = (f"{agree['mean_equal']:.3f} / {agree['min_equal']:.3f} | {agree['descriptor_bits_equal']:.4f}"
                  if agree else "- | -")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {parity} | {results['kernels'][name]} |")
    lines.append("")
    lines.append("(Nx) = speed-up over fp32-folded at that size.")
    print("\n".join(lines))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
