"""Feature extraction with an exported CoreML model (``zippypoint export --format coreml``); macOS only.

Same stages, output contract and options as every runtime (``zippypoint.runtime.base``).
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from zippypoint.runtime.base import ExtractorConfig, StagedExtractor, make_config


class CoreMLExtractor(StagedExtractor):
    """Detect and describe with a ``.mlpackage`` on the CPU. ``in_channels``: the network's input channels
    (3 for RGB presets, 1 for grayscale ones)."""

    def __init__(self, model_path: str | Path, in_channels: int, *, config: ExtractorConfig | None = None,
                 **config_overrides) -> None:
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        self.model_path = Path(model_path)
        self._in_channels = in_channels
        self.config = make_config(config, config_overrides)
        self._model = None

    def load(self) -> CoreMLExtractor:
        """Open the model now (otherwise on first use); ImportError / OSError say why it cannot run here."""
        if self._model is None:
            if platform.system() != "Darwin":
                raise OSError("CoreML prediction needs macOS (conversion alone works elsewhere)")
            import coremltools as ct

            self._model = ct.models.MLModel(str(self.model_path), compute_units=ct.ComputeUnit.CPU_ONLY)
        return self

    @property
    def in_channels(self) -> int:
        return self._in_channels

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.load()
        return {k: np.asarray(v) for k, v in self._model.predict({"image": batch}).items()}
