"""The one registry of methods: ``create_method(name, max_keypoints)`` and the candidate budget.

Names: ``orb``, ``sift``, ``akaze``, ``brisk`` (OpenCV), ``aliked-n16``, ``aliked-t16``, ``disk``, ``xfeat``
(kornia, weights from ``zippypoint.methods.peer_weights``), any preset of ``zippypoint.model.registry``
(PyTorch; ``<preset>=<file.safetensors>`` for other weights), ``onnx:<preset|file>``,
``onnx-int8:<preset|file>`` and ``openvino:<preset|file>`` (where that runtime is installed).
"""

from __future__ import annotations

from zippypoint.methods.base import Method
from zippypoint.methods.ours import DEFAULT_PRESET, EXPORT_RUNTIMES, OurMethod

OPENCV_PEERS = ("orb", "sift", "akaze", "brisk")
KORNIA_PEERS = ("aliked-n16", "aliked-t16", "disk", "xfeat")
PEER_NAMES = (*OPENCV_PEERS, *KORNIA_PEERS)
CANDIDATE_FACTOR = 4
UNLIMITED = ("sift", "akaze", "brisk")  # may keep all they detect (max_keypoints=None)


def candidate_budget(name: str, top_k: int) -> int | None:
    """How many keypoints a consumer that keeps ``top_k`` after its own filtering asks method ``name`` for.

    The one place that decides it. The HPatches protocol drops points outside the other image before its
    top-k, so the evaluation asks learned methods (ours and the kornia peers) for ``4 * top_k``: the top-k
    can still be filled, and 1200 at top-300 is also one point per 8x8 cell at 320x240 (the ZippyPoint /
    KP2D output). ORB and SIFT get exactly ``top_k`` (the reference protocol sets ORB's ``nfeatures`` to the
    top-k); AKAZE and BRISK have no count setting and keep all they detect (None). The benchmark times what
    an application keeps and asks every method for ``top_k`` itself (``create_method(name, top_k)``).
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if name in ("orb", "sift"):
        return top_k
    if name in ("akaze", "brisk"):
        return None
    return CANDIDATE_FACTOR * top_k


def registry_presets() -> list[str]:
    """Presets of ``zippypoint.model.registry``."""
    from zippypoint.model.registry import list_models

    return list_models()


def default_method_names() -> list[str]:
    """Every method the evaluation knows, ours first; unavailable ones are skipped when loaded."""
    return [*registry_presets(), f"onnx:{DEFAULT_PRESET}", f"onnx-int8:{DEFAULT_PRESET}", *PEER_NAMES]


def create_method(name: str, max_keypoints: int | None, *, threads: int | None = None,
                  random_weights: bool = False) -> Method:
    """Build (without loading) the method ``name`` returning at most ``max_keypoints`` keypoints (None: all it
    detects, for the methods in ``UNLIMITED``); ValueError if the name is unknown.

    ``threads``: CPU threads of our networks (None = the runtime's default). ``random_weights``: random
    network weights (our torch runtime and the kornia peers; timing and tests only)."""
    from zippypoint.methods import kornia_peers, opencv_peers

    if max_keypoints is not None and max_keypoints < 0:
        raise ValueError(f"max_keypoints must be >= 0 or None, got {max_keypoints}")
    if max_keypoints is None and name not in UNLIMITED:
        raise ValueError(f"method {name!r} needs a number of keypoints; None (all) only for {', '.join(UNLIMITED)}")
    limit = max_keypoints
    if name == "orb":
        return opencv_peers.OrbMethod(nfeatures=limit)
    if name == "sift":
        return opencv_peers.SiftMethod(max_keypoints=max_keypoints)
    if name in ("akaze", "brisk"):
        return opencv_peers.OpenCVBinaryMethod(name, max_keypoints=max_keypoints)
    if name in ("aliked-n16", "aliked-t16"):
        return kornia_peers.AlikedMethod(name, max_keypoints=limit, random_weights=random_weights)
    if name == "disk":
        return kornia_peers.DiskMethod(max_keypoints=limit, random_weights=random_weights)
    if name == "xfeat":
        return kornia_peers.XFeatMethod(max_keypoints=limit, random_weights=random_weights)
    runtime, colon, target = name.partition(":")
    if runtime in EXPORT_RUNTIMES and (colon or name == runtime):
        return OurMethod(target or DEFAULT_PRESET, runtime, max_keypoints=limit, threads=threads)
    preset, has_file, weights = name.partition("=")
    if preset in registry_presets():
        if has_file and not weights:
            raise ValueError(f"method {name!r}: expected <preset>=<weights.safetensors>")
        return OurMethod(preset, "torch", weights=weights or None, random_weights=random_weights,
                         max_keypoints=limit, threads=threads)
    known = ", ".join([*registry_presets(), "<preset>=<weights.safetensors>",
                       *(f"{r}:<preset or file>" for r in EXPORT_RUNTIMES), *PEER_NAMES])
    raise ValueError(f"unknown method {name!r}; known: {known}")
