"""Paired comparison of two methods in one ``zippypoint evaluate`` run, with a bootstrap interval.

    python -m zippypoint.eval.compare runs/eval-vp runs/eval-hp \
        --a openvino:zippypoint-slim-h64 --b openvino:zippypoint

A difference of 0.02 in C3 on 125 pairs can be one pair flipping near the 3 px threshold. This tool puts an
interval on it: for each metric it takes the per-pair difference (A - B) on the pairs both methods were scored on,
and resamples whole *sequences* with replacement (pairs of one sequence share a reference image and are not
independent), so the interval is a cluster bootstrap over sequences. It prints, per results file and metric, the
two means, their difference, the 95 % interval of the difference and the share of resamples in which A is worse than B.

Metrics (per-pair keys of ``results.json``): ``c3`` (C3 over the RANSAC orders where the run has them, else the
single-run C3), ``mma3`` (MMA at 3 px), ``rep``, ``loc`` (localisation error, lower is better). With fewer than five
sequences (hpatches-dev has two) a bootstrap over sequences has almost no distinct resamples, so the pairs are
resampled instead and the table says so; such an interval ignores that the pairs share images and is too narrow.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zippypoint.eval.report import read_results

METRICS = ("c3", "mma3", "rep", "loc")
LOWER_IS_BETTER = frozenset({"loc"})
MIN_CLUSTERS = 5  # below this many sequences the pairs, not the sequences, are resampled


@dataclass(frozen=True)
class Comparison:
    """The paired difference A - B of one metric on one results file."""

    data: str
    resolution: str
    metric: str
    pairs: int
    sequences: int
    unit: str  # what was resampled: "sequences", or "pairs" when there are fewer than MIN_CLUSTERS sequences
    mean_a: float
    mean_b: float
    difference: float
    low: float  # 95 % bootstrap interval of the difference
    high: float
    share_a_worse: float  # share of resamples in which A is worse than B (direction-aware)

    def verdict(self) -> str:
        """'A better', 'B better' or 'not separated', from the interval and the metric's direction."""
        if self.low > 0 or self.high < 0:
            a_higher = self.low > 0
            return "A better" if a_higher != (self.metric in LOWER_IS_BETTER) else "B better"
        return "not separated"


def _pair_value(pair: dict, metric: str, mma_index: int) -> float:
    if metric == "c3":
        value = pair.get("correctness_3_orders", pair.get("correctness_3"))
    elif metric == "mma3":
        value = pair["mma"][mma_index] if pair.get("mma") else None
    elif metric == "rep":
        value = pair.get("repeatability")
    elif metric == "loc":
        value = pair.get("localization_error")
    else:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    return math.nan if value is None else float(value)


def _method_pairs(results: dict, method: str, resolution: str) -> dict[str, dict]:
    entry = results.get("methods", {}).get(method)
    if entry is None:
        known = ", ".join(results.get("methods", {})) or "none"
        raise ValueError(f"method {method!r} is not in the results (methods: {known})")
    if "resolutions" not in entry:
        reason = entry.get("skipped") or entry.get("failed") or "no results"
        raise ValueError(f"method {method!r} has no results in this run: {reason}")
    if resolution not in entry["resolutions"]:
        raise ValueError(f"method {method!r} was not evaluated at {resolution} "
                         f"(resolutions: {', '.join(entry['resolutions'])})")
    return {p["pair"]: p for p in entry["resolutions"][resolution]["pairs"]}


def compare(results: dict, method_a: str, method_b: str, metrics=METRICS, resolution: str | None = None,
            resamples: int = 10000, seed: int = 0) -> list[Comparison]:
    """Paired cluster-bootstrap comparisons of ``method_a`` against ``method_b`` in one results dict."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if resolution is None:
        sizes = [r["size"] for r in results.get("protocol", {}).get("resolutions", [])]
        if not sizes:
            raise ValueError("the results name no resolution; pass one")
        resolution = sizes[0]
    thresholds = list(results.get("protocol", {}).get("mma_thresholds_px", range(1, 11)))
    mma_index = thresholds.index(3) if 3 in thresholds else 2
    pairs_a = _method_pairs(results, method_a, resolution)
    pairs_b = _method_pairs(results, method_b, resolution)
    if set(pairs_a) != set(pairs_b):
        raise ValueError(f"{method_a!r} and {method_b!r} were scored on different pairs "
                         f"({len(pairs_a)} against {len(pairs_b)}); compare results of one run")
    data = str(results.get("dataset", {}).get("path", "?"))
    rng = np.random.default_rng(seed)
    out = []
    for metric in metrics:
        rows = []
        for pair_id in sorted(pairs_a):
            a = _pair_value(pairs_a[pair_id], metric, mma_index)
            b = _pair_value(pairs_b[pair_id], metric, mma_index)
            if math.isfinite(a) and math.isfinite(b):
                rows.append((pair_id.split("/")[0], a, b))
        if not rows:
            out.append(Comparison(data, resolution, metric, 0, 0, "-", *([math.nan] * 6)))
            continue
        sequences = sorted({s for s, _, _ in rows})
        unit = "sequences" if len(sequences) >= MIN_CLUSTERS else "pairs"
        if unit == "sequences":
            index = {s: i for i, s in enumerate(sequences)}
            seq = np.array([index[s] for s, _, _ in rows])
        else:
            seq = np.arange(len(rows))
        clusters = int(seq.max()) + 1
        a = np.array([r[1] for r in rows])
        b = np.array([r[2] for r in rows])
        diff = a - b
        # per sequence: sum of differences and number of pairs, so a resample's mean is a ratio of sums
        sums = np.bincount(seq, weights=diff, minlength=clusters)
        counts = np.bincount(seq, minlength=clusters).astype(float)
        draws = rng.integers(0, clusters, size=(resamples, clusters))
        boot = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
        low, high = np.quantile(boot, [0.025, 0.975])
        out.append(Comparison(data, resolution, metric, len(rows), len(sequences), unit, float(a.mean()),
                              float(b.mean()), float(diff.mean()), float(low), float(high),
                              float(np.mean(boot < 0) if metric not in LOWER_IS_BETTER else np.mean(boot > 0))))
    return out


def markdown(comparisons: list[Comparison], method_a: str, method_b: str) -> str:
    lines = [f"A = `{method_a}`, B = `{method_b}`; 95 % bootstrap interval of A - B (resampled: sequences, or "
             f"pairs where a set has fewer than {MIN_CLUSTERS} sequences).",
             "", "| data | size | metric | pairs (sequences) | resampled | A | B | A - B | 95 % interval | A worse in "
             "| verdict |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        if c.pairs == 0:
            lines.append(f"| {Path(c.data).name} | {c.resolution} | {c.metric} | 0 | - | - | - | - | - | - | no pairs |")
            continue
        lines.append(f"| {Path(c.data).name} | {c.resolution} | {c.metric} | {c.pairs} ({c.sequences}) | {c.unit} | "
                     f"{c.mean_a:.3f} | {c.mean_b:.3f} | {c.difference:+.3f} | [{c.low:+.3f}, {c.high:+.3f}] | "
                     f"{c.share_a_worse:.0%} | {c.verdict()} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="`zippypoint evaluate` output folders (or results.json files)")
    parser.add_argument("--a", required=True, help="method A, as named in the results")
    parser.add_argument("--b", required=True, help="method B, as named in the results")
    parser.add_argument("--metrics", default=",".join(METRICS), help=f"comma-separated, from {', '.join(METRICS)}")
    parser.add_argument("--resolution", help="WxH (default: each run's first)")
    parser.add_argument("--resamples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    try:
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
        comparisons = []
        for path in args.results:
            comparisons += compare(read_results(path), args.a, args.b, metrics, args.resolution, args.resamples, args.seed)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = markdown(comparisons, args.a, args.b)
    print(table, end="")
    if args.out:
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
