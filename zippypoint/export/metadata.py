"""Metadata stored in exported models (ONNX ``metadata_props``, CoreML user-defined metadata). Torch-free.

Keys are prefixed with ``zippypoint.`` and values are strings; :class:`ExportMetadata` is what the runtime
reads back so that a model file is self-describing (input channels, preset, provenance).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

PREFIX = "zippypoint."
FORMATS = ("onnx", "onnx-int8", "coreml", "openvino")
OUTPUTS = "scores (B,1,H/8,W/8) in [0,1]; keypoints (B,2,H/8,W/8) x,y pixels; descriptors (B,256,H/4,W/4) raw"


@dataclass(frozen=True)
class ExportMetadata:
    preset: str  # registry name of the network preset (e.g. "zippypoint")
    format: str  # one of FORMATS
    in_channels: int  # 3 = RGB, 1 = grayscale
    input_contract: str  # the preset's input contract in words
    weights_sha256: str  # sha256 of the weights file, or "random" for random weights
    version: str  # zippypoint version that wrote the file
    opset: int = 0  # ONNX opset (0 for CoreML)
    descriptor_dim: int = 256  # raw descriptor channels
    descriptor_ones: int = 64  # ones per binary descriptor
    outputs: str = OUTPUTS  # the dense outputs in words
    quantization: str = ""  # JSON description of the int8 recipe ("" for float models)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {self.format!r}")
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")

    def to_props(self) -> dict[str, str]:
        """Flat ``{"zippypoint.<field>": str}`` for ONNX metadata_props / CoreML user metadata."""
        return {PREFIX + k: str(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ExportMetadata:
        """Parse metadata written by :meth:`to_props`; unknown ``zippypoint.*`` keys are an error."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in props.items():
            if not key.startswith(PREFIX):
                continue
            name = key[len(PREFIX):]
            if name not in fields:
                raise ValueError(f"unknown metadata key {key!r}; known: {sorted(PREFIX + f for f in fields)}")
            values[name] = int(value) if fields[name].type == "int" else value
        missing = sorted(f.name for f in fields.values()
                         if f.name not in values and f.default is dataclasses.MISSING)
        if missing:
            raise ValueError(
                f"not a zippypoint export: metadata lacks {[PREFIX + m for m in missing]} "
                f"(found keys {sorted(props)})"
            )
        return cls(**values)

    def quantization_dict(self) -> dict[str, Any]:
        return json.loads(self.quantization) if self.quantization else {}
