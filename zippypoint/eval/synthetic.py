"""Synthetic HPatches-layout benchmarks from any folder of images, for users without HPatches.

Each sequence starts from one photo (image 1, downscaled to ``max_side``). Images 2..n+1 are
image 1 warped by a viewpoint-like homography (rotation, scale, translation and a perspective
corner jitter, growing with k like HPatches' viewpoint sequences) with an illumination change
(gain, gamma, offset) and a little sensor noise. ``H_1_k`` maps image-1 pixels to image-k pixels
and is written as three lines of three space-separated numbers, like HPatches.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from zippypoint.io import list_images

MIN_SIDE = 64  # smaller photos are skipped: too few keypoints to evaluate


@dataclass(frozen=True)
class SyntheticConfig:
    sequences: int = 10  # number of sequences (at most one per usable image)
    per_sequence: int = 5  # warped images per sequence: images 2..per_sequence+1
    seed: int = 0  # drives image choice, homographies and photometric changes
    max_side: int = 640  # image 1 is downscaled so that its longer side is at most this
    max_rotation_deg: float = 35.0  # rotation reached at the last image of a sequence
    max_log_scale: float = 0.4  # |log scale| reached at the last image (0.4: x0.67..x1.49)
    max_perspective: float = 0.15  # corner jitter at the last image, fraction of the shorter side
    min_overlap: float = 0.4  # warped image 1 must cover at least this fraction of image k
    # "viewpoint": homographies with mild lighting changes; "illumination": no motion (H = I), lighting
    # changes (gain, gamma, offset, a shading ramp, noise) that grow with k
    kind: str = "viewpoint"
    held_out: bool = False  # use only the development split of zippypoint.train.split (photos training skips)

    def __post_init__(self) -> None:
        if self.sequences < 1 or self.per_sequence < 1:
            raise ValueError(f"sequences and per_sequence must be >= 1, got {self.sequences}, {self.per_sequence}")
        if self.max_side < MIN_SIDE:
            raise ValueError(f"max_side must be >= {MIN_SIDE}, got {self.max_side}")
        if self.kind not in ("viewpoint", "illumination"):
            raise ValueError(f"kind must be 'viewpoint' or 'illumination', got {self.kind!r}")


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def sample_homography(size: tuple[int, int], difficulty: float, rng: np.random.Generator,
                      config: SyntheticConfig) -> np.ndarray:
    """A homography mapping a (W, H) image into an image of the same size; harder as difficulty -> 1."""
    import cv2

    w, h = size
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    centre = corners.mean(axis=0)
    for _ in range(100):
        angle = np.deg2rad(config.max_rotation_deg) * difficulty * rng.uniform(-1, 1)
        scale = np.exp(config.max_log_scale * difficulty * rng.uniform(-1, 1))
        rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        shift = rng.uniform(-0.1, 0.1, 2) * difficulty * np.array([w, h])
        jitter = rng.uniform(-1, 1, (4, 2)) * config.max_perspective * difficulty * min(w, h)
        target = (corners - centre) @ rotation.T + centre + shift + jitter
        signed = _polygon_area(target)
        # Keep convex, non-mirrored quads that still cover enough of the target image.
        edges = np.roll(target, -1, axis=0) - target
        turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
        if signed <= 0 or turns.min() <= 0:
            continue
        inside = cv2.intersectConvexConvex(target.astype(np.float32), corners.astype(np.float32))[0]
        if inside >= config.min_overlap * w * h:
            return cv2.getPerspectiveTransform(corners.astype(np.float32), target.astype(np.float32)).astype(
                np.float64
            )
        difficulty *= 0.97  # too hard for this aspect ratio: ease off a little
    return np.eye(3)


def photometric_change(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Gain, gamma, offset and Gaussian noise on a uint8 image; returns the image and the parameters."""
    params = {
        "gain": float(np.exp(rng.uniform(-0.35, 0.35))),
        "gamma": float(np.exp(rng.uniform(-0.4, 0.4))),
        "offset": float(rng.uniform(-20, 20)),
        "noise_sigma": float(rng.uniform(0, 3)),
    }
    x = (image.astype(np.float64) / 255.0) ** params["gamma"] * 255.0 * params["gain"] + params["offset"]
    x += rng.normal(0, params["noise_sigma"], x.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8), params


def illumination_change(image: np.ndarray, difficulty: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A lighting change that grows with ``difficulty`` in (0, 1]: gain, gamma, offset, a linear shading
    ramp across the image and sensor noise, on a uint8 image; returns the image and the parameters."""
    h, w = image.shape[:2]
    params = {
        "gain": float(np.exp(0.8 * difficulty * rng.uniform(-1, 1))),
        "gamma": float(np.exp(0.7 * difficulty * rng.uniform(-1, 1))),
        "offset": float(30 * difficulty * rng.uniform(-1, 1)),
        "ramp": float(0.6 * difficulty * rng.uniform(0.3, 1)),
        "ramp_angle": float(rng.uniform(0, 2 * np.pi)),
        "noise_sigma": float(rng.uniform(0, 4)),
    }
    ys, xs = np.mgrid[0:h, 0:w]
    along = ((xs - w / 2) * np.cos(params["ramp_angle"]) + (ys - h / 2) * np.sin(params["ramp_angle"])) / max(h, w)
    shade = (1 + params["ramp"] * along)[..., None] if image.ndim == 3 else 1 + params["ramp"] * along
    x = (image.astype(np.float64) / 255.0) ** params["gamma"] * 255.0 * params["gain"] * shade + params["offset"]
    x += rng.normal(0, params["noise_sigma"], x.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8), params


def _format_homography(matrix: np.ndarray) -> str:
    return "\n".join(" ".join(f"{v:.10g}" for v in row) for row in matrix / matrix[2, 2]) + "\n"


def _sequence_name(index: int, source: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "_", source.stem).strip("_")[:40] or "image"
    return f"v_{index:03d}_{stem}"


def make_benchmark(images: str | Path, out: str | Path, config: SyntheticConfig = SyntheticConfig(), *,
                   overwrite: bool = False, log=print) -> list[Path]:
    """Write ``config.sequences`` sequences under ``out``; returns their folders.

    Unreadable or tiny images are skipped with a message. ``benchmark.json`` records the settings,
    the source of each sequence and the photometric parameters of each image.
    """
    import cv2

    if not Path(images).is_dir():
        raise FileNotFoundError(f"image folder {images} does not exist or is not a directory")
    candidates = list_images(images)
    if config.held_out:
        from zippypoint.train.split import split_dev

        candidates = split_dev(candidates)[1]
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(candidates))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    record = {"config": asdict(config), "source": str(Path(images).resolve()), "sequences": {}}
    for position in order:
        if len(written) == config.sequences:
            break
        source = candidates[position]
        image = cv2.imread(str(source), cv2.IMREAD_COLOR)
        if image is None or min(image.shape[:2]) < MIN_SIDE:
            log(f"skipping {source}: {'cannot decode it' if image is None else 'smaller than 64 px'}")
            continue
        factor = config.max_side / max(image.shape[:2])
        if factor < 1:
            image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        folder = out / _sequence_name(len(written), source)
        if folder.exists():
            if not overwrite:
                raise FileExistsError(f"{folder} exists; pass overwrite=True (--overwrite) to replace it")
            shutil.rmtree(folder)
        folder.mkdir()
        size = (image.shape[1], image.shape[0])
        cv2.imwrite(str(folder / "1.png"), image)
        photometric = {}
        for k in range(2, config.per_sequence + 2):
            if config.kind == "illumination":
                changed, photometric[str(k)] = illumination_change(image, (k - 1) / config.per_sequence, rng)
                cv2.imwrite(str(folder / f"{k}.png"), changed)
                (folder / f"H_1_{k}").write_text(_format_homography(np.eye(3)))
                continue
            homography = sample_homography(size, (k - 1) / config.per_sequence, rng, config)
            warped = cv2.warpPerspective(image, homography, size, flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REFLECT_101)
            warped, photometric[str(k)] = photometric_change(warped, rng)
            cv2.imwrite(str(folder / f"{k}.png"), warped)
            (folder / f"H_1_{k}").write_text(_format_homography(homography))
        record["sequences"][folder.name] = {"image": str(source), "size": list(size), "photometric": photometric}
        written.append(folder)
    if not written:
        raise ValueError(f"no usable images under {images} (readable, at least {MIN_SIDE} px on each side)")
    if len(written) < config.sequences:
        log(f"only {len(written)} usable images: wrote {len(written)} of {config.sequences} sequences")
    (out / "benchmark.json").write_text(json.dumps(record, indent=1) + "\n")
    return written
