"""Training data: any image folder, read recursively, with photometric augmentation.

Homographic warping happens on the batch in the training loop (cheap on tensors); the dataset
returns target images and a per-sample seed so that every random choice is reproducible.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from zippypoint.io import ImageReadError, read_image
from zippypoint.train.homography import HomographyConfig, sample_training_homography

log = logging.getLogger(__name__)


def split_images(paths: list[Path], val_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Deterministic train/validation split."""
    if not paths:
        return [], []
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(paths))
    n_val = int(round(len(paths) * val_fraction))
    val = sorted(paths[i] for i in order[:n_val])
    train = sorted(paths[i] for i in order[n_val:])
    return train, val


@dataclass(frozen=True)
class PhotometricConfig:
    brightness: float = 0.3  # multiplicative brightness jitter range (+-)
    contrast: float = 0.3  # contrast jitter range (+-)
    saturation: float = 0.3  # saturation jitter range (+-)
    hue: float = 0.05  # hue shift range (+- fraction of the colour circle)
    channel_shuffle_p: float = 0.5  # probability of permuting the colour channels
    gray_p: float = 0.5  # probability of converting to grayscale (kept 3-channel)
    noise_p: float = 0.5  # probability of additive Gaussian noise
    noise_sigma: float = 0.05  # noise std on the [0, 1] scale (0.05 * 255 on 8 bits)
    blur_kernels: tuple[int, ...] = (0, 1, 3, 5)  # Gaussian blur kernel sizes (0/1 = none)


def photometric(image: np.ndarray, rng: np.random.Generator, cfg: PhotometricConfig) -> np.ndarray:
    """Augment an RGB float32 (H, W, 3) image in [0, 1]; returns a new array in [0, 1]."""
    import cv2

    img = image.astype(np.float32, copy=True)
    # colour jitter in random order (a real one: every op changes the pixels)
    ops = rng.permutation(4)
    for op in ops:
        if op == 0 and cfg.brightness > 0:
            img *= rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
        elif op == 1 and cfg.contrast > 0:
            mean = img.mean()
            img = (img - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + mean
        elif op == 2 and cfg.saturation > 0:
            gray = img.mean(axis=2, keepdims=True)
            img = (img - gray) * rng.uniform(1 - cfg.saturation, 1 + cfg.saturation) + gray
        elif op == 3 and cfg.hue > 0:
            hsv = cv2.cvtColor(np.clip(img, 0, 1), cv2.COLOR_RGB2HSV)
            hsv[..., 0] = (hsv[..., 0] + 360.0 * rng.uniform(-cfg.hue, cfg.hue)) % 360.0
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        img = np.clip(img, 0, 1)
    if rng.random() < cfg.channel_shuffle_p:
        img = img[:, :, rng.permutation(3)]
    if rng.random() < cfg.gray_p:
        img = np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2)
    k = int(rng.choice(cfg.blur_kernels)) if cfg.blur_kernels else 0
    if k > 1:
        img = cv2.GaussianBlur(img, (k, k), 0)
    if rng.random() < cfg.noise_p:
        img = img + rng.normal(0, cfg.noise_sigma, img.shape).astype(np.float32)
    return np.ascontiguousarray(np.clip(img, 0, 1), dtype=np.float32)


def norm_to_pixel_matrix(width: int, height: int) -> np.ndarray:
    """3x3 matrix N with pixel = N @ normalised (align-corners convention)."""
    return np.array([[(width - 1) / 2, 0, (width - 1) / 2], [0, (height - 1) / 2, (height - 1) / 2], [0, 0, 1]])


class HomographyPairDataset(torch.utils.data.Dataset):
    """Training pairs from an image folder; unreadable files are skipped and counted.

    Each item: dict(target=(3,H,W), source=(3,H,W) float32 RGB in [0,1], homography=(3,3) float32
    normalised source->target, index=int). The target is the photo resized to (height, width); the
    source is the same photo warped by a random homography; both get independent photometric
    augmentation. All randomness derives from (seed, epoch, index), so results do not depend on the
    number of workers.
    """

    def __init__(self, paths: list[Path], height: int = 240, width: int = 320, seed: int = 0,
                 homography: HomographyConfig | None = None, photometric: PhotometricConfig | None = None,
                 augment: bool = True) -> None:
        self.paths = list(paths)
        self.height, self.width = height, width
        self.seed = seed
        self.epoch = 0
        self.homography = homography or HomographyConfig()
        self.photometric = photometric or PhotometricConfig()
        self.augment = augment
        self.bad: set[int] = set()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> np.ndarray | None:
        import cv2

        try:
            img = read_image(self.paths[index])
        except ImageReadError as exc:
            log.warning("skipping %s", exc)
            return None
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        elif img.shape[2] == 4:
            img = img[:, :, :3]
        if img.dtype == np.uint16:
            img = (img / 257).astype(np.uint8)
        img = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0

    def make_pair(self, image: np.ndarray, rng: np.random.Generator) -> dict:
        import cv2

        h_norm = sample_training_homography(rng, (self.width, self.height), self.homography)
        n = norm_to_pixel_matrix(self.width, self.height)
        h_pix = n @ h_norm @ np.linalg.inv(n)
        source = cv2.warpPerspective(image, h_pix, (self.width, self.height),
                                     flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        target = image
        if self.augment:
            target = photometric(target, rng, self.photometric)
            source = photometric(source, rng, self.photometric)
        return {
            "target": torch.from_numpy(np.ascontiguousarray(target.transpose(2, 0, 1))),
            "source": torch.from_numpy(np.ascontiguousarray(source.transpose(2, 0, 1))),
            "homography": torch.from_numpy(h_norm.astype(np.float32)),
        }

    def __getitem__(self, index: int) -> dict:
        # a bad file is replaced by the next good one so batches keep their size
        for offset in range(len(self.paths)):
            i = (index + offset) % len(self.paths)
            if i in self.bad:
                continue
            img = self.load(i)
            if img is None:
                self.bad.add(i)
                continue
            rng = np.random.default_rng([self.seed, self.epoch, i])
            item = self.make_pair(img, rng)
            item["index"] = i
            return item
        raise RuntimeError(f"none of the {len(self.paths)} images could be read")


# ITU-R BT.601 luma weights of R, G, B: the gray conversion of the deployed pre-processing
# (OpenCV's COLOR_BGR2GRAY in ``zippypoint.io.to_float_channels``)
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def network_input(images: torch.Tensor, in_channels: int) -> torch.Tensor:
    """(B,3,H,W) RGB batch in [0, 1] -> what a network with ``in_channels`` inputs is fed.

    Gray networks get the same luma as at deployment (not the channel mean), so that training, validation
    and checkpoint selection see the inputs the exported models will see.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected an RGB batch (B,3,H,W), got {tuple(images.shape)}")
    if in_channels == 3:
        return images
    if in_channels != 1:
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    w = torch.tensor(LUMA_WEIGHTS, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True)


def worker_init(worker_id: int) -> None:
    """DataLoader workers: one OpenCV thread each (the training process owns the cores), and Ctrl-C left to the
    training process (a terminal sends SIGINT to the whole group; the trainer finishes its step and shuts the
    workers down, see ``trainer.stop_requests``).

    Workers are spawned, not forked: forking a process whose OpenMP/OpenCV thread pools are
    running can deadlock the child.
    """
    import signal

    import cv2

    cv2.setNumThreads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
