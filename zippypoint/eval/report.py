"""Evaluation reports: ``results.json`` (machines), ``results.md`` (people), ``mma.png``, ``matches_<method>.png``.

Plots use matplotlib's object API with the Agg canvas, so no global backend is switched.
"""

from __future__ import annotations

import json
import math
import os
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from zippypoint.eval.protocol import (
    AUC_THRESHOLDS,
    DISTANCE_THRESHOLD,
    MMA_THRESHOLDS,
    homography_estimation,
)
from zippypoint.machine import cpu_model
from zippypoint.viz import agg_figure


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    """Versions and hardware that the numbers depend on."""
    import cv2

    from zippypoint import __version__

    return {
        "zippypoint": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "torch": _version("torch"),
        "kornia": _version("kornia"),
        "onnxruntime": _version("onnxruntime"),
    }


def _plain(value):
    """JSON-safe copy: numpy scalars to Python, NaN and Inf to null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def write_json(results: dict, path: Path) -> None:
    path.write_text(json.dumps(_plain(results), indent=1, allow_nan=False) + "\n")


def read_results(path: str | Path) -> dict:
    """The results of a ``zippypoint evaluate`` run, from its output folder or its ``results.json``."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass a `zippypoint evaluate` output folder or its results.json")
    return json.loads(path.read_text())


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def markdown_table(results: dict) -> str:
    """One row per method and resolution, then the skipped methods with their reasons."""
    dataset = results["dataset"]
    orders = (results.get("protocol") or {}).get("ransac_orders", 1)
    lines = [
        "# HPatches-protocol evaluation",
        "",
        f"Data: `{dataset['path']}`: {len(dataset['sequences'])} sequences, {dataset['pairs']} pairs "
        f"({', '.join(dataset['sequences'][:8])}{', ...' if len(dataset['sequences']) > 8 else ''}).",
        "Protocol: KP2D (docs/design.md §6): rep/loc at 3 px, homography correctness C1/C3/C5 (mean corner error),",
        "matching score MS; MMA and homography AUC from the shared-point mutual nearest-neighbour matches.",
        f"C3/{orders}: C3 averaged over {orders} orders of the matches given to RANSAC (the protocol's "
        "single run decides a pair near 3 px by chance).",
        "",
        f"| method | resolution | top-k | rep | loc | C1 | C3 | C5 | C3/{orders} | MS | MMA@1 | MMA@3 | MMA@5 "
        "| AUC@3 | AUC@5 | AUC@10 | #kpts |",
        "|---|---|---|" + "---|" * 14,
    ]
    for name, entry in results["methods"].items():
        for label, res in entry.get("resolutions", {}).items():
            s = res["summary"]
            row = [
                name, label, str(res["top_k"]),
                _fmt(s["repeatability"]), _fmt(s["localization_error"]),
                *(_fmt(s[f"correctness_{t}"]) for t in (1, 3, 5)),
                _fmt(s.get("correctness_3_orders")),
                _fmt(s["matching_score"]),
                *(_fmt(s["mma"][str(t)]) for t in (1, 3, 5)),
                *(_fmt(s["auc"][str(t)]) for t in AUC_THRESHOLDS),
                _fmt(s["mean_keypoints"], 0),
            ]
            lines.append("| " + " | ".join(row) + " |")
    lines += _wrong_matches_table(results)
    for state in ("skipped", "failed"):
        reasons = {n: e[state] for n, e in results["methods"].items() if state in e}
        if reasons:
            lines += ["", f"{state.capitalize()}:", ""] + [f"- `{n}`: {reason}" for n, reason in reasons.items()]
    return "\n".join(lines) + "\n"


def _wrong_matches_table(results: dict) -> list[str]:
    """Why matches miss at 3 px, per method and resolution (results written before this split have no rows)."""
    rows = []
    for name, entry in results["methods"].items():
        for label, res in entry.get("resolutions", {}).items():
            s = res["summary"]
            wrong = s.get("wrong_matches")
            if wrong is not None:
                rows.append(f"| {name} | {label} | {_fmt(s['mma']['3'])} | {_fmt(wrong['descriptor'])} "
                            f"| {_fmt(wrong['detector'])} |")
    if not rows:
        return []
    return ["", "Matches that miss at 3 px, as shares of all matches (with MMA@3 they sum to 1): \"descriptor\" where",
            "the second image had a shared point within 3 px of the right place and the match took another one,",
            "\"detector\" where it had none.", "",
            "| method | resolution | MMA@3 | wrong: descriptor | wrong: detector |", "|---|---|---|---|---|", *rows]


def plot_mma(results: dict, path: Path) -> None:
    """MMA against threshold (1..10 px) for every method, one panel per resolution."""
    labels = sorted({lab for e in results["methods"].values() for lab in e.get("resolutions", {})},
                    key=lambda s: [int(v) for v in s.split("x")])
    figure = agg_figure(5.0 * max(len(labels), 1), 4.2, dpi=110)
    thresholds = list(MMA_THRESHOLDS)
    for i, label in enumerate(labels):
        ax = figure.add_subplot(1, len(labels), i + 1)
        for name, entry in results["methods"].items():
            res = entry.get("resolutions", {}).get(label)
            if res is None:
                continue
            values = [res["summary"]["mma"][str(t)] for t in thresholds]
            ax.plot(thresholds, [np.nan if v is None else v for v in values], marker="o", ms=3, label=name)
        ax.set(title=f"{label}, top-{next(iter(_tops(results, label)))}", xlabel="threshold (px)",
               ylabel="MMA", xlim=(1, 10), ylim=(0, 1))
        ax.set_xticks(thresholds)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path)


def _tops(results: dict, label: str):
    for entry in results["methods"].values():
        if label in entry.get("resolutions", {}):
            yield entry["resolutions"][label]["top_k"]


def plot_matches(figure_data, method, top_k: int, path: Path, seed: int = 0) -> dict:
    """The pair side by side with the shared-point mutual NN matches: green if the reprojection error
    is below 3 px, red otherwise. Returns the counts drawn."""
    image1, image2 = figure_data.images
    f1, f2 = figure_data.features
    size = (image1.shape[1], image1.shape[0])
    result = homography_estimation(f1, f2, figure_data.homography, size, top_k, method.descriptor_kind, seed)
    p1 = f1["keypoints"][result.matches[:, 0]]
    p2 = f2["keypoints"][result.matches[:, 1]]
    correct = result.match_errors < DISTANCE_THRESHOLD
    canvas = np.concatenate([image1, image2], axis=1)[:, :, ::-1]
    figure = agg_figure(10.0, 10.0 * canvas.shape[0] / canvas.shape[1] + 0.6, dpi=110)
    ax = figure.add_axes((0, 0, 1, 0.93))
    ax.imshow(canvas)
    ax.axis("off")
    for ok in (False, True):
        sel = correct == ok
        xs = np.stack([p1[sel, 0], p2[sel, 0] + image1.shape[1]])
        ys = np.stack([p1[sel, 1], p2[sel, 1]])
        ax.plot(xs, ys, color="lime" if ok else "red", lw=0.6, alpha=0.8)
    for kp, dx in ((f1["keypoints"], 0), (f2["keypoints"], image1.shape[1])):
        ax.scatter(kp[:top_k, 0] + dx, kp[:top_k, 1], s=2, c="yellow", linewidths=0)
    error = "failed" if not math.isfinite(result.corner_error) else f"{result.corner_error:.2f} px"
    figure.suptitle(
        f"{method.name} on {figure_data.pair} ({size[0]}x{size[1]}, top-{top_k}): {int(correct.sum())}/"
        f"{len(correct)} matches within 3 px, corner error {error}", fontsize=9,
    )
    figure.savefig(path)
    return {"matches": len(correct), "correct": int(correct.sum())}
