"""OpenCV peers: ORB, SIFT and, where the installed OpenCV has them, AKAZE and BRISK.

Keypoints are OpenCV's ``KeyPoint.pt`` (pixel-centre convention), scores ``KeyPoint.response``.
All run on the grayscale image. ORB, AKAZE and BRISK give packed binary descriptors (32, 61 and
64 bytes), SIFT 128 floats.
"""

from __future__ import annotations

import numpy as np

from zippypoint.methods.base import MethodUnavailable, MutualMatching, empty_features, sorted_features


def _detect_and_compute(detector, image_bgr: np.ndarray, width: int, dtype) -> dict[str, np.ndarray]:
    import cv2

    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    keypoints, descriptors = detector.detectAndCompute(gray, None)
    if not keypoints or descriptors is None:
        return empty_features(width, dtype)
    points = np.array([k.pt for k in keypoints], dtype=np.float32)
    scores = np.array([k.response for k in keypoints], dtype=np.float32)
    return sorted_features(points, scores, descriptors.astype(dtype, copy=False))


def _strongest(features: dict[str, np.ndarray], limit: int | None) -> dict[str, np.ndarray]:
    """The ``limit`` first (strongest) features; all when ``limit`` is None."""
    return features if limit is None else {k: v[:limit] for k, v in features.items()}


class OrbMethod(MutualMatching):
    """``cv2.ORB_create(nfeatures)``; the reference protocol sets nfeatures to the top-k."""

    name = "orb"
    descriptor_kind = "binary"

    def __init__(self, nfeatures: int = 300) -> None:
        self.settings = {"nfeatures": nfeatures}
        self._orb = None

    def load(self) -> None:
        import cv2

        self._orb = cv2.ORB_create(nfeatures=self.settings["nfeatures"])

    def __call__(self, image_bgr: np.ndarray) -> dict[str, np.ndarray]:
        return _detect_and_compute(self._orb, image_bgr, 32, np.uint8)


class SiftMethod(MutualMatching):
    """``cv2.SIFT_create()`` with its defaults, keeping the ``max_keypoints`` strongest responses
    (the reference protocol keeps the top-k, like ORB's ``nfeatures``; None keeps all)."""

    name = "sift"
    descriptor_kind = "float"

    def __init__(self, max_keypoints: int | None = 300) -> None:
        self.settings = {"max_keypoints": max_keypoints}
        self._sift = None

    def load(self) -> None:
        import cv2

        if not hasattr(cv2, "SIFT_create"):
            raise MethodUnavailable(f"this OpenCV ({cv2.__version__}) has no SIFT_create")
        self._sift = cv2.SIFT_create()

    def __call__(self, image_bgr: np.ndarray) -> dict[str, np.ndarray]:
        return _strongest(_detect_and_compute(self._sift, image_bgr, 128, np.float32), self.settings["max_keypoints"])


class OpenCVBinaryMethod(MutualMatching):
    """AKAZE or BRISK with OpenCV defaults, keeping the ``max_keypoints`` strongest responses (None keeps all
    they detect); skipped where OpenCV was built without them."""

    descriptor_kind = "binary"
    _FACTORIES = {"akaze": ("AKAZE_create", 61), "brisk": ("BRISK_create", 64)}

    def __init__(self, name: str, max_keypoints: int | None = None) -> None:
        if name not in self._FACTORIES:
            raise ValueError(f"expected one of {sorted(self._FACTORIES)}, got {name!r}")
        self.name = name
        self.settings = {} if max_keypoints is None else {"max_keypoints": max_keypoints}
        self._detector = None

    def load(self) -> None:
        import cv2

        factory, _ = self._FACTORIES[self.name]
        create = getattr(cv2, factory, None)
        if create is None and hasattr(cv2, "xfeatures2d"):
            create = getattr(cv2.xfeatures2d, factory, None)
        if create is None:
            raise MethodUnavailable(f"this OpenCV ({cv2.__version__}) has no {factory}")
        self._detector = create()

    def __call__(self, image_bgr: np.ndarray) -> dict[str, np.ndarray]:
        features = _detect_and_compute(self._detector, image_bgr, self._FACTORIES[self.name][1], np.uint8)
        return _strongest(features, self.settings.get("max_keypoints"))
