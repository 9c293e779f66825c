"""Every timed method behind one interface, built per resolution.

A timed method has ``name``, ``runtime``, ``weights`` (a label), ``matcher`` (what ``match`` runs) and
``accuracy_names`` (method names in an evaluation ``results.json`` whose accuracy applies to it), and:

- ``run(image_bgr uint8 [H, W, 3]) -> (features, stages)``: features as the extract contract (keypoints [N,2]
  float32, scores [N] float32 sorted descending, descriptors [N, D]); ``stages`` the milliseconds of
  ``pre`` (image to network input), ``network`` and ``post`` (dense maps to keypoints and packed
  descriptors) for our runtimes, empty for peers (timed end to end only);
- ``match(features1, features2) -> int64 [M, 2]`` index pairs: the methods' own ``match`` (mutual nearest
  neighbours, ``zippypoint.methods.matching``), the same for every method and every consumer.

Peers come from the one registry (``zippypoint.methods.create_method``), asked for the resolution's top-k.
Our runtimes run the stages of the shared extractor base (``prepare``, ``network``, ``postprocess``), each
timed: exactly the path ``extract`` runs. The images come already resized to the resolution, as for the
peers, so no method pays for resizing.
"""

from __future__ import annotations

import platform

import numpy as np

from zippypoint.methods.base import MethodUnavailable, MutualMatching
from zippypoint.model.registry import DEFAULT_PRESET, PAPER_PRESET
from zippypoint.timing import StageClock

# (preset, runtime) of our methods; names are "<preset>:<runtime>"
OUR_RUNTIMES = ("pytorch", "onnx-fp32", "onnx-int8", "openvino", "openvino-int8", "coreml")
PEERS = ("orb", "sift", "xfeat", "aliked-t16", "aliked-n16", "disk")
DEFAULT_METHODS = tuple(dict.fromkeys((
    *(f"{DEFAULT_PRESET}:{r}" for r in ("pytorch", "onnx-int8", "openvino", "openvino-int8", "coreml")),
    *(f"{PAPER_PRESET}:{r}" for r in ("pytorch", "onnx-fp32", "onnx-int8", "openvino", "openvino-int8")),
    "zippypoint-fp:pytorch", "zippypoint-fp:onnx-fp32", *PEERS,
)))
_EXPORT_FORMAT = {"onnx-fp32": "onnx", "onnx-int8": "onnx-int8", "openvino": "openvino", "openvino-int8": "openvino-int8",
                  "coreml": "coreml"}
MATCHER = "mutual nearest neighbour (zippypoint.methods.matching: match_hamming / L2)"


def headline(preset: str = DEFAULT_PRESET) -> str:
    """The method the summary reports for ``preset`` (the default one, or ``PAPER_PRESET`` to compare with): that
    preset on the default runtime of this machine (the 1-bit IR on x86 without AMX, the int8 IR elsewhere;
    ``zippypoint.resolve.default_runtime``)."""
    from zippypoint.resolve import default_runtime

    return f"{preset}:{default_runtime(preset)}"


def check_method_name(name: str) -> None:
    """ValueError naming the accepted forms when ``name`` is not a method the benchmark knows."""
    from zippypoint.model.registry import list_models

    if name in PEERS:
        return
    preset, sep, runtime = name.partition(":")
    if sep and preset in list_models() and runtime in OUR_RUNTIMES:
        return
    raise ValueError(f"unknown method {name!r}; expected one of {', '.join(PEERS)} or <preset>:<runtime> with "
                     f"preset in {list_models()} and runtime in {OUR_RUNTIMES}")


class OursStaged(MutualMatching):
    """Our staged extractor (``zippypoint.runtime.base.StagedExtractor``) with each stage timed."""

    descriptor_kind = "binary"
    matcher = MATCHER

    def __init__(self, name: str, runtime: str, weights: str, extractor, accuracy_names: tuple[str, ...]) -> None:
        self.name = name
        self.runtime = runtime
        self.weights = weights
        self.extractor = extractor
        self.accuracy_names = accuracy_names

    def run(self, image_bgr: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        clock = StageClock()
        batch, info = self.extractor.prepare(image_bgr)
        clock.lap("pre")
        dense = self.extractor.network(batch)  # the maps as extract() passes them on (its fastest path)
        clock.lap("network")
        feats = self.extractor.postprocess(dense, info)
        clock.lap("post")
        return feats, clock.stages


class PeerTimed:
    """A peer of the method registry, timed end to end and matched by its own ``match``."""

    matcher = MATCHER

    def __init__(self, method, runtime: str, weights: str) -> None:
        self.method = method
        self.name = method.name
        self.runtime = runtime
        self.weights = weights
        self.accuracy_names = (method.name,)

    def run(self, image_bgr: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        return self.method(image_bgr), {}

    def match(self, f1: dict, f2: dict) -> np.ndarray:
        return self.method.match(f1, f2)


class MethodFactory:
    """Builds timed methods for a resolution's top-k; our networks and exports are built once (``exports``:
    a :class:`~zippypoint.bench.models.ExportCache`). ``weights``: preset -> ``zippypoint.resolve.ModelChoice``. ``threads``: ONNX
    Runtime intra-op threads. ``random_peers``: allow random kornia weights when the peer cache lacks a file."""

    def __init__(self, exports, weights: dict, threads: int, *, random_peers: bool = True) -> None:
        self.exports = exports
        self.weights = weights
        self.threads = threads
        self.random_peers = random_peers

    def weights_for(self, preset: str):
        from zippypoint.resolve import resolve_model

        if preset not in self.weights:
            self.weights[preset] = resolve_model(preset, fallback_random=True)
        return self.weights[preset]

    def build(self, name: str, top_k: int):
        """The loaded method ``name`` keeping ``top_k`` keypoints; MethodUnavailable (with the reason) when it
        cannot run here."""
        check_method_name(name)
        if name in PEERS:
            return self._peer(name, top_k)
        preset, _, runtime = name.partition(":")
        return self._ours(name, preset, runtime, top_k)

    def _peer(self, name: str, top_k: int) -> PeerTimed:
        from zippypoint.methods.peer_weights import weights_path
        from zippypoint.methods.registry import OPENCV_PEERS, create_method

        if name in OPENCV_PEERS:
            method = create_method(name, top_k)
            method.load()
            return PeerTimed(method, "opencv", "-")
        if not weights_path(name).exists():
            if not self.random_peers:
                raise MethodUnavailable(f"no weights for {name} in the peer cache ({weights_path(name)}); "
                                        "run `python -m zippypoint.methods.peer_weights`")
            method = create_method(name, top_k, random_weights=True)
            method.load()
            return PeerTimed(method, "kornia (pytorch)", "random (timing only: peer weights not in the cache)")
        method = create_method(name, top_k)
        method.load()
        return PeerTimed(method, "kornia (pytorch)", "published (peer cache)")

    def _ours(self, name: str, preset: str, runtime: str, top_k: int) -> OursStaged:
        from zippypoint.extractor import ExtractorConfig

        choice = self.weights_for(preset)
        config = ExtractorConfig(max_keypoints=top_k)
        accuracy = _accuracy_names(preset, runtime, choice)
        if runtime == "pytorch":
            from zippypoint.extractor import Extractor

            extractor = Extractor(self.exports.network(choice), config=config, name=preset)
            return OursStaged(name, "pytorch eager", choice.label, extractor, accuracy)
        if runtime == "coreml":
            return self._coreml(name, choice, config, accuracy)
        try:
            path = self.exports.path(choice, _EXPORT_FORMAT[runtime])
        except (FileNotFoundError, ImportError) as exc:  # e.g. no calibration photos for int8
            raise MethodUnavailable(f"cannot export {preset} as {runtime}: {exc}") from None
        if runtime in ("openvino", "openvino-int8"):
            from zippypoint.runtime.openvino_extractor import OpenVinoExtractor

            extractor = OpenVinoExtractor(path, config=config, threads=self.threads).load()
            label = "openvino (1-bit + int8)" if runtime == "openvino" else "openvino (binary blocks as int8)"
            return OursStaged(name, label, choice.label, extractor, accuracy)
        from zippypoint.runtime import OnnxExtractor

        extractor = OnnxExtractor(path, config=config, intra_op_num_threads=self.threads).load()
        label = "onnxruntime " + ("int8 (QDQ)" if runtime == "onnx-int8" else "fp32")
        return OursStaged(name, label, choice.label, extractor, accuracy)

    def _coreml(self, name: str, choice, config, accuracy) -> OursStaged:
        from zippypoint.runtime.coreml_extractor import CoreMLExtractor

        if platform.system() != "Darwin":
            raise MethodUnavailable("CoreML prediction needs macOS (conversion alone works elsewhere)")
        try:
            import coremltools  # noqa: F401
        except ImportError:
            raise MethodUnavailable("coremltools is not installed (pip install 'zippypoint[coreml]')") from None
        net = self.exports.network(choice)
        extractor = CoreMLExtractor(self.exports.path(choice, "coreml"), net.config.in_channels, config=config)
        return OursStaged(name, "coreml (cpu)", choice.label, extractor.load(), accuracy)


def _accuracy_names(preset: str, runtime: str, choice) -> tuple[str, ...]:
    """Evaluation names (``fnmatch`` patterns) whose accuracy applies, best first: the runtime's own entry, then
    the PyTorch model (the fp32 ONNX export equals it to 1e-4; int8 and CoreML are close but not equal)."""
    torch_names = ([f"{preset}={choice.path}"] if choice.path is not None else []) + [preset, f"{preset}=*"]
    if runtime == "onnx-int8":
        return (f"onnx-int8:{preset}", *torch_names)
    if runtime in ("openvino", "openvino-int8"):
        return (f"{runtime}:{preset}", *torch_names)
    if runtime == "onnx-fp32":
        return (f"onnx:{preset}", *torch_names)
    return tuple(torch_names)
