"""Model-selection diagnostics for training runs: development-set evaluation of checkpoints (with and
without a post-processing dedupe), the sub-pixel shift test and the rotation sweep.

Command line (JSON + Markdown under --out)::

    python -m zippypoint.train.diagnostics dev --weights W.safetensors --data SET [--data SET2 ...] --out DIR
    python -m zippypoint.train.diagnostics shift --weights W.safetensors --images PHOTOS --out DIR
    python -m zippypoint.train.diagnostics rotation --methods zippypoint,sift --images PHOTOS --out DIR

``--weights`` may repeat (checkpoint selection); ``shipped`` names the shipped weights of the preset.
Shift and rotation tests use the held-out development photos of ``--images`` (``zippypoint.train.split``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from zippypoint.model.registry import DEFAULT_PRESET

SHIFTS = (0.5, 1.0, 2.0, 4.0)
ANGLES = (0, 10, 20, 30, 40, 60)


def load_model(preset: str, weights: str):
    """A preset in eval mode with ``weights`` (a safetensors file, or ``shipped``)."""
    from zippypoint.model.registry import create_model, load_weights

    if weights == "shipped":
        return create_model(preset, pretrained=True).eval()
    model = create_model(preset)
    load_weights(model, weights)
    return model.eval()


def dense_maps(model, image_bgr: np.ndarray) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
    """The network's dense maps for one BGR uint8 image whose sides are multiples of 8; and its (W, H)."""
    import torch

    from zippypoint.io import to_float_channels

    # the deployed pre-processing (gray networks: 8-bit luma), so selection sees what the exports see
    x = torch.from_numpy(to_float_channels(image_bgr, model.config.in_channels))[None]
    with torch.no_grad():
        out = model(x)
    return {k: v[0].numpy() for k, v in out.items()}, (image_bgr.shape[1], image_bgr.shape[0])


def features_from_dense(dense: dict, size: tuple[int, int], max_keypoints: int, dedupe_radius: float = 0.0,
                        descriptors: str = "binary") -> dict:
    """Features of the deployed post-processing; ``descriptors="float"`` replaces the packed 64-of-256 codes by
    the unit-length raw descriptors the same network samples at the same keypoints (the binarisation ablation)."""
    from zippypoint.postprocess import PostprocessConfig, dense_to_features, sample_descriptors

    cfg = PostprocessConfig(max_keypoints=max_keypoints, dedupe_radius=dedupe_radius)
    feats = dense_to_features(dense["scores"], dense["keypoints"], dense["descriptors"], image_size=size, config=cfg)
    if descriptors == "float":
        raw = sample_descriptors(dense["descriptors"], feats["keypoints"], size)
        feats = {**feats, "descriptors": raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)}
    return feats


def near_duplicate_share(keypoints: np.ndarray, radius: float = 2.0) -> float:
    """Share of keypoints with another keypoint closer than ``radius`` px."""
    if len(keypoints) < 2:
        return 0.0
    d = np.linalg.norm(keypoints[:, None] - keypoints[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return float((d.min(1) < radius).mean())


def evaluate_dev(model, root: str | Path, size=(320, 240), top_k: int = 300, dedupe=(0.0, 2.0),
                 descriptors: str = "binary", ransac_orders: int = 1) -> dict:
    """HPatches-protocol means on ``root`` for each dedupe radius (network run once per image), plus the
    share of near-duplicate keypoints and distinct correct matches (MMA@3 x matches) per pair.
    ``descriptors``: "binary" (deployed) or "float" (raw descriptors of the same network, L2 matching).
    ``ransac_orders``: C3 is also averaged over that many orders of the matches given to RANSAC
    (``correctness_3_orders``; on a hundred pairs one order's C3 moves by several points with the order alone)."""
    return evaluate_dev_kinds(model, root, size, top_k, dedupe, (descriptors,), ransac_orders)[descriptors]


def evaluate_dev_kinds(model, root: str | Path, size=(320, 240), top_k: int = 300, dedupe=(0.0, 2.0),
                       kinds=("binary",), ransac_orders: int = 1) -> dict:
    """``evaluate_dev`` for several descriptor kinds from one network run per image: {kind: {dedupe_r: ...}}."""
    from zippypoint.eval.hpatches import find_sequences, read_image_bgr, resize_image, scale_homography
    from zippypoint.eval.protocol import MMA_THRESHOLDS, WRONG_MATCH_CAUSES, evaluate_pair
    from zippypoint.methods.registry import candidate_budget

    i3 = list(MMA_THRESHOLDS).index(3)
    budget = candidate_budget("zippypoint", top_k)
    settings = [(kind, r) for kind in kinds for r in dedupe]
    rows: dict[tuple, list] = {s: [] for s in settings}
    dups: dict[tuple, list] = {s: [] for s in settings}
    for seq in find_sequences(root):
        dense, sizes = {}, {}
        for k, path in seq.images.items():
            image = read_image_bgr(path)
            sizes[k] = (image.shape[1], image.shape[0])
            dense[k] = dense_maps(model, resize_image(image, size))[0]
        for kind, r in settings:
            feats = {k: features_from_dense(d, size, budget, r, kind) for k, d in dense.items()}
            dups[kind, r].append(near_duplicate_share(feats[1]["keypoints"][:top_k]))
            for pair in seq.pairs():
                h = scale_homography(pair.homography, sizes[1], sizes[pair.k], size)
                v = evaluate_pair(feats[1], feats[pair.k], h, size, top_k, kind, ransac_orders=ransac_orders)
                rows[kind, r].append((v["repeatability"], v["localization_error"], v["correctness_3"],
                                      v["mma"][i3], v["mma"][i3] * v["matches"], v["correctness_3_orders"],
                                      *(v["wrong_matches"][cause] for cause in WRONG_MATCH_CAUSES)))
    out: dict[str, dict] = {kind: {} for kind in kinds}
    for kind, r in settings:
        a = np.asarray(rows[kind, r], np.float64)
        if not len(a):
            continue
        out[kind][f"dedupe_{r:g}"] = {
            "pairs": len(a), "repeatability": float(np.nanmean(a[:, 0])), "localization_error": float(np.nanmean(a[:, 1])),
            "correctness_3": float(a[:, 2].mean()), "correctness_3_orders": float(a[:, 5].mean()),
            "ransac_orders": ransac_orders, "mma_3": float(a[:, 3].mean()),
            "correct_matches": float(a[:, 4].mean()), "near_duplicates_2px": float(np.mean(dups[kind, r])),
            "wrong_matches": {cause: float(a[:, 6 + i].mean()) for i, cause in enumerate(WRONG_MATCH_CAUSES)},
        }
    return out


def dev_photos(images: str | Path, count: int, size=(320, 240)) -> list[np.ndarray]:
    """The first ``count`` readable development photos (fixed split), resized to ``size``."""
    from zippypoint.eval.hpatches import read_image_bgr, resize_image
    from zippypoint.io import list_images
    from zippypoint.train.split import split_dev

    photos = []
    for p in split_dev(list_images(images))[1]:
        try:
            photos.append(resize_image(read_image_bgr(p), size))
        except Exception:  # unreadable photo: the test uses the others
            continue
        if len(photos) == count:
            break
    return photos


def shift_test(model, photos: list[np.ndarray], shifts=SHIFTS, top_k: int = 300) -> dict:
    """Mean keypoint error (px) after shifting each photo by s px along x and y (sub-pixel warp).

    For the top-k keypoints of the original moved by the shift, the distance to the nearest keypoint of
    the shifted image, over those within 3 px; also the share of saturated offsets (|tanh| > 0.99)."""
    import cv2

    result = {}
    sat = []
    for s in shifts:
        errors = []
        for img in photos:
            h, w = img.shape[:2]
            m = np.float32([[1, 0, s], [0, 1, s]])
            moved = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
            d1, size = dense_maps(model, img)
            d2, _ = dense_maps(model, moved)
            f1, f2 = features_from_dense(d1, size, top_k), features_from_dense(d2, size, top_k)
            if s == shifts[0]:
                hc, wc = d1["scores"].shape[-2:]
                centre = np.stack(np.meshgrid(np.arange(wc) * 8 + 3.5, np.arange(hc) * 8 + 3.5))
                t = (d1["keypoints"] - centre) / 7.0
                top = np.argsort(-d1["scores"].reshape(-1))[:top_k]
                sat.append(float((np.abs(t.reshape(2, -1)[:, top]) > 0.99).any(0).mean()))
            p1 = f1["keypoints"] + s
            keep = (p1[:, 0] < w - 8) & (p1[:, 1] < h - 8)
            if not keep.any() or not len(f2["keypoints"]):
                continue
            d = np.linalg.norm(p1[keep][:, None] - f2["keypoints"][None], axis=-1).min(1)
            errors.extend(d[d < 3].tolist())
        result[f"{s:g}"] = float(np.mean(errors)) if errors else None
    return {"keypoint_error_px": result, "saturated_offsets": float(np.mean(sat)) if sat else None}


def rotation_sweep(method, photos: list[np.ndarray], angles=ANGLES) -> dict:
    """MMA@3 of ``method`` (loaded) between each photo and the photo rotated about its centre by each angle."""
    import cv2

    out = {}
    for a in angles:
        correct, total = 0, 0
        for img in photos:
            h, w = img.shape[:2]
            m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), a, 1.0)
            rot = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            f1, f2 = method(img), method(rot)
            matches = method.match(f1, f2)
            if not len(matches):
                continue
            p1 = f1["keypoints"][matches[:, 0]].astype(np.float64)
            proj = p1 @ m[:, :2].T + m[:, 2]
            inside = (proj[:, 0] >= 0) & (proj[:, 0] <= w - 1) & (proj[:, 1] >= 0) & (proj[:, 1] <= h - 1)
            err = np.linalg.norm(proj - f2["keypoints"][matches[:, 1]], axis=1)[inside]
            correct += int((err < 3).sum())
            total += int(inside.sum())
        out[str(a)] = correct / total if total else 0.0
    return out


def _write(out: Path, name: str, data: dict, lines: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    from tqdm import tqdm

    parser = argparse.ArgumentParser(prog="python -m zippypoint.train.diagnostics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("test", choices=("dev", "shift", "rotation"))
    parser.add_argument("--preset", default=DEFAULT_PRESET)
    parser.add_argument("--weights", action="append", default=None, help="safetensors file or 'shipped' (repeatable)")
    parser.add_argument("--data", action="append", default=[], help="HPatches-layout folder (dev; repeatable)")
    parser.add_argument("--images", default="../shared/data/train-images", help="photo folder (shift, rotation)")
    parser.add_argument("--photos", type=int, default=20, help="development photos used (shift, rotation)")
    parser.add_argument("--methods", default="zippypoint,sift", help="rotation: methods of zippypoint.methods")
    parser.add_argument("--descriptors", choices=("binary", "float"), default="binary",
                        help="dev: deployed 64-of-256 codes, or the same network's float descriptors")
    parser.add_argument("--dedupe", default="0,2", help="dev: dedupe radii (px) to compare")
    parser.add_argument("--resolution", default="320x240:300", help="WxH:TOPK")
    parser.add_argument("--ransac-orders", type=int, default=12,
                        help="dev: C3 also averaged over this many RANSAC orders of the matches (C3/N column)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    wh, _, k = args.resolution.partition(":")
    size = tuple(int(v) for v in wh.split("x"))
    top_k = int(k or 300)
    weights = args.weights or ["shipped"]
    # every input is checked before the first (minutes long) evaluation, so a typo loses nothing
    missing = [w for w in weights if w != "shipped" and not Path(w).is_file()]
    missing += [str(d) for d in (args.data if args.test == "dev" else []) if not Path(d).is_dir()]
    if missing:
        parser.error(f"not found: {', '.join(missing)}")
    if args.test == "dev":
        if args.ransac_orders < 1:
            parser.error(f"--ransac-orders must be >= 1, got {args.ransac_orders}")
        data, lines = {}, [f"| weights | set | dedupe px | rep | loc err | C3 | C3/{args.ransac_orders} | MMA@3 | "
                           "wrong: descriptor / detector | correct matches | dups<2px |",
                           "|---|---|---|---|---|---|---|---|---|---|---|"]
        for w in tqdm(weights, desc="weights"):
            model = load_model(args.preset, w)
            for root in args.data:
                res = evaluate_dev(model, root, size, top_k, tuple(float(r) for r in args.dedupe.split(",")),
                                   args.descriptors, args.ransac_orders)
                data.setdefault(w, {})[str(root)] = res
                for key, v in res.items():
                    lines.append(f"| {Path(w).name} | {Path(root).name} | {key.split('_')[1]} | {v['repeatability']:.3f} | "
                                 f"{v['localization_error']:.3f} | {v['correctness_3']:.3f} | "
                                 f"{v['correctness_3_orders']:.3f} | {v['mma_3']:.3f} | "
                                 f"{v['wrong_matches']['descriptor']:.3f} / {v['wrong_matches']['detector']:.3f} | "
                                 f"{v['correct_matches']:.1f} | {v['near_duplicates_2px']:.3f} |")
        _write(args.out, f"dev-{args.descriptors}", {"resolution": args.resolution, "descriptors": args.descriptors,
                                                      "results": data}, lines)
    elif args.test == "shift":
        photos = dev_photos(args.images, args.photos, size)
        data, lines = {}, ["| weights | " + " | ".join(f"{s:g} px" for s in SHIFTS) + " | saturated |",
                           "|---|" + "---|" * (len(SHIFTS) + 1)]
        for w in weights:
            res = shift_test(load_model(args.preset, w), photos, top_k=top_k)
            data[w] = res
            errs = " | ".join(f"{res['keypoint_error_px'][f'{s:g}']:.3f}" for s in SHIFTS)
            lines.append(f"| {Path(w).name} | {errs} | {res['saturated_offsets']:.3f} |")
        _write(args.out, "shift", {"photos": len(photos), "resolution": args.resolution, "results": data}, lines)
    else:
        from zippypoint.methods.registry import create_method

        photos = dev_photos(args.images, args.photos, size)
        data, lines = {}, ["| method | " + " | ".join(f"{a} deg" for a in ANGLES) + " |",
                           "|---|" + "---|" * len(ANGLES)]
        for name in args.methods.split(","):
            method = create_method(name, top_k)
            method.load()
            res = rotation_sweep(method, photos)
            data[name] = res
            lines.append(f"| {name} | " + " | ".join(f"{res[str(a)]:.3f}" for a in ANGLES) + " |")
        _write(args.out, "rotation", {"photos": len(photos), "resolution": args.resolution, "mma_3": data}, lines)
    name = f"dev-{args.descriptors}" if args.test == "dev" else args.test
    print((args.out / f"{name}.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
