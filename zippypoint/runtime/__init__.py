"""Torch-free deployment runtime: run an exported model with ONNX Runtime or OpenVINO, post-process in numpy.

Needs only numpy, onnxruntime and opencv: ``OnnxExtractor("zippypoint-int8.onnx").extract("image.jpg")``.
"""

from __future__ import annotations

from zippypoint.lazy import lazy_names

__all__, __getattr__, __dir__ = lazy_names(__name__, {
    "zippypoint.runtime.onnx_extractor": ("OnnxExtractor",),
    "zippypoint.runtime.openvino_extractor": ("OpenVinoExtractor",),
})
