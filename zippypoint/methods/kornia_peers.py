"""Learned peers through kornia with their published weights: ALIKED (n16, t16), DISK, XFeat.

kornia's models are built with random weights and the weights are loaded from the local cache of
``zippypoint.methods.peer_weights`` (safetensors) with a strict key check, so nothing is downloaded.
Images go in as RGB float in [0, 1]; keypoints come out in kornia's pixel-centre frame. Each
method returns up to ``max_keypoints`` keypoints. ``random_weights=True`` keeps kornia's random initial
weights instead (timing only: the same network costs the same) and is recorded in ``settings``.
"""

from __future__ import annotations

import numpy as np

from zippypoint.methods.base import MethodUnavailable, MutualMatching, empty_features, sorted_features
from zippypoint.methods.peer_weights import (
    PeerWeightsError,
    load_peer_state_dict,
    missing_message,
    weights_path,
)


def _import_kornia():
    try:
        import kornia.feature as kf
        import torch
    except ImportError as exc:
        raise MethodUnavailable(f"kornia is not installed ({exc})") from None
    return torch, kf


def _peer_state(name: str) -> dict:
    if not weights_path(name).exists():
        raise MethodUnavailable(missing_message(name))
    try:
        return load_peer_state_dict(name)
    except (PeerWeightsError, OSError, ValueError) as exc:
        raise MethodUnavailable(f"cannot read the weights of {name}: {exc}") from None


def _load_strict(module, state: dict, computed: tuple[str, ...] = ()) -> None:
    """``load_state_dict(strict=True)``; ``computed`` buffers, built by the constructor and absent
    from the published checkpoints, keep their constructed values."""
    full = dict(state)
    own = module.state_dict()
    for key in computed:
        full.setdefault(key, own[key])
    try:
        module.load_state_dict(full, strict=True)
    except RuntimeError as exc:  # names the missing / unexpected keys or the shape mismatch
        raise MethodUnavailable(f"the weights do not fit {type(module).__name__}: {exc}") from None


def _to_tensor(torch, image_bgr: np.ndarray):
    rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0


def _features(keypoints: np.ndarray, scores: np.ndarray, descriptors: np.ndarray) -> dict[str, np.ndarray]:
    """The output contract from kornia's arrays; typed empty arrays when nothing was detected."""
    if len(keypoints) == 0:
        return empty_features(descriptors.shape[-1], np.float32)
    return sorted_features(keypoints, scores, descriptors)


class _KorniaPeer(MutualMatching):
    """Shared ``load``: build the kornia model (``_build``), then load the cached published weights strictly
    into ``_weighted(model)`` unless ``random_weights``."""

    name: str
    descriptor_kind = "float"
    _computed: tuple[str, ...] = ()  # buffers the constructor builds and the checkpoints lack

    def __init__(self, settings: dict, random_weights: bool) -> None:
        self.settings = {**settings, "weights": "random"} if random_weights else settings
        self.random_weights = random_weights
        self._model = None
        self._torch = None

    def _build(self, kf):
        raise NotImplementedError

    def _weighted(self, model):
        return model

    def load(self) -> None:
        torch, kf = _import_kornia()
        state = None if self.random_weights else _peer_state(self.name)
        model = self._build(kf)
        if state is not None:
            _load_strict(self._weighted(model), state, computed=self._computed)
        self._model, self._torch = model.eval(), torch


class AlikedMethod(_KorniaPeer):
    """ALIKED in top-k mode: the ``max_keypoints`` strongest maxima of its score map (NMS radius 2)."""

    _computed = ("dkd.hw_grid",)

    def __init__(self, variant: str = "aliked-n16", *, max_keypoints: int = 1200, random_weights: bool = False) -> None:
        if variant not in ("aliked-n16", "aliked-t16"):
            raise ValueError(f"variant must be 'aliked-n16' or 'aliked-t16', got {variant!r}")
        self.name = variant
        super().__init__({"max_keypoints": max_keypoints, "nms_radius": 2}, random_weights)

    def _build(self, kf):
        # A non-positive detection threshold selects kornia's top-k mode.
        return kf.ALIKED(self.name, max_num_keypoints=self.settings["max_keypoints"], detection_threshold=-1.0)

    def __call__(self, image_bgr: np.ndarray) -> dict[str, np.ndarray]:
        with self._torch.inference_mode():
            out = self._model(_to_tensor(self._torch, image_bgr))[0]
        return _features(out.keypoints.numpy(), out.keypoint_scores.numpy(), out.descriptors.numpy())


class DiskMethod(_KorniaPeer):
    """DISK (depth weights): the ``max_keypoints`` strongest heatmap maxima in 5x5 windows."""

    name = "disk"

    def __init__(self, *, max_keypoints: int = 1200, random_weights: bool = False) -> None:
        super().__init__({"max_keypoints": max_keypoints, "window_size": 5, "weights": "depth"}, random_weights)

    def _build(self, kf):
        return kf.DISK()

    def __call__(self, image_bgr: np.ndarray) -> dict[str, np.ndarray]:
        with self._torch.inference_mode():
            out = self._model(
                _to_tensor(self._torch, image_bgr), n=self.settings["max_keypoints"],
                window_size=self.settings["window_size"], score_threshold=0.0, pad_if_not_divisible=True,
            )[0]
        return _features(out.keypoints.numpy(), out.detection_scores.numpy(), out.descriptors.numpy())


class XFeatMethod(_KorniaPeer):
    """XFeat sparse features: the ``max_keypoints`` best by heatmap x reliability (threshold 0.05)."""

    name = "xfeat"

    def __init__(self, *, max_keypoints: int = 1200, random_weights: bool = False) -> None:
        super().__init__({"max_keypoints": max_keypoints, "detection_threshold": 0.05}, random_weights)

    def _build(self, kf):
        return kf.XFeat(top_k=self.settings["max_keypoints"], detection_threshold=self.settings["detection_threshold"])

    def _weighted(self, model):
        return model.net

    def __call__(self, image_bgr: np.ndarray) -> dict[str, np.ndarray]:
        h, w = image_bgr.shape[:2]
        out = self._model.detectAndCompute(_to_tensor(self._torch, image_bgr))[0]
        keypoints = out["keypoints"].numpy().astype(np.float64)
        # XFeat runs on the image resized to multiples of 32 and reports pixel i at i * r; the centre
        # of that resized pixel is at (i + 0.5) * r - 0.5 in the input, i.e. 0.5 * (r - 1) further.
        ratio = np.array([w / max(32, w // 32 * 32), h / max(32, h // 32 * 32)])
        keypoints += 0.5 * (ratio - 1.0)
        return _features(keypoints, out["scores"].numpy(), out["descriptors"].numpy())
