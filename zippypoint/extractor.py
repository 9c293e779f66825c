"""The PyTorch feature extractor: images in, keypoints + packed binary descriptors out.

Output contract (one dict per image):
- ``keypoints``   float32 [N, 2]: (x, y) in input-image pixels; the centre of the top-left pixel is (0, 0);
- ``scores``      float32 [N], sorted descending;
- ``descriptors`` uint8 [N, 32]: 256 bits with exactly 64 ones; bit j is ``(d[j // 8] >> (j % 8)) & 1``.
Batches (``extract_batch``) are padded to the largest N with a boolean ``mask`` [B, Nmax].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zippypoint.io import DEFAULT_MAX_PIXELS, parse_resize, prepare_image, read_image
from zippypoint.postprocess import PostprocessConfig, dense_to_features


@dataclass(frozen=True)
class ExtractorConfig:
    max_keypoints: int | None = 1000  # keep the N highest-scoring keypoints; None = all
    score_threshold: float = 1e-4  # minimum keypoint score
    nms_radius: int = 0  # NMS radius in 8x8 cells; 0 = off (each cell already holds one keypoint; see README)
    resize: tuple[int, int] | None = None  # (W, H) the network sees; None = native size (padded to 8)
    max_pixels: int = DEFAULT_MAX_PIXELS  # refuse larger images before decoding

    def __post_init__(self) -> None:
        object.__setattr__(self, "resize", parse_resize(self.resize))
        self.postprocess()  # validates the shared fields

    def postprocess(self) -> PostprocessConfig:
        return PostprocessConfig(self.max_keypoints, self.score_threshold, self.nms_radius)


class Extractor:
    """Detect and describe with a ZippyPoint network.

    ``model``: a preset name (see ``zippypoint.list_models()``) or a ``ZippyPointNet`` instance.
    ``pretrained``: load the preset's shipped weights (raises ``WeightsError`` if there are none).
    The device follows the module: move it with ``.to(device)``.
    """

    def __init__(self, model: Any = "zippypoint", *, pretrained: bool = True,
                 config: ExtractorConfig | None = None, **config_overrides) -> None:
        from zippypoint.model.registry import create_model

        if config is not None and config_overrides:
            raise TypeError("pass either config or keyword overrides, not both")
        self.config = config or ExtractorConfig(**config_overrides)
        if isinstance(model, str):
            self.name = model
            self.model = create_model(model, pretrained=pretrained)
        else:
            self.name = type(model).__name__
            self.model = model
        self.model.eval()

    def to(self, device) -> Extractor:
        self.model.to(device)
        return self

    @property
    def in_channels(self) -> int:
        return self.model.config.in_channels

    def _load(self, image) -> np.ndarray:
        if isinstance(image, (str, Path)):
            return read_image(image, max_pixels=self.config.max_pixels)
        try:
            import torch
        except ImportError:  # pragma: no cover
            torch = None
        if torch is not None and torch.is_tensor(image):
            return _tensor_to_numpy(image)
        if isinstance(image, np.ndarray):
            if image.shape[:2] and image.size and image.shape[0] * image.shape[1] > self.config.max_pixels:
                raise ValueError(f"image of {image.shape[1]}x{image.shape[0]} exceeds {self.config.max_pixels} pixels")
            return image
        raise TypeError(f"expected a path, numpy array or torch tensor, got {type(image).__name__}")

    def dense(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run the network on a prepared (B, C, H, W) float32 batch; returns numpy dense maps."""
        import torch

        param = next(self.model.parameters())
        with torch.inference_mode():
            out = self.model(torch.from_numpy(batch).to(device=param.device, dtype=param.dtype))
        return {k: v.float().cpu().numpy() for k, v in out.items()}

    def extract(self, image) -> dict[str, np.ndarray]:
        """One image (path, numpy array or tensor) -> features dict (see module docstring)."""
        array = self._load(image)
        batch, info = prepare_image(array, self.in_channels, self.config.resize)
        dense = self.dense(batch)
        feats = dense_to_features(
            dense["scores"][0], dense["keypoints"][0], dense["descriptors"][0],
            image_size=info.padded_size, valid_size=info.resized_size, config=self.config.postprocess(),
        )
        feats["keypoints"] = info.to_original(feats["keypoints"])
        return feats

    __call__ = extract

    def extract_batch(self, images) -> dict[str, np.ndarray]:
        """Several images -> padded arrays keypoints [B,N,2], scores [B,N], descriptors [B,N,32], mask [B,N]."""
        feats = [self.extract(im) for im in images]
        n = max((len(f["scores"]) for f in feats), default=0)
        b = len(feats)
        out = {
            "keypoints": np.zeros((b, n, 2), np.float32),
            "scores": np.zeros((b, n), np.float32),
            "descriptors": np.zeros((b, n, 32), np.uint8),
            "mask": np.zeros((b, n), bool),
        }
        for i, f in enumerate(feats):
            k = len(f["scores"])
            out["keypoints"][i, :k] = f["keypoints"]
            out["scores"][i, :k] = f["scores"]
            out["descriptors"][i, :k] = f["descriptors"]
            out["mask"][i, :k] = True
        return out


def _tensor_to_numpy(t) -> np.ndarray:
    """(C,H,W) or (H,W) tensor -> numpy image. Float tensors must be in [0, 1]; channels are RGB/gray."""
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"extract takes one image; got a batch of {t.shape[0]} (use extract_batch)")
        t = t[0]
    if t.dim() == 3:
        if t.shape[0] not in (1, 3, 4):
            raise ValueError(f"expected a (C,H,W) tensor with C in (1, 3, 4), got {tuple(t.shape)}")
        arr = t.detach().cpu().permute(1, 2, 0).numpy()
        if arr.shape[2] >= 3:
            arr = np.ascontiguousarray(arr[:, :, [2, 1, 0] + ([3] if arr.shape[2] == 4 else [])])  # RGB -> BGR
        return arr
    if t.dim() == 2:
        return t.detach().cpu().numpy()
    raise ValueError(f"expected a (C,H,W) or (H,W) tensor, got shape {tuple(t.shape)}")
