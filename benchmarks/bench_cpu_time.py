"""Single-thread CPU time per frame of our exported runtimes and XFeat, full pipeline (pre-processing + network +
post-processing, image already decoded and resized): a comparison that holds on a machine shared with other work,
where wall times measure the load. Process CPU time of one-thread inference is what a frame costs.

    python benchmarks/bench_cpu_time.py --work runs/benchmark-work --out runs/cpu_time.json

``--work``: a folder of exports (``zippypoint benchmark --work`` leaves ``*.xml`` OpenVINO IRs and ``*int8*.onnx``
files there).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def cpu_ms(fn, image, runs: int) -> float:
    for _ in range(2):
        fn(image)
    times = []
    for _ in range(runs):
        t0 = time.process_time()
        fn(image)
        times.append((time.process_time() - t0) * 1e3)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    import cv2
    import torch

    from zippypoint.data_paths import data_path
    from zippypoint.extractor import ExtractorConfig
    from zippypoint.methods import create_method
    from zippypoint.runtime.onnx_extractor import OnnxExtractor
    from zippypoint.runtime.openvino_extractor import OpenVinoExtractor

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="folder of exported models (.xml, *int8*.onnx)")
    p.add_argument("--image", type=Path, default=data_path("hpatches-dev", "v_churchill", "1.ppm"))
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--out", type=Path, default=Path("runs/cpu_time.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    files = sorted(args.work.glob("*.xml")) + sorted(args.work.glob("*int8*.onnx"))
    photo = cv2.imread(str(args.image))
    if photo is None:
        raise SystemExit(f"cannot read {args.image}")
    results = {}
    for size, top_k in (((320, 240), 300), ((640, 480), 1000)):
        image = cv2.resize(photo, size)
        xfeat = create_method("xfeat", top_k)
        xfeat.load()
        methods = {"xfeat": xfeat}
        for f in files:
            config = ExtractorConfig(max_keypoints=top_k)
            ex = (OpenVinoExtractor(f, config=config, threads=1) if f.suffix == ".xml"
                  else OnnxExtractor(f, config=config, intra_op_num_threads=1))
            methods[f.stem] = ex.load().extract
        for name, fn in methods.items():
            results[f"{name} @{size[0]}x{size[1]}"] = ms = cpu_ms(fn, image, args.runs)
            print(f"{name:50s} {size[0]}x{size[1]}  {ms:7.1f} CPU ms/frame", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
