"""Matching against large maps of binary descriptors: recall@1 against exhaustive search and queries per second of
faiss binary indexes (flat, IVF, HNSW, multi-hash) at 10^5, 10^6 and 10^7 database descriptors.

    python benchmarks/bench_mapindex.py --images ../shared/data/train-images --out docs/mapindex

The map holds the real descriptors of our extractor (int8 ONNX model, shipped weights) on the first
``--map-images`` photos, filled up to each size with random descriptors of exactly 64 ones (as ours). Queries are
our descriptors on warped copies (random homographies, seeded) of ``--query-images`` of those photos, so each query
has a true correspondence in the map: "correct@1" counts queries whose nearest map entry is a keypoint of the
source photo within 3 px of the query's unwarped position. recall@1 counts queries whose nearest entry found by the
index is as near as the exhaustive one (ties equally good). Search runs single-threaded (faiss's OpenMP threads
stall when the CPU is shared); queries per second are per core, from the CPU time of the search (the machine may
be shared: wall time would also measure the neighbours). Build times are wall time. Writes <out>.json, <out>.md
and <out>.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

SIZES = (100_000, 1_000_000, 10_000_000)


def _homography(width: int, height: int, rng: np.random.Generator, shift: float = 0.12) -> np.ndarray:
    import cv2

    corners = np.float32([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]])
    moved = corners + rng.uniform(-shift, shift, (4, 2)).astype(np.float32) * np.float32([width, height])
    return cv2.getPerspectiveTransform(corners, moved)


def real_descriptors(images: list[Path], queries: int, seed: int):
    """Map rows of the photos, query rows of warped copies of the first ``queries`` photos, and the truth."""
    import cv2

    from zippypoint.extractor import ExtractorConfig
    from zippypoint.io import read_image
    from zippypoint.resolve import build_extractor

    extractor = build_extractor("zippypoint", "onnx-int8", config=ExtractorConfig(max_keypoints=1000), threads=1)
    rng = np.random.default_rng(seed)
    map_desc, map_image, map_xy = [], [], []
    q_desc, q_image, q_xy = [], [], []
    for i, path in enumerate(images):
        image = read_image(path)
        f = extractor.extract(image)
        map_desc.append(f["descriptors"])
        map_image.append(np.full(len(f["descriptors"]), i))
        map_xy.append(f["keypoints"])
        if i < queries:
            h, w = image.shape[:2]
            H = _homography(w, h, rng)
            warped = cv2.warpPerspective(image, H, (w, h), flags=cv2.INTER_LINEAR)
            g = extractor.extract(warped)
            back = cv2.perspectiveTransform(g["keypoints"].reshape(-1, 1, 2).astype(np.float64),
                                            np.linalg.inv(H)).reshape(-1, 2)
            q_desc.append(g["descriptors"])
            q_image.append(np.full(len(g["descriptors"]), i))
            q_xy.append(back)
    return (np.concatenate(map_desc), np.concatenate(map_image), np.concatenate(map_xy),
            np.concatenate(q_desc), np.concatenate(q_image), np.concatenate(q_xy))


def correct_at_1(ids: np.ndarray, real_rows: int, map_image, map_xy, q_image, q_xy, radius: float = 3.0) -> float:
    top = ids[:, 0]
    ok = (top >= 0) & (top < real_rows)
    hit = np.zeros(len(top), bool)
    rows = np.flatnonzero(ok)
    same = map_image[top[rows]] == q_image[rows]
    near = np.linalg.norm(map_xy[top[rows]] - q_xy[rows], axis=1) <= radius
    hit[rows] = same & near
    return float(hit.mean())


def configurations(size: int, hnsw_max: int, multihash_max: int):
    """(label, MapIndexConfig, [search parameter sets]) to run at ``size``."""
    from zippypoint.mapindex import MapIndexConfig, default_nlist

    nlist = default_nlist(size)
    out = [("ivf", MapIndexConfig(kind="ivf", nlist=nlist, train_size=65536),
            [{"nprobe": p} for p in (1, 4, 16, 64)])]
    if size <= hnsw_max:
        out.append(("hnsw", MapIndexConfig(kind="hnsw", hnsw_m=16, ef_construction=40),
                    [{"ef_search": e} for e in (16, 64, 256)]))
    if size <= multihash_max:
        # probing f flipped bits visits 1 + 16 (+ 120) buckets per table; measured 50 queries/s with exact
        # buckets already at 10^6 (16-bit substrings of 64-of-256 codes hold about 4 ones, so entries probably
        # crowd into few buckets), so flipped bits are probed only at 10^5 (and see --multihash-max)
        flips = (0, 1, 2) if size <= 100_000 else (0,)
        out.append(("multihash", MapIndexConfig(kind="multihash", nhash=16, hash_bits=16),
                    [{"nflip": f} for f in flips]))
    return out


def timed_search(index, queries: np.ndarray, k: int = 2):
    """Search with the CPU time it took (one faiss thread: the CPU time of the search itself, which a busy
    shared machine distorts much less than wall time)."""
    start = time.process_time()
    distances, ids = index.search(queries, k)
    return distances, ids, time.process_time() - start


def run(args) -> dict:
    import faiss

    from zippypoint.io import list_images
    from zippypoint.mapindex import BinaryMapIndex, MapIndexConfig, random_descriptors, recall_at_1

    faiss.omp_set_num_threads(1)
    photos = list_images(args.images)[: args.map_images]
    if len(photos) < args.map_images:
        raise SystemExit(f"need {args.map_images} photos under {args.images}, found {len(photos)}")
    t = time.perf_counter()
    map_desc, map_image, map_xy, q_desc, q_image, q_xy = real_descriptors(photos, args.query_images, args.seed)
    extract_seconds = time.perf_counter() - t
    rng = np.random.default_rng(args.seed)
    pick = np.sort(rng.choice(len(q_desc), min(args.queries, len(q_desc)), replace=False))
    q_desc, q_image, q_xy = q_desc[pick], q_image[pick], q_xy[pick]
    real = len(map_desc)
    print(f"{real} real map descriptors from {len(photos)} photos, {len(q_desc)} queries "
          f"({extract_seconds:.0f} s)", flush=True)
    filler = random_descriptors(max(args.sizes) - real, seed=args.seed + 1)
    results = []
    for size in sorted(args.sizes):
        data = np.concatenate([map_desc, filler[: size - real]])
        flat = BinaryMapIndex(MapIndexConfig(kind="flat"))
        t = time.perf_counter()
        flat.build(data)
        build = time.perf_counter() - t
        exact_d, exact_ids, seconds = timed_search(flat, q_desc)
        base = {"size": size, "real": real}
        results.append({**base, "index": "flat", "params": {}, "build_seconds": build,
                        "memory_mb": flat.memory_bytes() / 2**20, "qps": len(q_desc) / seconds, "recall_at_1": 1.0,
                        "correct_at_1": correct_at_1(exact_ids, real, map_image, map_xy, q_image, q_xy)})
        print(json.dumps(results[-1]), flush=True)
        for label, config, sweeps in configurations(size, args.hnsw_max, args.multihash_max):
            index = BinaryMapIndex(config)
            t = time.perf_counter()
            index.build(data)
            build = time.perf_counter() - t
            memory = index.memory_bytes() / 2**20
            for params in sweeps:
                index.set_search_params(**params)
                d, ids, seconds = timed_search(index, q_desc)
                results.append({**base, "index": label, "params": params, "build_seconds": build,
                                "memory_mb": memory, "qps": len(q_desc) / seconds,
                                "recall_at_1": recall_at_1(d, exact_d),
                                "correct_at_1": correct_at_1(ids, real, map_image, map_xy, q_image, q_xy)})
                print(json.dumps(results[-1]), flush=True)
            del index
        del flat, data
    return {"photos": len(photos), "query_photos": args.query_images, "queries": len(q_desc),
            "real_map_descriptors": real, "images": str(args.images), "seed": args.seed,
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                        "load_average_1_5_15": os.getloadavg(), "faiss_threads": 1},
            "skipped": {"hnsw": f"sizes above {args.hnsw_max} (build time)",
                        "multihash": f"sizes above {args.multihash_max}"},
            "results": results}


def write_outputs(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    lines = [f"Map matching, {report['queries']} queries (our descriptors on warped copies of "
             f"{report['query_photos']} photos) against {report['real_map_descriptors']} real map descriptors "
             f"from {report['photos']} photos plus random 64-of-256 filler; one faiss thread, "
             f"{report['machine']['cores']} cores, load average {report['machine']['load_average_1_5_15'][0]:.1f}.",
             "", "| map size | index | search setting | build s | memory MB | queries/s (1 core) | recall@1 | correct@1 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        setting = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "exhaustive"
        lines.append(f"| {r['size']:.0e} | {r['index']} | {setting} | {r['build_seconds']:.1f} | "
                     f"{r['memory_mb']:.0f} | {r['qps']:.0f} | {r['recall_at_1']:.3f} | {r['correct_at_1']:.3f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    sizes = sorted({r["size"] for r in report["results"]})
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4), squeeze=False)
    colors = {"flat": "black", "ivf": "tab:blue", "hnsw": "tab:orange", "multihash": "tab:green"}
    for ax, size in zip(axes[0], sizes, strict=True):
        for kind, color in colors.items():
            rows = [r for r in report["results"] if r["size"] == size and r["index"] == kind]
            if rows:
                ax.plot([r["recall_at_1"] for r in rows], [r["qps"] for r in rows], "o-", color=color, label=kind)
        ax.set_yscale("log")
        ax.set_xlabel("recall@1 (vs exhaustive)")
        ax.set_ylabel("queries / s (1 thread)")
        ax.set_title(f"{size:.0e} map descriptors")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="../shared/data/train-images", help="folder of photos")
    parser.add_argument("--map-images", type=int, default=64, help="photos whose descriptors form the real map")
    parser.add_argument("--query-images", type=int, default=16, help="of those, photos warped into queries")
    parser.add_argument("--queries", type=int, default=2000, help="query descriptors (a seeded sample)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="map sizes")
    parser.add_argument("--hnsw-max", type=int, default=1_000_000, help="largest map that gets an HNSW graph")
    parser.add_argument("--multihash-max", type=int, default=1_000_000, help="largest map for multi-hash")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/mapindex", help="output path without suffix")
    args = parser.parse_args(argv)
    report = run(args)
    write_outputs(report, Path(args.out))
    print(Path(args.out).with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
