"""Our extractor on every runtime as a method: ``zippypoint`` (PyTorch, shipped weights),
``<preset>=<file.safetensors>`` (PyTorch, other weights, e.g. a training checkpoint), ``onnx:<preset|file>``,
``onnx-int8:<preset|file>`` and, where OpenVINO is installed, ``openvino:<preset|file>`` (1-bit blocks) and
``openvino-int8:<preset|file>`` (binary blocks as int8).

The extractor comes from ``zippypoint.resolve.build_extractor``; the sha256 of the weights or model file joins
``settings``, so retrained weights are never mixed up with cached predictions of older ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zippypoint.methods.base import MethodUnavailable, MutualMatching, sorted_features
from zippypoint.model.registry import DEFAULT_PRESET

EXPORT_RUNTIMES = ("onnx", "onnx-int8", "openvino", "openvino-int8")


class OurMethod(MutualMatching):
    """Our extractor for ``target`` (a preset, or for the export runtimes a model file) on ``runtime``.

    ``weights``: a safetensors file (torch runtime) instead of the shipped weights; ``random_weights``: seeded
    random weights (torch runtime; tests and timing). After ``load()``, ``extractor`` is the staged extractor
    (``prepare`` / ``infer`` / ``postprocess``) that ``__call__`` runs."""

    descriptor_kind = "binary"

    def __init__(self, target: str = DEFAULT_PRESET, runtime: str = "torch", *, weights: str | None = None,
                 random_weights: bool = False, max_keypoints: int = 1200, threads: int | None = None) -> None:
        if runtime not in ("torch", *EXPORT_RUNTIMES):
            raise ValueError(f"runtime must be 'torch' or one of {EXPORT_RUNTIMES}, got {runtime!r}")
        self.target, self.runtime, self.weights = target, runtime, weights
        self.random_weights, self.threads = random_weights, threads
        if runtime == "torch":
            self.name = target if weights is None else f"{target}={weights}"
            origin = weights if weights is not None else ("random" if random_weights else "shipped")
            self.settings = {"preset": target, "weights": origin, "max_keypoints": max_keypoints}
        else:
            self.name = f"{runtime}:{target}"
            self.settings = {"model" if runtime.startswith("openvino") else "onnx": target, "format": runtime,
                             "max_keypoints": max_keypoints}
        self.extractor = None

    def load(self) -> None:
        try:
            from zippypoint.extractor import ExtractorConfig
            from zippypoint.resolve import build_extractor, model_file, resolve_model
        except ImportError as exc:
            raise MethodUnavailable(f"our extractor is not available ({exc})") from None
        config = ExtractorConfig(max_keypoints=self.settings["max_keypoints"])
        try:
            self.extractor = build_extractor(self.target, self.runtime, self.weights, config, self.threads,
                                             random_weights=self.random_weights)
            if self.runtime == "torch":
                digest = resolve_model(self.target, self.weights, random_weights=self.random_weights).sha256
                self.settings["weights_sha256"] = digest
            else:
                from zippypoint.model.weights import sha256_file

                path = Path(model_file(self.target, self.runtime, self.weights))
                self.settings[f"{'model' if self.runtime.startswith('openvino') else 'onnx'}_sha256"] = sha256_file(path)
        except Exception as exc:  # unknown preset, missing or refused weights or runtime: skip with the reason
            raise MethodUnavailable(f"cannot build {self.name!r} on {self.runtime}: {exc}") from None

    def __call__(self, image_bgr: np.ndarray) -> dict[str, np.ndarray]:
        if self.extractor is None:
            raise RuntimeError(f"{self.name}: call load() first")
        out = self.extractor.extract(image_bgr)
        return sorted_features(out["keypoints"], out["scores"], out["descriptors"])
