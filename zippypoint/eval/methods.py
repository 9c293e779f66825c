"""Methods that the evaluation compares, behind one small interface.

A method has ``name``, ``descriptor_kind`` (``"binary"``: packed uint8 compared by Hamming distance;
``"float"``: compared by L2), ``settings`` (a JSON-able dict that identifies its cached predictions)
and ``__call__(image_bgr uint8 [H, W, 3]) -> dict(keypoints float32 [N, 2] (x, y), scores float32 [N],
descriptors [N, D])``. The protocol applies its own top-k by score, so methods return a larger
candidate pool (``candidate_budget``). Constructors store settings only; ``load()`` imports the
backend and reads weights, raising ``MethodUnavailable`` with the reason when it cannot.

Names: ``orb``, ``sift``, ``akaze``, ``brisk`` (OpenCV), ``aliked-n16``, ``aliked-t16``, ``disk``,
``xfeat`` (kornia, weights from ``zippypoint.eval.peer_weights``), any preset of
``zippypoint.model.registry`` (the PyTorch extractor; ``<preset>=<file.safetensors>`` for other
weights, e.g. a training checkpoint) and ``onnx:<preset or model.onnx>`` (the ONNX Runtime
extractor of ``zippypoint.runtime``).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Protocol

import numpy as np

DEFAULT_PRESET = "zippypoint"


class MethodUnavailable(RuntimeError):
    """The method cannot run here (missing package, weights or OpenCV module); the message says why."""


class Method(Protocol):
    name: str
    descriptor_kind: str
    settings: dict

    def load(self) -> None: ...

    def __call__(self, image_bgr: np.ndarray) -> dict[str, np.ndarray]: ...


def candidate_budget(top_k: int) -> int:
    """Keypoints a learned method may return before the protocol's top-k: 4x, so that the top-k
    can still be filled after points outside the other image are dropped (1200 at top-300 is
    also one point per 8x8 cell at 320x240, the ZippyPoint/KP2D output)."""
    return 4 * top_k


def empty_features(descriptor_width: int, dtype) -> dict[str, np.ndarray]:
    return {
        "keypoints": np.zeros((0, 2), np.float32),
        "scores": np.zeros(0, np.float32),
        "descriptors": np.zeros((0, descriptor_width), dtype),
    }


def sorted_features(keypoints, scores, descriptors) -> dict[str, np.ndarray]:
    """The output contract: float32 keypoints/scores, scores sorted descending (stable)."""
    keypoints = np.asarray(keypoints, dtype=np.float32).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    descriptors = np.asarray(descriptors)
    order = np.argsort(-scores, kind="stable")
    return {
        "keypoints": np.ascontiguousarray(keypoints[order]),
        "scores": np.ascontiguousarray(scores[order]),
        "descriptors": np.ascontiguousarray(descriptors[order]),
    }


def check_features(features: dict, method: Method) -> dict[str, np.ndarray]:
    """Validate a method's output against the contract; returns the three arrays."""
    try:
        kp, sc, de = features["keypoints"], features["scores"], features["descriptors"]
    except (KeyError, TypeError):
        raise ValueError(f"{method.name}: expected a dict with keypoints, scores, descriptors") from None
    n = len(sc)
    if kp.shape != (n, 2) or sc.shape != (n,) or de.ndim != 2 or len(de) != n:
        raise ValueError(
            f"{method.name}: inconsistent shapes keypoints {kp.shape}, scores {sc.shape}, descriptors {de.shape}"
        )
    if method.descriptor_kind == "binary" and de.dtype != np.uint8:
        raise TypeError(f"{method.name}: binary descriptors must be uint8, got {de.dtype}")
    if not (np.isfinite(kp).all() and np.isfinite(sc).all()):
        raise ValueError(f"{method.name}: keypoints or scores contain NaN or Inf")
    return {"keypoints": kp.astype(np.float32), "scores": sc.astype(np.float32), "descriptors": de}


def file_sha256(path: str | Path) -> str:
    from zippypoint.model.weights import sha256_file

    return sha256_file(path)


class ZippyPointMethod:
    """Our PyTorch extractor (``zippypoint.Extractor``) for a registry preset, with its shipped
    weights, random ones (``pretrained=False``) or a safetensors file (``weights``, e.g. a training
    checkpoint; method name ``<preset>=<file>``). The weights' sha256 joins the cache settings, so
    retrained weights are never mixed up with cached predictions of older ones."""

    descriptor_kind = "binary"

    def __init__(self, preset: str = DEFAULT_PRESET, *, pretrained: bool = True, weights: str | None = None,
                 max_keypoints: int = 1200) -> None:
        self.name = preset if weights is None else f"{preset}={weights}"
        self.preset = preset
        self.pretrained = pretrained
        self.weights = weights
        origin = weights if weights is not None else ("shipped" if pretrained else "random")
        self.settings = {"preset": preset, "weights": origin, "max_keypoints": max_keypoints}
        self._extractor = None

    def load(self) -> None:
        try:
            from zippypoint.extractor import Extractor, ExtractorConfig
            from zippypoint.model.registry import create_model, get_preset, load_weights
        except ImportError as exc:
            raise MethodUnavailable(f"the PyTorch extractor is not available ({exc})") from None
        config = ExtractorConfig(max_keypoints=self.settings["max_keypoints"])
        try:
            if self.weights is not None:
                model = create_model(self.preset)
                load_weights(model, self.weights)
                self._extractor = Extractor(model, config=config)
                source = Path(self.weights)
            else:
                self._extractor = Extractor(self.preset, pretrained=self.pretrained, config=config)
                source = get_preset(self.preset).weights_path() if self.pretrained else None
        except Exception as exc:  # unknown preset, missing or refused weights: skip with the reason
            raise MethodUnavailable(f"cannot build preset {self.preset!r}: {exc}") from None
        self.settings["weights_sha256"] = file_sha256(source) if source is not None else "random"

    def __call__(self, image_bgr: np.ndarray) -> dict[str, np.ndarray]:
        if self._extractor is None:
            raise RuntimeError(f"{self.name}: call load() first")
        out = self._extractor.extract(image_bgr)
        return sorted_features(out["keypoints"], out["scores"], out["descriptors"])


class OnnxMethod:
    """Our ONNX Runtime extractor (``zippypoint.runtime.OnnxExtractor``) for a preset or a model file."""

    descriptor_kind = "binary"

    def __init__(self, path_or_preset: str = DEFAULT_PRESET, *, fmt: str = "onnx", max_keypoints: int = 1200) -> None:
        if fmt not in ("onnx", "onnx-int8"):
            raise ValueError(f"fmt must be 'onnx' or 'onnx-int8', got {fmt!r}")
        self.name = f"{fmt}:{path_or_preset}"
        self.path_or_preset = path_or_preset
        self.fmt = fmt
        self.settings = {"onnx": path_or_preset, "format": fmt, "max_keypoints": max_keypoints}
        self._extractor = None

    def load(self) -> None:
        try:
            from zippypoint.runtime import OnnxExtractor
        except ImportError as exc:
            raise MethodUnavailable(f"the ONNX Runtime extractor is not available ({exc})") from None
        kwargs = {}
        if "config" in inspect.signature(OnnxExtractor).parameters:
            from zippypoint.extractor import ExtractorConfig

            kwargs["config"] = ExtractorConfig(max_keypoints=self.settings["max_keypoints"])
        try:
            path = Path(self.path_or_preset)
            if not path.is_file():  # a preset: its shipped weights, exported once and cached
                from zippypoint.runtime.model_cache import exported_model_path

                path = exported_model_path(self.path_or_preset, self.fmt)
            self._extractor = OnnxExtractor(path, **kwargs).load()
        except Exception as exc:  # missing model file, weights or runtime: skip with the reason
            raise MethodUnavailable(f"cannot build ONNX extractor {self.path_or_preset!r}: {exc}") from None
        self.settings["onnx_sha256"] = file_sha256(path)

    def __call__(self, image_bgr: np.ndarray) -> dict[str, np.ndarray]:
        if self._extractor is None:
            raise RuntimeError(f"{self.name}: call load() first")
        out = self._extractor.extract(image_bgr)
        return sorted_features(out["keypoints"], out["scores"], out["descriptors"])


PEER_NAMES = ("orb", "sift", "akaze", "brisk", "aliked-n16", "aliked-t16", "disk", "xfeat")


def registry_presets() -> list[str]:
    """Presets of ``zippypoint.model.registry``; ``[DEFAULT_PRESET]`` when the registry is not importable."""
    try:
        from zippypoint.model.registry import list_models
    except ImportError:
        return [DEFAULT_PRESET]
    return [m if isinstance(m, str) else str(getattr(m, "name", m)) for m in list_models()]


def default_method_names() -> list[str]:
    """Every method the evaluation knows, ours first; unavailable ones are skipped when loaded."""
    return [*registry_presets(), f"onnx:{DEFAULT_PRESET}", f"onnx-int8:{DEFAULT_PRESET}", *PEER_NAMES]


def create_method(name: str, top_k: int) -> Method:
    """Build (without loading) the method ``name`` for a protocol top-k; ValueError if unknown."""
    from zippypoint.eval import kornia_methods, opencv_methods

    budget = candidate_budget(top_k)
    if name == "orb":
        return opencv_methods.OrbMethod(nfeatures=top_k)
    if name == "sift":
        return opencv_methods.SiftMethod(max_keypoints=top_k)
    if name in ("akaze", "brisk"):
        return opencv_methods.OpenCVBinaryMethod(name)
    if name in ("aliked-n16", "aliked-t16"):
        return kornia_methods.AlikedMethod(name, max_keypoints=budget)
    if name == "disk":
        return kornia_methods.DiskMethod(max_keypoints=budget)
    if name == "xfeat":
        return kornia_methods.XFeatMethod(max_keypoints=budget)
    fmt, colon, target = name.partition(":")
    if fmt in ("onnx", "onnx-int8") and (colon or name == fmt):
        return OnnxMethod(target or DEFAULT_PRESET, fmt=fmt, max_keypoints=budget)
    preset, has_file, weights = name.partition("=")
    if preset == DEFAULT_PRESET or preset in registry_presets():
        if has_file and not weights:
            raise ValueError(f"method {name!r}: expected <preset>=<weights.safetensors>")
        return ZippyPointMethod(preset, weights=weights or None, max_keypoints=budget)
    known = ", ".join([*registry_presets(), "<preset>=<weights.safetensors>", "onnx:<preset or file>", "onnx-int8:<preset or file>", *PEER_NAMES])
    raise ValueError(f"unknown method {name!r}; known: {known}")
