"""Export the deployable int8 model shipped inside the package and write its card (sha256, recipe, calibration).

    python scripts/package_model.py --calibration-dir ../shared/data/train-images
    python scripts/package_model.py --exported FILE.onnx   # card for a file already exported the same way

Writes zippypoint/weights/<preset>-int8.onnx and <preset>-int8.onnx.card.json; the runtime uses the file only
while the card's weights sha256 and recipe revision match the shipped weights and the current export recipe.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from zippypoint.runtime.model_cache import RECIPE_REVISION, packaged_dir, packaged_name

FMT = "onnx-int8"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="zippypoint", help="preset with shipped weights")
    p.add_argument("--calibration-dir", type=Path, default=None, help="folder of real photos (recursive)")
    p.add_argument("--exported", type=Path, default=None, help="an int8 file already exported from the preset")
    args = p.parse_args()

    from zippypoint.export.exporter import DEFAULT_CALIBRATION_COUNT, export_model
    from zippypoint.export.int8 import optimized_op_counts
    from zippypoint.model.weights import sha256_file
    from zippypoint.runtime.onnx_extractor import OnnxExtractor

    out = packaged_dir() / packaged_name(args.model, FMT)
    if args.exported is None:
        if args.calibration_dir is None:
            p.error("pass --calibration-dir DIR (or --exported FILE)")
        with tempfile.TemporaryDirectory() as tmp:
            made = export_model(FMT, Path(tmp) / out.name, args.model, calibration_dir=args.calibration_dir)
            shutil.copyfile(made, out)
    else:
        shutil.copyfile(args.exported, out)
    meta = OnnxExtractor(out).metadata
    if (meta.preset, meta.format) != (args.model, FMT):
        raise SystemExit(f"{out} is {meta.preset} {meta.format}, expected {args.model} {FMT}")
    card = {
        "file": out.name,
        "sha256": sha256_file(out),
        "preset": meta.preset,
        "format": meta.format,
        "recipe_revision": RECIPE_REVISION[FMT],
        "weights_sha256": meta.weights_sha256,
        "opset": meta.opset,
        "version": meta.version,
        "quantization": json.loads(meta.quantization),
        "calibration": f"{DEFAULT_CALIBRATION_COUNT} photos spread over train-images (BSDS500, COCO 2017, "
                       "Sun-Hays 80; long side <= 512 px), native size",
        "command": "python scripts/package_model.py --calibration-dir ../shared/data/train-images",
        "onnxruntime_ops": optimized_op_counts(out),
    }
    card_path = out.parent / (out.name + ".card.json")
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {out} (sha256 {card['sha256']}) and {card_path}")


if __name__ == "__main__":
    main()
