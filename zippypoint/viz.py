"""Pictures people look at: matches side by side, keypoints on an image (OpenCV drawing, no GUI)."""

from __future__ import annotations

import numpy as np


def agg_figure(width: float, height: float, dpi: float = 100.0):
    """A matplotlib figure of ``width`` x ``height`` inches on its own Agg canvas: drawing and ``savefig`` need no
    GUI and leave matplotlib's global backend (and pyplot's figure list) as they were."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def _as_bgr(image: np.ndarray) -> np.ndarray:
    import cv2

    img = image
    if img.dtype == np.uint16:
        img = (img / 257).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        img = cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img)


def draw_matches(image1: np.ndarray, image2: np.ndarray, keypoints1: np.ndarray, keypoints2: np.ndarray,
                 matches: np.ndarray, inliers: np.ndarray | None = None, title: str | None = None,
                 max_lines: int = 400) -> np.ndarray:
    """Side-by-side BGR picture: inlier matches green, outliers red, unmatched keypoints as grey dots."""
    import cv2

    a, b = _as_bgr(image1), _as_bgr(image2)
    h = max(a.shape[0], b.shape[0])
    canvas = np.zeros((h + (28 if title else 0), a.shape[1] + b.shape[1], 3), np.uint8)
    top = 28 if title else 0
    canvas[top : top + a.shape[0], : a.shape[1]] = a
    canvas[top : top + b.shape[0], a.shape[1] :] = b
    off = np.array([a.shape[1], 0], np.float32)
    shift = np.array([0, top], np.float32)
    for p in keypoints1:
        cv2.circle(canvas, tuple(int(round(v)) for v in p + shift), 1, (160, 160, 160), -1, cv2.LINE_AA)
    for p in keypoints2:
        cv2.circle(canvas, tuple(int(round(v)) for v in p + off + shift), 1, (160, 160, 160), -1, cv2.LINE_AA)
    matches = np.asarray(matches, np.int64).reshape(-1, 2)
    inl = np.ones(len(matches), bool) if inliers is None else np.asarray(inliers, bool).reshape(-1)
    order = np.random.default_rng(0).permutation(len(matches))[:max_lines]
    for idx in order:
        i, j = matches[idx]
        p1 = tuple(int(round(v)) for v in keypoints1[i] + shift)
        p2 = tuple(int(round(v)) for v in keypoints2[j] + off + shift)
        color = (60, 200, 60) if inl[idx] else (60, 60, 230)
        cv2.line(canvas, p1, p2, color, 1, cv2.LINE_AA)
        cv2.circle(canvas, p1, 2, color, -1, cv2.LINE_AA)
        cv2.circle(canvas, p2, 2, color, -1, cv2.LINE_AA)
    if title:
        cv2.putText(canvas, title, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas
