"""Torch-free deployment runtime: run an exported model with ONNX Runtime, post-process in numpy.

Needs only numpy, onnxruntime and opencv: ``OnnxExtractor("zippypoint-int8.onnx").extract("image.jpg")``.
"""

from __future__ import annotations

import importlib

_LAZY = {"OnnxExtractor": "zippypoint.runtime.onnx_extractor"}

__all__ = list(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zippypoint.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
