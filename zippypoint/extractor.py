"""The PyTorch feature extractor: images in, keypoints + packed binary descriptors out.

The stages, the output contract and ``ExtractorConfig`` are shared with every runtime
(``zippypoint.runtime.base``); this module adds the PyTorch network and torch tensors as input.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from zippypoint.model.registry import DEFAULT_PRESET
from zippypoint.runtime.base import ExtractorConfig, StagedExtractor, make_config

__all__ = ["Extractor", "ExtractorConfig"]


class Extractor(StagedExtractor):
    """Detect and describe with a ZippyPoint network.

    ``model``: a preset name (see ``zippypoint.list_models()``) or a ``ZippyPointNet`` instance (``name``
    then labels it). ``pretrained``: load the preset's shipped weights (raises ``WeightsError`` if there are
    none). The device follows the module: move it with ``.to(device)``.
    """

    def __init__(self, model: Any = DEFAULT_PRESET, *, pretrained: bool = True,
                 config: ExtractorConfig | None = None, name: str | None = None, **config_overrides) -> None:
        from zippypoint.model.registry import create_model

        self.config = make_config(config, config_overrides)
        if isinstance(model, str):
            self.name = model
            self.model = create_model(model, pretrained=pretrained)
        else:
            self.name = name or type(model).__name__
            self.model = model
        self.model.eval()

    def to(self, device) -> Extractor:
        self.model.to(device)
        return self

    @property
    def in_channels(self) -> int:
        return self.model.config.in_channels

    def load_image(self, image) -> np.ndarray:
        """A path, a numpy image or a torch tensor ((C,H,W) or (H,W); float in [0, 1], RGB or gray)."""
        torch = sys.modules.get("torch")
        if torch is not None and torch.is_tensor(image):
            return _tensor_to_numpy(image)
        return super().load_image(image)

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run the network on a prepared (B, C, H, W) float32 batch; returns numpy dense maps."""
        import torch

        param = next(self.model.parameters())
        with torch.inference_mode():
            out = self.model(torch.from_numpy(batch).to(device=param.device, dtype=param.dtype))
        return {k: v.float().cpu().numpy() for k, v in out.items()}


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
