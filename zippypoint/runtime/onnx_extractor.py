"""Feature extraction with an exported ONNX model (fp32 or int8) and ONNX Runtime; no torch.

Same stages, output contract and options as every runtime (``zippypoint.runtime.base``). The model file describes itself (metadata written by ``zippypoint export``): input channels, preset, format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zippypoint.export.metadata import ExportMetadata
from zippypoint.runtime.base import ExportedExtractor, ExtractorConfig, make_config

OUTPUT_NAMES = ("scores", "keypoints", "descriptors")


class OnnxExtractor(ExportedExtractor):
    """Detect and describe with an exported ZippyPoint ONNX model.

    ``model_path``: a file written by ``zippypoint export --format onnx|onnx-int8``; it is opened on first use
    (or by :meth:`load`). ``config`` / keyword overrides: as for ``Extractor`` (max_keypoints, score_threshold,
    nms_radius, resize, max_pixels). ``providers``: ONNX Runtime execution providers (default CPU).
    ``intra_op_num_threads``: threads per inference (None = ONNX Runtime's default).
    """

    def __init__(self, model_path: str | Path, *, config: ExtractorConfig | None = None,
                 providers: list[str] | None = None, intra_op_num_threads: int | None = None,
                 **config_overrides) -> None:
        if intra_op_num_threads is not None and intra_op_num_threads < 0:
            raise ValueError(f"intra_op_num_threads must be >= 0 or None, got {intra_op_num_threads}")
        self.model_path = Path(model_path)
        self.config = make_config(config, config_overrides)
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        self.intra_op_num_threads = intra_op_num_threads
        self._session = None
        self._metadata: ExportMetadata | None = None

    def load(self) -> OnnxExtractor:
        """Open the model now (otherwise on first use); returns self."""
        if self._session is None:
            from zippypoint.ort_session import cpu_session, session_options

            if not self.model_path.is_file():
                raise FileNotFoundError(f"ONNX model not found: {self.model_path}")
            session = cpu_session(self.model_path, session_options(self.intra_op_num_threads),
                                  providers=self.providers)
            meta = ExportMetadata.from_props(dict(session.get_modelmeta().custom_metadata_map))
            if meta.format not in ("onnx", "onnx-int8"):
                raise ValueError(f"{self.model_path} is a {meta.format!r} export, not an ONNX model")
            outputs = tuple(o.name for o in session.get_outputs())
            if outputs != OUTPUT_NAMES:
                raise ValueError(f"{self.model_path}: expected outputs {OUTPUT_NAMES}, got {outputs}")
            self._session, self._metadata = session, meta
        return self

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run the network on a prepared float32 batch (B, C, H, W) in [0, 1], H and W multiples of 8 (>= 24).

        Returns numpy dense maps: scores (B,1,H/8,W/8), keypoints (B,2,H/8,W/8), descriptors (B,256,H/4,W/4).
        """
        self.load()
        self.check_batch(batch)
        out = self._session.run(list(OUTPUT_NAMES), {self._session.get_inputs()[0].name: batch})
        return dict(zip(OUTPUT_NAMES, out, strict=True))

    def __repr__(self) -> str:
        return f"OnnxExtractor({str(self.model_path)!r}, config={self.config})"
