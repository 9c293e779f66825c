"""``zippypoint search``: the lean-topology search (graph features, clustering, latency on the real runtimes,
optional short-training proxy) and its report (table + latency-against-accuracy figure with the Pareto front)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_OUT = Path("runs/search")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from zippypoint.data_paths import data_path

    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"work and report folder (default: {DEFAULT_OUT}); "
                   "results.json there is reused, so an interrupted search resumes")
    p.add_argument("--clusters", type=int, default=10, help="clusters of similar graphs, one representative each "
                   "(default: 10; the paper and the lean preset always represent theirs)")
    p.add_argument("--runs", type=int, default=10, help="timed runs per runtime and size (default: 10)")
    p.add_argument("--threads", type=int, default=1, help="inference threads while timing (default: 1)")
    p.add_argument("--calibration", type=Path, default=data_path("train-images"),
                   help="photos for the int8 calibration of each candidate's export")
    p.add_argument("--data", type=Path, default=data_path("train-images"), help="training photos for the proxy")
    p.add_argument("--hpatches", type=Path, default=data_path("hpatches-dev"), help="HPatches-layout proxy set")
    p.add_argument("--proxy-steps", type=int, default=0,
                   help="short full-precision training steps per representative (0 = no accuracy proxy)")
    p.add_argument("--proxy-minutes", type=float, default=None, help="wall-time cap per proxy training")
    p.add_argument("--docs", type=Path, default=None,
                   help="also write the table and figure as <docs>/search.md body and <docs>/search.png")


def run(args: argparse.Namespace) -> int:
    from zippypoint.search.report import latency_accuracy_figure, markdown_table
    from zippypoint.search.runner import run_search

    if args.clusters < 1 or args.runs < 1 or args.threads < 1 or args.proxy_steps < 0:
        raise SystemExit("--clusters, --runs and --threads must be >= 1, --proxy-steps >= 0")
    result = run_search(args.out, calibration_dir=args.calibration, clusters=args.clusters, runs=args.runs,
                        threads=args.threads, data=args.data, hpatches=args.hpatches, proxy_steps=args.proxy_steps,
                        proxy_minutes=args.proxy_minutes)
    table = markdown_table(result["candidates"])
    (args.out / "search_table.md").write_text(table + "\n")
    figure = latency_accuracy_figure(result["candidates"], args.out / "search.png")
    (args.out / "search.json").write_text(json.dumps(result, indent=1, sort_keys=True))
    if args.docs is not None:
        args.docs.mkdir(parents=True, exist_ok=True)
        (args.docs / "search_table.md").write_text(table + "\n")
        latency_accuracy_figure(result["candidates"], args.docs / "search.png")
    print(f"{len(result['candidates'])} candidates, {result['clusters']} clusters, representatives: "
          f"{', '.join(result['representatives'])}")
    print(f"wrote {args.out / 'search_table.md'}, {figure}, {args.out / 'search.json'}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("search", help="lean-topology search: latency on the real runtimes, Pareto front",
                              description=__doc__)
    add_arguments(p)
    p.set_defaults(func=run)
