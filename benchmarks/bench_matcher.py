"""Mutual nearest-neighbour matching of 256-bit descriptors: ours against OpenCV and plain numpy.

    python benchmarks/bench_matcher.py --sizes 1024 2048 4096 --repeats 21 --json matcher.json

Every method runs on the same descriptors (each with exactly 64 of 256 bits set; a share of the
second set are perturbed copies of the first, so true matches exist). Repeats are interleaved
across methods so that load from other processes spreads evenly. Prints a Markdown table of
median and p90 milliseconds, the speed-up over ``cv2.BFMatcher(NORM_HAMMING, crossCheck=True)``
and the number of matches; methods with the same semantics must return the same pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable

import cv2
import numpy as np

from zippypoint.bench.matching import as_pairs, make_pair, numpy_bruteforce
from zippypoint.binary_desc.matcher import faiss_available, match_hamming


def faiss_raw_mutual(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Plain faiss exhaustive search, k=1 each way, mutual check; its choice among ties is unspecified."""
    import faiss

    _, fwd = faiss.knn_hamming(a, b, 1)
    _, bwd = faiss.knn_hamming(b, a, 1)
    fwd, bwd = fwd[:, 0], bwd[:, 0]
    rows = np.flatnonzero(bwd[fwd] == np.arange(len(a)))
    return np.stack([rows, fwd[rows]], axis=1)


def opencv_crosscheck(matcher: cv2.BFMatcher) -> Callable[[np.ndarray, np.ndarray], list]:
    return lambda a, b: matcher.match(a, b)


def methods(with_faiss_knn: bool) -> dict[str, Callable]:
    table: dict[str, Callable] = {}
    backends = (["faiss"] if faiss_available() else []) + ["numpy"]
    for backend in backends:
        table[f"ours {backend}, mutual + ratio 0.95"] = lambda a, b, be=backend: match_hamming(
            a, b, ratio=0.95, backend=be
        )
        table[f"ours {backend}, mutual"] = lambda a, b, be=backend: match_hamming(
            a, b, ratio=None, backend=be
        )
    if with_faiss_knn and faiss_available():
        table["faiss knn_hamming k=1 both ways, mutual (no tie rule)"] = faiss_raw_mutual
    table["OpenCV BFMatcher crossCheck"] = opencv_crosscheck(cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True))
    table["numpy bitwise_count brute force, mutual"] = numpy_bruteforce
    return table


def bench_size(n: int, repeats: int, args: argparse.Namespace) -> list[dict]:
    a, b = make_pair(n, args.overlap, args.swaps, args.seed)
    table = methods(args.faiss_knn)
    results = {name: fn(a, b) for name, fn in table.items()}  # also warms up caches and thread pools
    times: dict[str, list[float]] = {name: [] for name in table}
    for _ in range(repeats):
        for name, fn in table.items():
            t0 = time.perf_counter()
            fn(a, b)
            times[name].append((time.perf_counter() - t0) * 1e3)

    reference = as_pairs(results["OpenCV BFMatcher crossCheck"])
    opencv_median = float(np.median(times["OpenCV BFMatcher crossCheck"]))
    rows = []
    for name in table:
        pairs = as_pairs(results[name])
        same_semantics = "ratio" not in name
        rows.append(
            {
                "n": n,
                "method": name,
                "median_ms": float(np.median(times[name])),
                "p90_ms": float(np.percentile(times[name], 90)),
                "speedup_vs_opencv": opencv_median / float(np.median(times[name])),
                "matches": len(pairs),
                "same_pairs_as_opencv": bool(np.array_equal(pairs, reference)) if same_semantics else None,
            }
        )
    ratio_results = [as_pairs(results[name]) for name in table if "ratio" in name]
    if len(ratio_results) == 2 and not np.array_equal(*ratio_results):
        raise SystemExit(f"n={n}: faiss and numpy backends disagree with the ratio test")
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| n x n | method | median ms | p90 ms | speed-up vs OpenCV | matches | same pairs as OpenCV |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        same = "-" if r["same_pairs_as_opencv"] is None else ("yes" if r["same_pairs_as_opencv"] else "NO")
        lines.append(
            f"| {r['n']} | {r['method']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | "
            f"{r['speedup_vs_opencv']:.2f}x | {r['matches']} | {same} |"
        )
    return "\n".join(lines)


def environment() -> dict:
    env = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "machine": platform.machine(),
    }
    if faiss_available():
        import faiss

        env["faiss"] = faiss.__version__
        env["faiss_threads"] = faiss.omp_get_max_threads()
    env["opencv_threads"] = cv2.getNumThreads()
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument(
        "--overlap", type=float, default=0.5, help="share of desc2 that are perturbed desc1 rows"
    )
    parser.add_argument("--swaps", type=int, default=8, help="ones moved per perturbed descriptor")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--faiss-knn",
        action="store_true",
        help="also time plain faiss k-NN search (its OpenMP threads slow the other methods on a busy CPU)",
    )
    parser.add_argument("--json", metavar="OUT", help="also write the results and environment as JSON")
    args = parser.parse_args()
    if args.repeats < 1 or any(n < 2 for n in args.sizes) or not 0 <= args.overlap <= 1:
        parser.error("need --repeats >= 1, --sizes >= 2 and 0 <= --overlap <= 1")

    rows = [row for n in args.sizes for row in bench_size(n, args.repeats, args)]
    env = environment()
    print(markdown(rows))
    print(f"\n{args.repeats} repeats; load average {env['load_average']}; {env['cpu_count']} CPUs")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"results": rows, "environment": env, "args": vars(args)}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
