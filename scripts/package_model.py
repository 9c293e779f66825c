"""Export the deployable models shipped inside the package and write their cards (sha256, recipe, calibration).

    python scripts/package_model.py --calibration-dir ../shared/data/train-images
    python scripts/package_model.py --format openvino-int8 --calibration-dir ../shared/data/train-images
    python scripts/package_model.py --format openvino --calibration-dir ../shared/data/train-images
    python scripts/package_model.py --exported FILE.onnx   # card for a file already exported the same way

Writes zippypoint/weights/<preset>-int8.onnx (format onnx-int8), <preset>-openvino-int8.xml/.bin (the OpenVINO
IR with the binary blocks as int8 convolutions, the fastest runtime on CPUs with AMX int8 tiles) or
<preset>-openvino.xml/.bin (the IR with the binary blocks as 1-bit convolutions, the fastest on x86 CPUs
without AMX) and <file>.card.json; the runtime uses
a file only while the card's weights sha256 and recipe revision match the shipped weights and the current export
recipe.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from zippypoint.runtime.model_cache import RECIPE_REVISION, packaged_dir, packaged_name

PACKAGED_FORMATS = ("onnx-int8", "openvino-int8", "openvino")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="zippypoint", help="preset with shipped weights")
    p.add_argument("--calibration-dir", type=Path, default=None, help="folder of real photos (recursive)")
    p.add_argument("--format", choices=PACKAGED_FORMATS, default="onnx-int8", help="which deployable file")
    p.add_argument("--exported", type=Path, default=None, help="a file already exported from the preset")
    args = p.parse_args()
    fmt = args.format

    from zippypoint.export.exporter import DEFAULT_CALIBRATION_COUNT, export_model
    from zippypoint.export.int8 import optimized_op_counts
    from zippypoint.model.weights import sha256_file

    out = packaged_dir() / packaged_name(args.model, fmt)
    ir = fmt in ("openvino", "openvino-int8")
    if args.exported is None:
        if args.calibration_dir is None:
            p.error("pass --calibration-dir DIR (or --exported FILE)")
        with tempfile.TemporaryDirectory() as tmp:
            made = export_model("openvino" if ir else fmt, Path(tmp) / out.name, args.model,
                                calibration_dir=args.calibration_dir, openvino_one_bit=fmt == "openvino")
            shutil.copyfile(made, out)
            if ir:
                shutil.copyfile(made.with_suffix(".bin"), out.with_suffix(".bin"))
    else:
        shutil.copyfile(args.exported, out)
        if ir:
            shutil.copyfile(args.exported.with_suffix(".bin"), out.with_suffix(".bin"))
    if ir:
        from zippypoint.runtime.openvino_extractor import OpenVinoExtractor

        meta = OpenVinoExtractor(out).load().metadata
    else:
        from zippypoint.runtime.onnx_extractor import OnnxExtractor

        meta = OnnxExtractor(out).metadata
    expected = "openvino" if ir else fmt
    if (meta.preset, meta.format) != (args.model, expected):
        raise SystemExit(f"{out} is {meta.preset} {meta.format}, expected {args.model} {expected}")
    card = {
        "file": out.name,
        "sha256": sha256_file(out),
        **({"bin_sha256": sha256_file(out.with_suffix(".bin"))} if ir else {}),
        "preset": meta.preset,
        "format": fmt,
        "recipe_revision": RECIPE_REVISION[fmt],
        "weights_sha256": meta.weights_sha256,
        "opset": meta.opset,
        "version": meta.version,
        "quantization": json.loads(meta.quantization),
        "calibration": f"{DEFAULT_CALIBRATION_COUNT} photos spread over train-images (BSDS500, COCO 2017, "
                       "Sun-Hays 80; long side <= 512 px), native size",
        "command": f"python scripts/package_model.py --model {args.model} --format {fmt} "
                   "--calibration-dir ../shared/data/train-images",
        **({} if ir else {"onnxruntime_ops": optimized_op_counts(out)}),
    }
    card_path = out.parent / (out.name + ".card.json")
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {out} (sha256 {card['sha256']}) and {card_path}")


if __name__ == "__main__":
    main()
