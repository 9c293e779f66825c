"""Robust image reading and preparation for the network (numpy + OpenCV only, no torch).

Accepted images: uint8 or uint16 (scaled by 65535), float in [0, 1]; gray (H,W) or (H,W,1),
BGR (H,W,3), BGRA (H,W,4, alpha dropped). 2-channel images are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp"}
DEFAULT_MAX_PIXELS = 100_000_000  # refuse images above this many pixels before decoding
MIN_SIZE = 24  # smallest side the network accepts (three cells)


class ImageReadError(ValueError):
    """An image path could not be read as an image."""


def list_images(root: str | Path, *, recursive: bool = True) -> list[Path]:
    """Image files under ``root`` (sorted), or ``[root]`` when it is a file.

    Only files whose suffix is one of ``IMAGE_SUFFIXES`` (any case) are listed; hidden files and
    folders (names starting with ".") are skipped. A folder without images gives an empty list.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.exists():
        raise FileNotFoundError(f"no such file or folder: {root}")
    if not root.is_dir():
        raise ValueError(f"expected an image file or a folder, got {root}")
    found = root.rglob("*") if recursive else root.iterdir()
    return sorted(
        p
        for p in found
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.is_file()
    )


def _header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file header without decoding pixels, where the format allows it."""
    try:
        from PIL import Image  # optional: Pillow reads headers lazily
    except ImportError:
        return None
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:
        return None


def read_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as decoded by OpenCV (IMREAD_UNCHANGED): uint8/uint16, gray/BGR/BGRA."""
    import cv2

    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"no such file: {path}")
    if path.is_dir():
        raise ImageReadError(f"expected an image file, got a directory: {path}")
    if path.stat().st_size == 0:
        raise ImageReadError(f"empty file (0 bytes): {path}")
    size = _header_size(path)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageReadError(
            f"{path}: {size[0]}x{size[1]} = {size[0] * size[1]} pixels exceeds the limit of {max_pixels}"
        )
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(f"{path}: not a decodable image (unknown format or corrupted file)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageReadError(f"{path}: {image.shape[1]}x{image.shape[0]} exceeds the limit of {max_pixels} pixels")
    return image


def to_float_channels(image: np.ndarray, in_channels: int) -> np.ndarray:
    """Convert a decoded image to float32 (C, H, W) in [0, 1]: RGB for 3 channels, gray for 1."""
    import cv2

    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an image of shape (H,W) or (H,W,C), got {image.shape}")
    if image.ndim == 3 and image.shape[2] not in (3, 4):
        raise ValueError(f"expected 1, 3 (BGR) or 4 (BGRA) channels, got {image.shape[2]}")
    if image.size == 0:
        raise ValueError(f"empty image of shape {image.shape}")
    if image.dtype == np.uint8:
        img = image.astype(np.float32) / 255.0
    elif image.dtype == np.uint16:
        img = image.astype(np.float32) / 65535.0
    elif image.dtype in (np.float32, np.float64):
        if not np.isfinite(image).all():
            raise ValueError("image contains NaN or Inf")
        img = image.astype(np.float32)
        if img.min() < 0 or img.max() > 1:
            raise ValueError(f"float images must be in [0, 1], got range [{img.min()}, {img.max()}]")
    else:
        raise TypeError(f"unsupported image dtype {image.dtype}; expected uint8, uint16 or float in [0, 1]")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]  # drop alpha
    if in_channels == 1:
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        return img[None]
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    else:
        img = img[:, :, ::-1]  # BGR -> RGB
    return np.ascontiguousarray(img.transpose(2, 0, 1))


@dataclass(frozen=True)
class PrepInfo:
    original_size: tuple[int, int]  # (W, H) of the input image
    resized_size: tuple[int, int]  # (W, H) the network saw before padding
    padded_size: tuple[int, int]  # (W, H) after padding to a multiple of 8

    def to_original(self, keypoints: np.ndarray) -> np.ndarray:
        """Map keypoints (N,2) from resized-image pixels to input-image pixels (pixel centres at 0)."""
        sx = self.original_size[0] / self.resized_size[0]
        sy = self.original_size[1] / self.resized_size[1]
        out = np.asarray(keypoints, dtype=np.float32).copy()
        if out.size:
            out[:, 0] = (out[:, 0] + 0.5) * sx - 0.5
            out[:, 1] = (out[:, 1] + 0.5) * sy - 0.5
            out[:, 0] = np.clip(out[:, 0], 0, self.original_size[0] - 1)
            out[:, 1] = np.clip(out[:, 1], 0, self.original_size[1] - 1)
        return out


def parse_resize(resize) -> tuple[int, int] | None:
    """None, (W, H), or a string 'WxH' / 'W,H' -> (W, H)."""
    if resize is None:
        return None
    if isinstance(resize, str):
        parts = resize.lower().replace(",", "x").split("x")
        if len(parts) != 2:
            raise ValueError(f"resize must look like 640x480, got {resize!r}")
        resize = tuple(int(p) for p in parts)
    w, h = (int(v) for v in resize)
    if w < MIN_SIZE or h < MIN_SIZE:
        raise ValueError(f"resize target must be at least {MIN_SIZE}x{MIN_SIZE}, got {w}x{h}")
    return w, h


def prepare_image(image: np.ndarray, in_channels: int, resize=None) -> tuple[np.ndarray, PrepInfo]:
    """Image -> ((1, C, Hp, Wp) float32 in [0, 1], PrepInfo); pads bottom/right to a multiple of 8."""
    import cv2

    chw = to_float_channels(image, in_channels)
    h, w = chw.shape[1:]
    target = parse_resize(resize)
    if target is not None and target != (w, h):
        hwc = chw.transpose(1, 2, 0)
        hwc = cv2.resize(hwc, target, interpolation=cv2.INTER_AREA if target[0] < w else cv2.INTER_LINEAR)
        chw = np.ascontiguousarray(hwc.reshape(target[1], target[0], -1).transpose(2, 0, 1))
    rh, rw = chw.shape[1:]
    if rh < MIN_SIZE or rw < MIN_SIZE:
        raise ValueError(f"image is {rw}x{rh}; the network needs at least {MIN_SIZE}x{MIN_SIZE} (use resize)")
    ph, pw = -rh % 8, -rw % 8
    if ph or pw:
        chw = np.pad(chw, ((0, 0), (0, ph), (0, pw)), mode="edge")
    info = PrepInfo((w, h), (rw, rh), (rw + pw, rh + ph))
    return chw[None].astype(np.float32, copy=False), info
