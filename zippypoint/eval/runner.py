"""The evaluation loop: cached predictions per method, resolution and image; per-pair protocol values.

Predictions are cached as ``<cache>/<method>/<W>x<H>/<sequence>/<k>.npz`` holding the extract
contract arrays (``keypoints``, ``scores``, ``descriptors``), the original image size and the
method's settings; a file whose settings differ from the method's is recomputed, and
``overwrite=True`` recomputes everything once.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zippypoint.eval.hpatches import Pair, Sequence, read_image_bgr, resize_image, scale_homography
from zippypoint.eval.protocol import (
    AUC_THRESHOLDS,
    CORRECTNESS_THRESHOLDS,
    MMA_THRESHOLDS,
    WRONG_MATCH_CAUSES,
    evaluate_pair,
    homography_auc,
)
from zippypoint.methods.base import Method, check_features

CACHE_FORMAT = 1


@dataclass(frozen=True)
class Resolution:
    """Both images of a pair are resized to (width, height); the protocol keeps ``top_k`` points."""

    width: int
    height: int
    top_k: int

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    @property
    def label(self) -> str:
        return f"{self.width}x{self.height}"


STANDARD_RESOLUTIONS = {"320x240": Resolution(320, 240, 300), "640x480": Resolution(640, 480, 1000)}


def parse_resolution(text: str) -> Resolution:
    """``"320x240"`` / ``"640x480"`` (top-k 300 / 1000), or ``"WxH:K"`` for another size and top-k."""
    if text in STANDARD_RESOLUTIONS:
        return STANDARD_RESOLUTIONS[text]
    match = re.fullmatch(r"(\d+)x(\d+):(\d+)", text.strip())
    if not match or min(int(g) for g in match.groups()) < 1:
        raise ValueError(f"resolution must be 320x240, 640x480 or WxH:TOPK (e.g. 512x384:500), got {text!r}")
    return Resolution(*(int(g) for g in match.groups()))


def safe_name(name: str) -> str:
    """A method name usable as a file or folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


class PredictionCache:
    """Per-image predictions on disk; ``root=None`` keeps nothing."""

    def __init__(self, root: str | Path | None, overwrite: bool = False) -> None:
        self.root = Path(root) if root is not None else None
        self.overwrite = overwrite

    def path(self, method: Method, resolution: Resolution, sequence: str, k: int) -> Path | None:
        if self.root is None:
            return None
        return self.root / safe_name(method.name) / resolution.label / sequence / f"{k}.npz"

    def load(self, path: Path | None, settings: str) -> tuple[dict, tuple[int, int]] | None:
        if path is None or self.overwrite or not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["format"]) != CACHE_FORMAT or str(data["settings"]) != settings:
                    return None
                features = {k: data[k] for k in ("keypoints", "scores", "descriptors")}
                size = tuple(int(v) for v in data["source_size"])
        except (OSError, KeyError, ValueError):
            return None  # truncated or foreign file: recompute
        return features, size

    def save(self, path: Path | None, settings: str, features: dict, source_size: tuple[int, int]) -> None:
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with open(partial, "wb") as f:
            np.savez(f, format=CACHE_FORMAT, settings=settings, source_size=np.array(source_size), **features)
        partial.replace(path)


@dataclass
class FigureData:
    """What a matches figure needs: the resized images, their features and the scaled H."""

    pair: str
    images: tuple[np.ndarray, np.ndarray]
    features: tuple[dict, dict]
    homography: np.ndarray


@dataclass
class MethodRun:
    pairs: list[dict] = field(default_factory=list)
    figure: FigureData | None = None


def _predict(method: Method, cache: PredictionCache, resolution: Resolution, sequence: Sequence, k: int):
    settings = json.dumps(method.settings, sort_keys=True)
    path = cache.path(method, resolution, sequence.name, k)
    cached = cache.load(path, settings)
    if cached is not None:
        return cached
    image = read_image_bgr(sequence.images[k])
    source_size = (image.shape[1], image.shape[0])
    features = check_features(method(resize_image(image, resolution.size)), method)
    cache.save(path, settings, features, source_size)
    return features, source_size


def evaluate_method(
    method: Method,
    sequences: list[Sequence],
    resolution: Resolution,
    cache: PredictionCache,
    *,
    seed: int = 0,
    ransac_orders: int = 1,
    figure_pair: str | None = None,
    progress: bool = True,
) -> MethodRun:
    """Run ``method`` (already loaded) on every pair; per-pair values in sequence order."""
    from tqdm import tqdm

    run = MethodRun()
    total = sum(len(s.homographies) for s in sequences)
    with tqdm(total=total, desc=f"{method.name} {resolution.label}", unit="pair", file=sys.stderr,
              disable=not progress, leave=False) as bar:
        for sequence in sequences:
            predictions = {k: _predict(method, cache, resolution, sequence, k) for k in sorted(sequence.images)}
            for pair in sequence.pairs():
                (f1, size1), (f2, size2) = predictions[1], predictions[pair.k]
                homography = scale_homography(pair.homography, size1, size2, resolution.size)
                values = evaluate_pair(f1, f2, homography, resolution.size, resolution.top_k,
                                       method.descriptor_kind, seed=seed, ransac_orders=ransac_orders)
                run.pairs.append({"pair": pair.id, **values})
                if pair.id == figure_pair:
                    run.figure = _figure_data(pair, (f1, f2), homography, resolution)
                bar.update(1)
    return run


def _figure_data(pair: Pair, features: tuple[dict, dict], homography: np.ndarray, resolution: Resolution):
    images = tuple(resize_image(read_image_bgr(p), resolution.size) for p in (pair.image1, pair.image2))
    return FigureData(pair.id, images, features, homography)


def _mean(values) -> float | None:
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    return float(values.mean()) if values.size else None


def summarize(pairs: list[dict]) -> dict:
    """Means over pairs (repeatability and localisation error over the pairs where they are defined),
    MMA per threshold, homography AUC over all pairs (failures count as infinite error)."""
    summary = {
        "pairs": len(pairs),
        "repeatability": _mean(p["repeatability"] for p in pairs),
        "localization_error": _mean(p["localization_error"] for p in pairs),
        **{f"correctness_{t}": _mean(p[f"correctness_{t}"] for p in pairs) for t in CORRECTNESS_THRESHOLDS},
        **{f"correctness_{t}_orders": _mean(p[f"correctness_{t}_orders"] for p in pairs)
           for t in CORRECTNESS_THRESHOLDS},
        "matching_score": _mean(p["matching_score"] for p in pairs),
        "mma": {str(t): _mean(p["mma"][i] for p in pairs) for i, t in enumerate(MMA_THRESHOLDS)},
        "wrong_matches": {cause: _mean(p["wrong_matches"][cause] for p in pairs) for cause in WRONG_MATCH_CAUSES},
        "auc": {str(t): v for t, v in homography_auc([p["corner_error"] for p in pairs], AUC_THRESHOLDS).items()},
        "mean_keypoints": _mean(n for p in pairs for n in p["keypoints"]),
        "undefined_repeatability": sum(1 for p in pairs if not np.isfinite(p["repeatability"])),
    }
    if not pairs:
        summary["auc"] = {str(t): None for t in AUC_THRESHOLDS}
    return summary
