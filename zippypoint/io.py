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
# Longest side the network sees by default: larger images are downscaled (keypoints are mapped back to the
# original pixels), which bounds time and memory; a 6000x4000 photo is worked on at 2048x1365.
DEFAULT_MAX_SIZE = 2048
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


def _png_size(head: bytes) -> tuple[int, int] | None:
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return None


def _bmp_size(head: bytes) -> tuple[int, int] | None:
    if head[:2] == b"BM" and len(head) >= 26:
        return abs(int.from_bytes(head[18:22], "little", signed=True)), abs(
            int.from_bytes(head[22:26], "little", signed=True))
    return None


def _pnm_size(head: bytes) -> tuple[int, int] | None:
    if len(head) < 3 or head[:1] != b"P" or head[1:2] not in b"123456":
        return None
    tokens = []
    for line in head[2:].split(b"\n"):
        tokens += line.split(b"#", 1)[0].split()
        if len(tokens) >= 2:
            break
    try:
        return int(tokens[0]), int(tokens[1])
    except (IndexError, ValueError):
        return None


# JPEG start-of-frame markers (baseline, progressive, lossless...): C0-CF except DHT (C4), JPG (C8), DAC (CC)
_JPEG_SOF = {m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC)}


def _jpeg_size(f) -> tuple[int, int] | None:
    """Walk the JPEG segments up to the first start-of-frame; the EXIF thumbnail is skipped by length."""
    f.seek(0)
    if f.read(2) != b"\xff\xd8":
        return None
    while True:
        byte = f.read(1)
        while byte and byte != b"\xff":  # tolerate garbage between segments
            byte = f.read(1)
        while byte == b"\xff":  # fill bytes
            byte = f.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue  # standalone markers
        length = f.read(2)
        if len(length) < 2:
            return None
        if marker in _JPEG_SOF:
            sof = f.read(5)
            if len(sof) < 5:
                return None
            return int.from_bytes(sof[3:5], "big"), int.from_bytes(sof[1:3], "big")
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        f.seek(int.from_bytes(length, "big") - 2, 1)


def image_header_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) read from the file header without decoding pixels; None where the format is not parsed.

    PNG, JPEG, BMP and PPM/PGM are parsed here (no dependency); other formats through Pillow when installed.
    """
    with open(path, "rb") as f:
        head = f.read(64)
        size = _png_size(head) or _bmp_size(head) or _pnm_size(head) or _jpeg_size(f)
    if size is not None:
        return size
    try:
        from PIL import Image  # optional: Pillow reads TIFF/WebP headers lazily
    except ImportError:
        return None
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # Pillow raises many types for unknown or corrupt files; OpenCV decides then
        return None


def _truncated_jpeg(data: np.ndarray) -> bool:
    """A JPEG whose last scan has no end-of-image marker after it: OpenCV would decode it with a grey band
    and only a warning. (An EXIF thumbnail's own marker comes before the main scan, so it does not count.)"""
    raw = data.tobytes()
    if raw[:2] != b"\xff\xd8":
        return False
    return raw.rfind(b"\xff\xd9") < raw.rfind(b"\xff\xda")


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
    size = image_header_size(path)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageReadError(
            f"{path}: the header says {size[0]}x{size[1]} = {size[0] * size[1]} pixels, above the limit of "
            f"{max_pixels} (refused before decoding; raise it with --max-pixels N)"
        )
    if size is not None and 0 in size:
        raise ImageReadError(f"{path}: the header says {size[0]}x{size[1]} pixels (an empty image)")
    data = np.fromfile(str(path), dtype=np.uint8)
    if _truncated_jpeg(data):
        raise ImageReadError(f"{path}: truncated JPEG (the data stops before its end-of-image marker)")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(f"{path}: not a decodable image (unknown format or corrupted file)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageReadError(f"{path}: {image.shape[1]}x{image.shape[0]} exceeds the limit of {max_pixels} pixels "
                             "(raise it with --max-pixels N)")
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
    if image.dtype == np.uint8 and in_channels == 1 and image.ndim == 3:
        # gray from 8-bit colour in 8 bits (OpenCV rounds to the nearest level), then one float copy of one
        # channel: 8x cheaper than converting three float channels
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        return (cv2.cvtColor(image, code).astype(np.float32) / np.float32(255.0))[None]
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


def working_size(width: int, height: int, resize=None, max_size: int | None = None) -> tuple[int, int]:
    """(W, H) the network sees: ``resize`` when given, else the input scaled down so that its longest side is
    at most ``max_size`` (aspect kept; None or 0 = native size)."""
    target = parse_resize(resize)
    if target is not None:
        return target
    if max_size is not None and max_size < 0:
        raise ValueError(f"max_size must be >= 0 (0 = no limit), got {max_size}")
    longest = max(width, height)
    if not max_size or longest <= max_size:
        return width, height
    scale = max_size / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def prepare_image(image: np.ndarray, in_channels: int, resize=None,
                  max_size: int | None = None) -> tuple[np.ndarray, PrepInfo]:
    """Image -> ((1, C, Hp, Wp) float32 in [0, 1], PrepInfo); pads bottom/right to a multiple of 8.

    ``resize``: (W, H) or "WxH" the network sees; otherwise ``max_size`` caps the longest side (see
    :func:`working_size`). Keypoints map back to input pixels with ``PrepInfo.to_original``.
    """
    import cv2

    if isinstance(image, np.ndarray) and image.ndim in (2, 3) and image.size:
        h, w = image.shape[:2]
        target = working_size(w, h, resize, max_size)
        if target != (w, h) and image.dtype in (np.uint8, np.uint16) and (image.ndim == 2 or image.shape[2] in (1, 3, 4)):
            # shrink the integer image before the float copy: a 6000x4000 photo never exists as float32
            small = cv2.resize(image, target, interpolation=cv2.INTER_AREA if target[0] < w else cv2.INTER_LINEAR)
            chw = to_float_channels(small, in_channels)
            return _pad(chw, (w, h))
    chw = to_float_channels(image, in_channels)
    h, w = chw.shape[1:]
    target = working_size(w, h, resize, max_size)
    if target != (w, h):
        hwc = chw.transpose(1, 2, 0)
        hwc = cv2.resize(hwc, target, interpolation=cv2.INTER_AREA if target[0] < w else cv2.INTER_LINEAR)
        chw = np.ascontiguousarray(hwc.reshape(target[1], target[0], -1).transpose(2, 0, 1))
    return _pad(chw, (w, h))


def _pad(chw: np.ndarray, original_size: tuple[int, int]) -> tuple[np.ndarray, PrepInfo]:
    rh, rw = chw.shape[1:]
    if rh < MIN_SIZE or rw < MIN_SIZE:
        raise ValueError(f"image is {rw}x{rh}; the network needs at least {MIN_SIZE}x{MIN_SIZE} "
                         f"(upscale it with --resize WxH, e.g. --resize {max(rw, MIN_SIZE)}x{max(rh, MIN_SIZE)})")
    ph, pw = -rh % 8, -rw % 8
    if ph or pw:
        chw = np.pad(chw, ((0, 0), (0, ph), (0, pw)), mode="edge")
    info = PrepInfo(original_size, (rw, rh), (rw + pw, rh + ph))
    return chw[None].astype(np.float32, copy=False), info
