"""Images per second of extraction: the single-process CLI against Ray with 1 and 2 workers (same int8 model).

    python benchmarks/bench_distributed.py --images ../shared/data/train-images --count 96 --out docs/distributed

Writes <out>.json and <out>.md. Every configuration extracts the same images with the preset's cached int8
export (ONNX Runtime); the Ray runs must give features identical to the CLI's, which is checked and reported.
Wall rates include starting the actors (each opens the model once) and whatever else the machine runs; images per
CPU-second count only the CPU time of the extracting processes (the CLI's process; the Ray workers' on their shards),
which a busy shared machine distorts far less. The projection per node assumes one single-threaded worker per core
at that per-CPU-second rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _cli_reference(images: Path, names: list[str], model: Path, threads: int | None, work: Path) -> tuple[float, dict]:
    from zippypoint.cli import main

    out = work / f"cli-{threads}"
    args = ["extract", str(images), "--out", str(out), "--runtime", "onnx-int8", "--model", str(model)]
    if threads:
        args += ["--threads", str(threads)]
    start, cpu_start = time.perf_counter(), time.process_time()
    code = main(args)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if code != 0:
        raise RuntimeError(f"zippypoint extract failed with code {code}")
    feats = {}
    for name in names:
        npz = out / Path(name).with_suffix(".npz")
        with np.load(npz if npz.is_file() else out / f"{Path(name).stem}.npz") as z:
            feats[name] = {k: z[k] for k in z.files}
    return seconds, cpu, feats


def _ray_run(images: Path, model: Path, workers: int, shard_size: int, work: Path) -> tuple[dict, dict]:
    from zippypoint.distributed.extract import ExtractionOptions, extract_collection
    from zippypoint.distributed.match import load_features

    out = work / f"ray-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    options = ExtractionOptions(model=str(model), runtime="onnx-int8", shard_size=shard_size, workers=workers)
    start = time.perf_counter()
    result = extract_collection(str(images), out, options, progress=False)
    seconds = time.perf_counter() - start
    summary = json.loads((out / "extract-summary.json").read_text())
    feats = {}
    for path in sorted(out.glob("features-*.parquet")):
        feats.update(load_features(path, _names(path)))
    return {"workers": workers, "images": result.extracted, "seconds": seconds,
            "cpu_seconds": result.worker_cpu_seconds, "summary": summary}, feats


def _names(path: Path) -> list[str]:
    from zippypoint.store.parquet import read_names

    return read_names(path)


def _identical(a: dict, b: dict) -> int:
    same = 0
    for name, fa in a.items():
        fb = b.get(name)
        if fb is not None and all(np.array_equal(fa[k], fb[k]) for k in ("keypoints", "scores", "descriptors")):
            same += 1
    return same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="../shared/data/train-images", help="folder of photos")
    parser.add_argument("--count", type=int, default=96, help="photos used (the first N by name)")
    parser.add_argument("--shard-size", type=int, default=8, help="images per shard")
    parser.add_argument("--out", default="docs/distributed-throughput", help="output path without suffix")
    args = parser.parse_args(argv)

    import ray

    from zippypoint.io import list_images
    from zippypoint.resolve import model_file

    source = Path(args.images)
    picked = list_images(source)[: args.count]
    if not picked:
        print(f"error: no images under {source}", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="zippypoint-bench-distributed-"))
    images = work / "images"
    for p in picked:  # a folder with just these photos, names kept
        dest = images / p.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest)
    names = sorted(p.relative_to(source).as_posix() for p in picked)
    model = model_file("zippypoint", "onnx-int8")
    try:
        rows = []
        for threads in (1, 2):
            seconds, cpu, ref = _cli_reference(images, names, model, threads, work)
            rows.append({"config": f"single process (CLI), {threads} thread(s)", "images": len(names),
                         "seconds": seconds, "images_per_second": len(names) / seconds, "cpu_seconds": cpu,
                         "images_per_cpu_second": len(names) / cpu})
        reference = ref
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False)
        identical = {}
        for workers in (1, 2):
            run, feats = _ray_run(images, model, workers, args.shard_size, work)
            identical[workers] = _identical(reference, feats)
            rows.append({"config": f"Ray, {workers} worker(s) x 1 thread", "images": run["images"],
                         "seconds": run["seconds"], "images_per_second": run["images"] / run["seconds"],
                         "cpu_seconds": run["cpu_seconds"],
                         "images_per_cpu_second": run["images"] / run["cpu_seconds"],
                         "identical_to_cli": f"{identical[workers]}/{len(names)}"})
        ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    one = next(r for r in rows if r["config"].startswith("Ray, 1"))["images_per_second"]
    two = next(r for r in rows if r["config"].startswith("Ray, 2"))["images_per_second"]
    per_core = next(r for r in rows if r["config"].startswith("Ray, 1"))["images_per_cpu_second"]
    load = os.getloadavg()
    report = {
        "images": len(names), "source": str(source), "shard_size": args.shard_size, "model": model.name,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "load_average_1_5_15": load},
        "rows": rows, "scaling_1_to_2_workers": two / one,
        # one single-threaded worker per core, each as fast as a worker's CPU time here says
        "projected_images_per_second_per_node": {f"{c} cores": per_core * c for c in (8, 16, 32)},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    lines = [f"Extraction throughput, {len(names)} photos of {source.name} (int8 ONNX Runtime, "
             f"{os.cpu_count()} cores, load average {load[0]:.1f} at the end)", "",
             "| configuration | images | wall s | images/s (wall) | CPU s | images per CPU-second | "
             "identical to CLI |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['images']} | {r['seconds']:.1f} | {r['images_per_second']:.1f} | "
                     f"{r['cpu_seconds']:.1f} | {r['images_per_cpu_second']:.1f} | "
                     f"{r.get('identical_to_cli', '-')} |")
    lines += ["", f"Scaling from 1 to 2 Ray workers (wall): x{two / one:.2f}. Projected per node (one "
                  "single-threaded worker per core, each at the images per CPU-second of one Ray worker): " +
              ", ".join(f"{k}: {v:.0f} images/s" for k, v in report["projected_images_per_second_per_node"].items())]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(v == len(names) for v in identical.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
