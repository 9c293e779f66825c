"""A quick HPatches-protocol check of an in-memory model (used for periodic validation in training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def hpatches_pair_values(
    extract, root: str | Path, size: tuple[int, int], top_k: int, kind: str = "binary", ransac_orders: int = 1
) -> list[dict]:
    """:func:`~zippypoint.eval.protocol.evaluate_pair`'s values for every pair of the HPatches-layout folder
    ``root``, each image resized to ``size`` and given to ``extract(image_bgr) -> {"keypoints", "scores",
    "descriptors"}`` once."""
    from zippypoint.eval.hpatches import find_sequences, read_image_bgr, resize_image, scale_homography
    from zippypoint.eval.protocol import evaluate_pair
    from zippypoint.methods.base import sorted_features

    values = []
    for seq in find_sequences(root):
        feats, sizes = {}, {}
        for k, path in seq.images.items():
            image = read_image_bgr(path)
            sizes[k] = (image.shape[1], image.shape[0])
            out = extract(resize_image(image, size))
            feats[k] = sorted_features(out["keypoints"], out["scores"], out["descriptors"])
        for pair in seq.pairs():
            h = scale_homography(pair.homography, sizes[1], sizes[pair.k], size)
            values.append(evaluate_pair(feats[1], feats[pair.k], h, size, top_k, kind, ransac_orders=ransac_orders))
    return values


def evaluate_model_quick(model, root: str | Path, size: tuple[int, int] = (320, 240), top_k: int = 300) -> dict:
    """Mean repeatability, C3 and MMA@3 of ``model`` on the HPatches-layout folder ``root``.

    Same protocol as ``zippypoint evaluate`` at one resolution, without caching or reports.
    """
    from zippypoint.eval.protocol import MMA_THRESHOLDS
    from zippypoint.extractor import Extractor, ExtractorConfig
    from zippypoint.methods.registry import candidate_budget

    was_training = model.training
    extractor = Extractor(model, config=ExtractorConfig(max_keypoints=candidate_budget("zippypoint", top_k)))
    try:
        values = hpatches_pair_values(extractor.extract, root, size, top_k)
    finally:
        model.train(was_training)
    if not values:
        return {}
    i3 = list(MMA_THRESHOLDS).index(3)
    return {
        "repeatability": float(np.nanmean([v["repeatability"] for v in values])),
        "correctness_3": float(np.mean([v["correctness_3"] for v in values])),
        "mma_3": float(np.mean([v["mma"][i3] for v in values])),
    }
