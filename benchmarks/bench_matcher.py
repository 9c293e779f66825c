"""Mutual nearest-neighbour matching of 256-bit descriptors: both backends of ours against OpenCV.

    python benchmarks/bench_matcher.py --sizes 1024 2048 4096 --repeats 21 --json matcher.json

The throughput table of ``zippypoint benchmark`` (``zippypoint.bench.matching``, timed with
``zippypoint.timing``) with more choices: each backend of ``match_hamming`` on its own (faiss popcount,
numpy BLAS) and, with ``--faiss-knn``, plain faiss k-NN search. Every matcher runs on the same descriptors
(exactly 64 of 256 bits set; a share of the second set are perturbed copies of the first, so true matches
exist). Prints a Markdown table of median and p90 milliseconds, the speed-up over
``cv2.BFMatcher(NORM_HAMMING, crossCheck=True)`` and the number of matches; matchers with the same
semantics must return the same pairs (the faiss k-NN search leaves ties unspecified, so it may differ).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import numpy as np

from zippypoint.bench.environment import capture_environment
from zippypoint.bench.matching import default_matchers, matching_throughput
from zippypoint.binary_desc.matcher import faiss_available


def faiss_knn_mutual(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Plain faiss exhaustive search, k=1 each way, mutual check; its choice among ties is unspecified."""
    import faiss

    _, fwd = faiss.knn_hamming(a, b, 1)
    _, bwd = faiss.knn_hamming(b, a, 1)
    fwd, bwd = fwd[:, 0], bwd[:, 0]
    rows = np.flatnonzero(bwd[fwd] == np.arange(len(a)))
    return np.stack([rows, fwd[rows]], axis=1)


def matchers(with_faiss_knn: bool) -> Callable[[], dict[str, Callable]]:
    backends = (("faiss",) if faiss_available() else ()) + ("numpy",)

    def table() -> dict[str, Callable]:
        out = default_matchers(backends)
        if with_faiss_knn and faiss_available():
            out["faiss knn_hamming k=1 both ways, mutual (no tie rule)"] = faiss_knn_mutual
        return out

    return table


def markdown(rows: list[dict]) -> str:
    lines = [
        "| n x n | matcher | median ms | p90 ms | speed-up vs OpenCV | matches | same pairs as OpenCV |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        same = "-" if r["same_pairs_as_opencv"] is None else ("yes" if r["same_pairs_as_opencv"] else "NO")
        lines.append(f"| {r['n']} | {r['matcher']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | "
                     f"{r['speedup_vs_opencv']:.2f}x | {r['matches']} | {same} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--overlap", type=float, default=0.5, help="share of desc2 that are perturbed desc1 rows")
    parser.add_argument("--swaps", type=int, default=8, help="ones moved per perturbed descriptor")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--faiss-knn", action="store_true",
                        help="also time plain faiss k-NN search (its OpenMP threads slow the others on a busy CPU)")
    parser.add_argument("--json", metavar="OUT", help="also write the results and environment as JSON")
    args = parser.parse_args()
    if args.repeats < 1 or any(n < 2 for n in args.sizes) or not 0 <= args.overlap <= 1:
        parser.error("need --repeats >= 1, --sizes >= 2 and 0 <= --overlap <= 1")

    rows = matching_throughput(args.sizes, runs=args.repeats, seed=args.seed, matchers=matchers(args.faiss_knn),
                               overlap=args.overlap, swaps=args.swaps)
    ratio_rows = {}
    for r in rows:
        if "ratio" in r["matcher"]:
            ratio_rows.setdefault(r["n"], []).append(r["matches"])
    if any(len(set(counts)) > 1 for counts in ratio_rows.values()):
        raise SystemExit("faiss and numpy backends disagree with the ratio test")
    env = capture_environment(None)
    print(markdown(rows))
    print(f"\n{args.repeats} repeats; load average {env.get('load_average_start')}; {env.get('logical_cores')} CPUs")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"results": rows, "environment": env, "args": vars(args)}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
