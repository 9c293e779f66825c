"""The demo pair: a shipped sample photo and a warped, relit copy with a known homography (numpy + OpenCV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
SHIPPED_SAMPLES = ("astronaut", "coffee")  # PNGs in zippypoint/samples/ (licences in its README.md)
SKIMAGE_SAMPLES = ("chelsea", "rocket")  # read from scikit-image where it is installed
SAMPLES = SHIPPED_SAMPLES + SKIMAGE_SAMPLES


def check_sample(name: str) -> str:
    """``name`` when it is a known sample; ValueError naming the choices otherwise."""
    if name not in SAMPLES:
        raise ValueError(f"unknown sample {name!r}; choose one of {', '.join(SAMPLES)} "
                         "or pass two images of yours with --images A B")
    return name


def sample_photo(name: str = "astronaut") -> np.ndarray:
    """A real photo as BGR uint8: shipped in the package, or (chelsea, rocket) from scikit-image."""
    import cv2

    check_sample(name)
    if name in SHIPPED_SAMPLES:
        image = cv2.imread(str(SAMPLES_DIR / f"{name}.png"), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"sample photo missing from the package: {SAMPLES_DIR / name}.png")
        return image
    try:
        from skimage import data
    except ImportError:
        raise ValueError(f"sample {name!r} comes from scikit-image, which is not installed; use one of "
                         f"{', '.join(SHIPPED_SAMPLES)} or `pip install scikit-image`") from None
    return cv2.cvtColor(getattr(data, name)(), cv2.COLOR_RGB2BGR)


def demo_homography(width: int, height: int) -> np.ndarray:
    """A fixed viewpoint change: rotation, scale and perspective (image-1 pixels -> image-2 pixels)."""
    import cv2

    src = np.float32([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]])
    dx, dy = 0.08 * width, 0.08 * height
    dst = np.float32([[dx * 1.5, dy], [width - 1 - dx * 0.5, dy * 2.2], [width - 1 - dx, height - 1 - dy * 0.6],
                      [dx * 0.4, height - 1 - dy * 1.8]])
    return cv2.getPerspectiveTransform(src, dst).astype(np.float64)


def relight(image: np.ndarray, gain: float = 0.75, gamma: float = 1.3, offset: float = 12.0) -> np.ndarray:
    """Illumination change: gamma, gain and offset on 8-bit BGR."""
    x = image.astype(np.float32) / 255.0
    x = np.power(x, gamma) * gain + offset / 255.0
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def make_demo_pair(name: str = "astronaut") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image1, image2, H) with image2 = relight(warp(image1, H))."""
    import cv2

    img1 = sample_photo(name)
    h, w = img1.shape[:2]
    hom = demo_homography(w, h)
    img2 = cv2.warpPerspective(img1, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return img1, relight(img2), hom
