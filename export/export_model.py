"""Prepare a deployment folder: export a preset to its runtime formats and check each against PyTorch.

    python export/export_model.py --model zippypoint --formats onnx,onnx-int8 --out deploy/ --check photo.jpg

For each format the model is exported (``zippypoint.export.exporter.export_model``), loaded back through the
same factory the CLI uses (``zippypoint.resolve.build_extractor``) and run on the check photos next to the
PyTorch extractor with the same weights. ``deploy/manifest.json`` records, per format, the file, its size and
sha256, the weights' sha256 and the agreement with PyTorch: the share of PyTorch's keypoints that the runtime
finds within 1 px and, for those, the share of equal descriptor bits. ``deploy/README.md`` says how to load
each file. Needs an installed zippypoint (``pip install -e .``); one format at a time is ``zippypoint export``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

RUNTIME_OF = {"onnx": "onnx", "onnx-int8": "onnx-int8"}  # export format -> build_extractor runtime
SUFFIX = {"onnx": ".onnx", "onnx-int8": "-int8.onnx"}


def agreement(reference: dict, other: dict, radius: float = 1.0) -> dict[str, float]:
    """Share of ``reference`` keypoints with an ``other`` keypoint within ``radius`` px, and the share of equal
    descriptor bits over those nearest pairs (1.0 / 1.0 for identical outputs; NaN bits without pairs)."""
    ref_kp, kp = reference["keypoints"], other["keypoints"]
    if len(ref_kp) == 0:
        return {"keypoints_within_1px": 1.0 if len(kp) == 0 else 0.0, "descriptor_bits_equal": float("nan")}
    if len(kp) == 0:
        return {"keypoints_within_1px": 0.0, "descriptor_bits_equal": float("nan")}
    dist = np.linalg.norm(ref_kp[:, None, :] - kp[None, :, :], axis=2)
    nearest = dist.argmin(axis=1)
    close = dist[np.arange(len(ref_kp)), nearest] <= radius
    bits = np.nan
    if close.any():
        a = np.unpackbits(reference["descriptors"][close], axis=1)
        b = np.unpackbits(other["descriptors"][nearest[close]], axis=1)
        bits = float((a == b).mean())
    return {"keypoints_within_1px": float(close.mean()), "descriptor_bits_equal": bits}


def deploy(args: argparse.Namespace) -> dict:
    from zippypoint.export.exporter import export_model
    from zippypoint.extractor import ExtractorConfig
    from zippypoint.io import list_images, read_image
    from zippypoint.model.weights import sha256_file
    from zippypoint.resolve import build_extractor, resolve_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    choice = resolve_model(args.model, args.weights)
    config = ExtractorConfig(max_keypoints=args.max_keypoints)
    photos = [p for c in args.check for p in list_images(c)]
    reference = build_extractor(args.model, "torch", args.weights, config)
    expected = {str(p): reference.extract(read_image(p)) for p in photos}
    manifest = {"preset": args.model, "weights": choice.label, "weights_sha256": choice.sha256,
                "check_photos": [str(p) for p in photos], "max_keypoints": args.max_keypoints, "formats": {}}
    for fmt in args.formats:
        path = out / f"{args.model}{SUFFIX[fmt]}"
        print(f"exporting {fmt} -> {path}", file=sys.stderr)
        kwargs = {"calibration_dir": args.calibration_dir} if fmt == "onnx-int8" and args.calibration_dir else {}
        export_model(fmt, path, args.model, weights=args.weights, **kwargs)
        runtime = build_extractor(path, RUNTIME_OF[fmt], config=config)
        scores = [agreement(expected[str(p)], runtime.extract(read_image(p))) for p in photos]
        manifest["formats"][fmt] = {
            "file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path),
            "load": f"zippypoint.resolve.build_extractor({path.name!r}, runtime={RUNTIME_OF[fmt]!r})",
            "agreement_with_pytorch": {
                key: float(np.nanmean([s[key] for s in scores])) if scores else None
                for key in ("keypoints_within_1px", "descriptor_bits_equal")},
        }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    lines = [f"# {args.model} for deployment", "", f"Weights: {choice.label}.", "",
             "| file | bytes | keypoints within 1 px of PyTorch | equal descriptor bits | load with |",
             "|---|---:|---:|---:|---|"]
    for entry in manifest["formats"].values():
        agree = entry["agreement_with_pytorch"]
        cells = [f"{v:.3f}" if v is not None else "-" for v in agree.values()]
        lines.append(f"| {entry['file']} | {entry['bytes']} | {cells[0]} | {cells[1]} | `{entry['load']}` |")
    lines += ["", f"Agreement measured on {len(photos)} photo(s) with the top {args.max_keypoints} keypoints."]
    (out / "README.md").write_text("\n".join(lines) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zippypoint", help="preset (default: zippypoint)")
    parser.add_argument("--weights", default=None, help="safetensors weights instead of the shipped ones")
    parser.add_argument("--formats", default="onnx,onnx-int8", help="comma-separated, from onnx, onnx-int8")
    parser.add_argument("--out", required=True, help="deployment folder (created)")
    parser.add_argument("--check", action="append", required=True, metavar="PHOTO_OR_FOLDER",
                        help="photo(s) to compare each runtime with PyTorch on (repeatable)")
    parser.add_argument("--calibration-dir", default=None,
                        help="photos for int8 calibration (default: the exporter's, from $ZIPPYPOINT_DATA)")
    parser.add_argument("--max-keypoints", type=int, default=1000)
    args = parser.parse_args(argv)
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(args.formats) - set(RUNTIME_OF))
    if unknown or not args.formats:
        parser.error(f"--formats: expected some of {', '.join(RUNTIME_OF)}, got {args.formats}")
    manifest = deploy(args)
    print(json.dumps(manifest["formats"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
