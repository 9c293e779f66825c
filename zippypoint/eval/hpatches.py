"""Reading HPatches-layout data: sequence folders of images ``1..N`` and homographies ``H_1_k``.

A sequence folder holds ``1.ppm`` (or ``.png``/``.jpg``/``.jpeg``), further images ``k.*`` and, for
each of them, a text file ``H_1_k`` with the 3x3 matrix that maps image-1 pixels to image-k pixels.
Images of one sequence may differ in size. Pairs are (1, k) for every k > 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".ppm", ".png", ".jpg", ".jpeg")
_IMAGE_NAME = re.compile(r"^(\d+)\.(ppm|png|jpe?g)$", re.IGNORECASE)
_HOMOGRAPHY_NAME = re.compile(r"^H_1_(\d+)$")


class HPatchesFormatError(ValueError):
    """A data folder or sequence does not follow the HPatches layout."""


@dataclass(frozen=True)
class Pair:
    """One evaluation pair: image 1 and image k of a sequence, with ``H_1_k`` (3x3 float64)."""

    sequence: str
    k: int
    image1: Path
    image2: Path
    homography: np.ndarray

    @property
    def id(self) -> str:
        """``"<sequence>/<k>"``, the name used in reports and on the command line."""
        return f"{self.sequence}/{self.k}"


@dataclass(frozen=True)
class Sequence:
    """A sequence folder: ``images[k]`` is the file of image k; ``homographies[k]`` is ``H_1_k``."""

    name: str
    path: Path
    images: dict[int, Path]
    homographies: dict[int, np.ndarray]

    def pairs(self) -> list[Pair]:
        return [
            Pair(self.name, k, self.images[1], self.images[k], self.homographies[k])
            for k in sorted(self.homographies)
        ]


def read_homography(path: str | Path) -> np.ndarray:
    """Read a 3x3 homography written as whitespace-separated text; returns float64 (3, 3)."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise HPatchesFormatError(f"{path}: cannot read homography ({exc})") from None
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        raise HPatchesFormatError(f"{path}: expected 9 numbers (a 3x3 matrix), found non-numeric text") from None
    if len(values) != 9:
        raise HPatchesFormatError(f"{path}: expected 9 numbers (a 3x3 matrix), found {len(values)}")
    matrix = np.array(values, dtype=np.float64).reshape(3, 3)
    if not np.isfinite(matrix).all():
        raise HPatchesFormatError(f"{path}: the matrix contains NaN or Inf")
    # Relative test: a homography's scale is arbitrary, its singularity is not.
    if abs(np.linalg.det(matrix)) <= 1e-12 * np.abs(matrix).max() ** 3:
        raise HPatchesFormatError(f"{path}: the matrix is singular, not a homography")
    return matrix


def _numbered_files(folder: Path) -> tuple[dict[int, Path], dict[int, Path]]:
    images: dict[int, Path] = {}
    homographies: dict[int, Path] = {}
    for entry in sorted(folder.iterdir()):
        if not entry.is_file():
            continue
        image = _IMAGE_NAME.match(entry.name)
        if image:
            k = int(image.group(1))
            if k in images:
                raise HPatchesFormatError(
                    f"{folder}: image {k} exists twice ({images[k].name} and {entry.name}); keep one"
                )
            images[k] = entry
            continue
        h = _HOMOGRAPHY_NAME.match(entry.name)
        if h:
            homographies[int(h.group(1))] = entry
    return images, homographies


def is_sequence_folder(folder: Path) -> bool:
    """True when ``folder`` holds numbered images or ``H_1_k`` files (well-formed or not)."""
    images, homographies = _numbered_files(folder)
    return bool(images or homographies)


def load_sequence(folder: str | Path) -> Sequence:
    """Read one sequence folder, checking that every image k > 1 has ``H_1_k`` and vice versa."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HPatchesFormatError(f"{folder}: not a directory")
    images, homography_files = _numbered_files(folder)
    if 1 not in images:
        raise HPatchesFormatError(
            f"{folder}: missing image 1 (expected one of {', '.join('1' + e for e in IMAGE_EXTENSIONS)})"
        )
    for k in sorted(images):
        if k > 1 and k not in homography_files:
            raise HPatchesFormatError(f"{folder}: image {images[k].name} has no homography file H_1_{k}")
    for k in sorted(homography_files):
        if k not in images or k == 1:
            raise HPatchesFormatError(f"{folder}: H_1_{k} has no image {k} ({k}.ppm, {k}.png or {k}.jpg)")
    if not homography_files:
        raise HPatchesFormatError(f"{folder}: only image 1 and no H_1_k files, so no pairs to evaluate")
    homographies = {k: read_homography(p) for k, p in homography_files.items()}
    return Sequence(folder.name, folder, images, homographies)


def find_sequences(root: str | Path, subset: str = "all") -> list[Sequence]:
    """All sequences under ``root`` (sorted by name), or ``root`` itself if it is one sequence.

    ``subset``: ``"all"``, ``"v"`` (viewpoint: names starting with ``v``) or ``"i"`` (illumination).
    Sub-folders without numbered images or ``H_1_k`` files are ignored; malformed ones are an error.
    """
    if subset not in ("all", "v", "i"):
        raise ValueError(f"subset must be 'all', 'v' or 'i', got {subset!r}")
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise HPatchesFormatError(f"{root}: not a directory")
    if is_sequence_folder(root):
        sequences = [load_sequence(root)]
    else:
        folders = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
        sequences = [load_sequence(p) for p in folders if is_sequence_folder(p)]
    if subset != "all":
        sequences = [s for s in sequences if s.name.startswith(subset)]
    if not sequences:
        which = "" if subset == "all" else f" with names starting with {subset!r}"
        raise HPatchesFormatError(
            f"no HPatches sequences{which} found under {root}: expected folders holding 1.ppm..N.ppm "
            "(or .png/.jpg) and H_1_2..H_1_N"
        )
    return sequences


def read_image_bgr(path: str | Path) -> np.ndarray:
    """Decode an image file to uint8 (H, W, 3) BGR."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise HPatchesFormatError(f"{path}: cannot decode the image")
    return image


def scale_homography(
    homography: np.ndarray, size1: tuple[int, int], size2: tuple[int, int], new_size: tuple[int, int]
) -> np.ndarray:
    """``H' = S_2 H S_1^-1`` for images of (W, H) ``size1`` and ``size2`` both resized to ``new_size``.

    ``S = diag(new_w / w, new_h / h, 1)``: the plain pixel-coordinate scaling of the KP2D protocol.
    """
    s1 = np.diag([new_size[0] / size1[0], new_size[1] / size1[1], 1.0])
    s2 = np.diag([new_size[0] / size2[0], new_size[1] / size2[1], 1.0])
    return s2 @ homography @ np.linalg.inv(s1)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to (W, H) ``size`` without keeping the aspect ratio (``cv2.resize``, bilinear)."""
    import cv2

    return cv2.resize(image, size)
