"""The staged extractor every runtime shares (torch-free): image -> network input -> dense maps -> features.

``prepare(image) -> (batch, info)``: read or check the image and make the network input (``zippypoint.io``);
``infer(batch) -> dense``: the runtime's network (PyTorch, ONNX Runtime, OpenVINO, ...), the one method a
runtime must provide; ``postprocess(dense, info) -> features``: dense maps to keypoints, scores and packed
descriptors in input-image pixels (``zippypoint.postprocess``); ``extract(image)`` runs the three. Timing
code calls the stages one by one, so a benchmark times exactly the path ``extract`` runs.

Output contract (one dict per image):
- ``keypoints``   float32 [N, 2]: (x, y) in input-image pixels; the centre of the top-left pixel is (0, 0);
- ``scores``      float32 [N], sorted descending;
- ``descriptors`` uint8 [N, 32]: 256 bits with exactly 64 ones; bit j is ``(d[j // 8] >> (j % 8)) & 1``.
Batches (``extract_batch``) are padded to the largest N with a boolean ``mask`` [B, Nmax].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zippypoint.io import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SIZE,
    PrepInfo,
    parse_resize,
    prepare_image,
    read_image,
)
from zippypoint.postprocess import PostprocessConfig, dense_to_features


@dataclass(frozen=True)
class ExtractorConfig:
    max_keypoints: int | None = 1000  # keep the N highest-scoring keypoints; None = all
    score_threshold: float = 1e-4  # minimum keypoint score
    nms_radius: int = 0  # NMS radius in 8x8 cells; 0 = off (each cell already holds one keypoint; see README)
    resize: tuple[int, int] | None = None  # (W, H) the network sees; None = native size (padded to 8)
    max_pixels: int = DEFAULT_MAX_PIXELS  # refuse larger images before decoding
    max_size: int | None = DEFAULT_MAX_SIZE  # longest side the network sees without resize; None or 0 = native

    def __post_init__(self) -> None:
        object.__setattr__(self, "resize", parse_resize(self.resize))
        if self.max_size is not None and self.max_size < 0:
            raise ValueError(f"max_size must be >= 0 (0 = no limit), got {self.max_size}")
        self.postprocess()  # validates the shared fields

    def postprocess(self) -> PostprocessConfig:
        return PostprocessConfig(self.max_keypoints, self.score_threshold, self.nms_radius)


def make_config(config: ExtractorConfig | None, overrides: dict) -> ExtractorConfig:
    """``config`` or an ``ExtractorConfig`` of keyword ``overrides``; TypeError when both are given."""
    if config is not None and overrides:
        raise TypeError("pass either config or keyword overrides, not both")
    return config or ExtractorConfig(**overrides)


class StagedExtractor:
    """Base of every runtime's extractor. Subclasses set ``self.config`` and provide ``in_channels`` and
    ``infer``; ``load_image`` and ``postprocess_config`` may be extended (tensors, export metadata)."""

    config: ExtractorConfig

    @property
    def in_channels(self) -> int:
        raise NotImplementedError

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Dense maps of a prepared float32 batch (B, C, H, W): scores (B,1,H/8,W/8), keypoints (B,2,H/8,W/8),
        descriptors (B,256,H/4,W/4), as numpy arrays."""
        raise NotImplementedError

    def check_batch(self, batch: np.ndarray) -> None:
        """TypeError / ValueError unless ``batch`` is what ``infer`` takes: float32 (B >= 1, in_channels, H, W)
        with H and W multiples of 8, at least 24 (for runtimes that cannot check it themselves)."""
        if not isinstance(batch, np.ndarray):
            raise TypeError(f"expected a numpy array, got {type(batch).__name__}")
        c = self.in_channels
        if batch.ndim != 4 or batch.shape[1] != c:
            raise ValueError(f"expected a batch of shape (B, {c}, H, W), got {batch.shape}")
        if batch.dtype != np.float32:
            raise TypeError(f"expected float32 in [0, 1], got dtype {batch.dtype}")
        b, _, h, w = batch.shape
        if b == 0:
            raise ValueError("empty batch (B = 0)")
        if h % 8 or w % 8 or h < 24 or w < 24:
            raise ValueError(f"height and width must be multiples of 8 and >= 24, got {h}x{w}")

    def load_image(self, image) -> np.ndarray:
        """A path (decoded, size-checked before decoding) or a numpy image (size-checked)."""
        if isinstance(image, (str, Path)):
            return read_image(image, max_pixels=self.config.max_pixels)
        if isinstance(image, np.ndarray):
            if image.ndim >= 2 and image.size and image.shape[0] * image.shape[1] > self.config.max_pixels:
                raise ValueError(f"image of {image.shape[1]}x{image.shape[0]} exceeds {self.config.max_pixels} pixels")
            return image
        raise TypeError(f"expected a path or a numpy array (H,W) / (H,W,C) BGR, got {type(image).__name__}")

    def postprocess_config(self) -> PostprocessConfig:
        return self.config.postprocess()

    def prepare(self, image) -> tuple[np.ndarray, PrepInfo]:
        """The network input (1, C, H, W) float32 and what maps its pixels back to the image."""
        return prepare_image(self.load_image(image), self.in_channels, self.config.resize, self.config.max_size)

    def postprocess(self, dense: dict[str, np.ndarray], info: PrepInfo) -> dict[str, np.ndarray]:
        """The features of the first image of ``dense``, keypoints in the pixels of the image ``info`` describes."""
        feats = dense_to_features(
            dense["scores"][0], dense["keypoints"][0], dense["descriptors"][0],
            image_size=info.padded_size, valid_size=info.resized_size, config=self.postprocess_config(),
        )
        feats["keypoints"] = info.to_original(feats["keypoints"])
        return feats

    def network(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The dense maps of ``batch`` as ``extract`` hands them to ``postprocess``: ``infer`` here; a runtime may
        return them in a form only the post-processing reads (views of its output buffers valid until its next
        run, integer descriptor codes, channels last), which ``postprocess`` turns into the same features."""
        return self.infer(batch)

    def extract(self, image) -> dict[str, np.ndarray]:
        """One image (path or numpy array, BGR/gray as OpenCV decodes) -> features dict (see module docstring)."""
        batch, info = self.prepare(image)
        return self.postprocess(self.network(batch), info)

    def __call__(self, image) -> dict[str, np.ndarray]:
        return self.extract(image)

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


class ExportedExtractor(StagedExtractor):
    """Base of the runtimes that run an exported model file describing itself (``ExportMetadata``): the input
    channels and the descriptor weight come from the file. ``load()`` must set ``self._metadata``."""

    _metadata = None

    def load(self) -> ExportedExtractor:
        raise NotImplementedError

    @property
    def metadata(self):
        """The model file's ``zippypoint.export.metadata.ExportMetadata`` (opens the model if needed)."""
        return self.load()._metadata

    @property
    def in_channels(self) -> int:
        return self.metadata.in_channels

    def postprocess_config(self) -> PostprocessConfig:
        """The shared post-processing with the descriptor weight the export records (built once per config: it
        runs on every image, and validating two configs costs about 40 us, a tenth of the post-processing)."""
        cached = self.__dict__.get("_postprocess_cache")
        if cached is not None and cached[0] is self.config:
            return cached[1]
        post = dataclasses.replace(self.config.postprocess(), descriptor_ones=self.metadata.descriptor_ones)
        self._postprocess_cache = (self.config, post)
        return post
