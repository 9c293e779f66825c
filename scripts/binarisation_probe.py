"""How much of the 64-of-256 binarisation loss a transform before the top-k could recover.

    python scripts/binarisation_probe.py --preset zippypoint-slim-h64 --weights shipped \
        --data DEV/viewpoint --data ../shared/data/hpatches-dev --photos ../shared/data/train-images --out runs/probe

One network run per image; the same keypoints (the deployed post-processing) get several descriptor codes, each
matched by mutual nearest neighbour and scored with the HPatches protocol (320x240, top-300, C3 over RANSAC
orders, MMA@3, the descriptor share of the misses):

- ``top64``: the deployed code (the 64 largest of the 256 raw entries);
- ``top96`` / ``top128``: more ones per code (not the deployed format);
- ``centred_top64`` / ``standardised_top64``: the top 64 after subtracting the per-channel mean (and dividing by
  the per-channel standard deviation). Both are affine maps that could be folded into the descriptor conv;
- ``random_projection_top64_<seed>``: the top 64 of a random Gaussian projection of the raw descriptor's leading
  principal components (as many as it has ones), i.e. what an untrained projection of the same subspace gives;
- ``float``: the unit-length raw descriptors, matched by L2 (the upper bound the code approximates).

Channel statistics and principal components come from photos of the training split of ``--photos``, never from the
development sets. Writes ``probe.json`` and ``probe.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ONES = 64
SIZE = (320, 240)
TOP_K = 300


def features_and_raw(model, image_bgr: np.ndarray, max_keypoints: int) -> tuple[dict, np.ndarray]:
    """The deployed features of one image at ``SIZE`` and the raw descriptors (float64) at their keypoints."""
    from zippypoint.eval.hpatches import resize_image
    from zippypoint.postprocess import PostprocessConfig, dense_to_features, sample_descriptors
    from zippypoint.train.diagnostics import dense_maps

    dense = dense_maps(model, resize_image(image_bgr, SIZE))[0]
    feats = dense_to_features(dense["scores"], dense["keypoints"], dense["descriptors"], image_size=SIZE,
                              config=PostprocessConfig(max_keypoints=max_keypoints))
    return feats, sample_descriptors(dense["descriptors"], feats["keypoints"], SIZE).astype(np.float64)


def training_descriptors(model, photos: str | Path, count: int) -> np.ndarray:
    """Raw descriptors at the top-``TOP_K`` keypoints of ``count`` training-split photos (evenly spread)."""
    from zippypoint.eval.hpatches import read_image_bgr
    from zippypoint.io import list_images
    from zippypoint.train.split import split_dev

    train = split_dev(list_images(photos))[0]
    if not train:
        raise ValueError(f"no training-split photos under {photos}")
    step = max(1, len(train) // count)
    return np.concatenate([features_and_raw(model, read_image_bgr(path), TOP_K)[1] for path in train[::step][:count]])


def code_variants(stats: dict, seeds=(0, 1, 2)):
    """{name: raw [N, D] -> (kind, descriptors)} for every code of the module docstring."""
    from zippypoint.binary_desc.binarize import topk_binarize
    from zippypoint.binary_desc.packing import pack_bits

    mean, std, components = stats["mean"], stats["std"], stats["components"]
    projections = {s: np.random.default_rng(s).standard_normal((len(components), components.shape[1]))
                   for s in seeds}

    def top(x, k=ONES):
        return "binary", pack_bits(topk_binarize(np.ascontiguousarray(x), k))

    variants = {
        "top64": lambda r: top(r),
        "top96": lambda r: top(r, 96),
        "top128": lambda r: top(r, 128),
        "centred_top64": lambda r: top(r - mean),
        "standardised_top64": lambda r: top((r - mean) / std),
        **{f"random_projection_top64_{s}": (lambda r, g=g: top((r - mean) @ components.T @ g))
           for s, g in projections.items()},
        "float": lambda r: ("float", (r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12))
                            .astype(np.float32)),
    }
    return variants


def probe_set(model, root: str | Path, variants: dict, ransac_orders: int) -> dict:
    """Protocol means of every code on one HPatches-layout set."""
    from zippypoint.eval.hpatches import find_sequences, read_image_bgr, scale_homography
    from zippypoint.eval.protocol import MMA_THRESHOLDS, evaluate_pair
    from zippypoint.methods.registry import candidate_budget

    i3 = list(MMA_THRESHOLDS).index(3)
    budget = candidate_budget("zippypoint", TOP_K)
    rows: dict[str, list] = {name: [] for name in variants}
    for seq in find_sequences(root):
        feats, codes, sizes = {}, {}, {}
        for k, path in seq.images.items():
            image = read_image_bgr(path)
            sizes[k] = (image.shape[1], image.shape[0])
            feats[k], raw = features_and_raw(model, image, budget)
            codes[k] = {name: make(raw) for name, make in variants.items()}
        for pair in seq.pairs():
            h = scale_homography(pair.homography, sizes[1], sizes[pair.k], SIZE)
            for name in variants:
                (kind, d1), (_, d2) = codes[1][name], codes[pair.k][name]
                v = evaluate_pair({**feats[1], "descriptors": d1}, {**feats[pair.k], "descriptors": d2}, h, SIZE,
                                  TOP_K, kind, ransac_orders=ransac_orders)
                rows[name].append((v["correctness_3_orders"], v["mma"][i3], v["wrong_matches"]["descriptor"]))
    out = {}
    for name, r in rows.items():
        a = np.asarray(r, np.float64)
        if len(a):
            out[name] = {"pairs": len(a), "correctness_3_orders": float(a[:, 0].mean()), "mma_3": float(a[:, 1].mean()),
                         "wrong_descriptor": float(a[:, 2].mean())}
    return out


def main(argv=None) -> int:
    from zippypoint.binary_desc.binarize import topk_binarize
    from zippypoint.train.diagnostics import load_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="zippypoint-slim-h64")
    parser.add_argument("--weights", default="shipped", help="safetensors file or 'shipped'")
    parser.add_argument("--data", action="append", required=True, help="HPatches-layout set (repeatable)")
    parser.add_argument("--photos", required=True, help="photo folder whose training split gives the statistics")
    parser.add_argument("--photo-count", type=int, default=60)
    parser.add_argument("--ransac-orders", type=int, default=5)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    model = load_model(args.preset, args.weights)
    if model.config.descriptor_ones != ONES:
        raise ValueError(f"{args.preset} has {model.config.descriptor_ones} ones per code; the probe assumes {ONES}")
    train = training_descriptors(model, args.photos, args.photo_count)
    mean = train.mean(0)
    _, sv, vt = np.linalg.svd(train - mean, full_matrices=False)
    stats = {"mean": mean, "std": train.std(0) + 1e-6, "components": vt[:ONES]}
    bits = topk_binarize(train, ONES)
    freq = bits.mean(0)
    report = {
        "preset": args.preset, "weights": args.weights, "resolution": list(SIZE), "top_k": TOP_K,
        "training_descriptors": len(train),
        "variance_in_leading_components": float((sv[:ONES] ** 2).sum() / (sv ** 2).sum()),
        "bit_frequency": {"min": float(freq.min()), "median": float(np.median(freq)), "max": float(freq.max())},
        "sets": {},
    }
    variants = code_variants(stats)
    for root in args.data:
        report["sets"][str(root)] = probe_set(model, root, variants, args.ransac_orders)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.json").write_text(json.dumps(report, indent=2))
    lines = [f"# Binarisation probe: {args.preset} ({args.weights})", "",
             f"{len(train)} training-split descriptors: {report['variance_in_leading_components']:.3f} of their variance "
             f"in the leading {ONES} principal components; bit frequency of the deployed code min / median / max "
             f"{freq.min():.3f} / {np.median(freq):.3f} / {freq.max():.3f}.", ""]
    for root, res in report["sets"].items():
        lines += [f"## {root}", "", f"| code | pairs | C3 over {args.ransac_orders} orders | MMA@3 | wrong: descriptor |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {r['pairs']} | {r['correctness_3_orders']:.3f} | {r['mma_3']:.3f} | "
                  f"{r['wrong_descriptor']:.3f} |" for name, r in res.items()]
        lines.append("")
    (out / "probe.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
