"""Every timed method behind one interface, built per resolution.

A timed method has ``name``, ``runtime``, ``weights`` (a label), ``matcher`` (what ``match`` runs) and
``accuracy_names`` (method names in an evaluation ``results.json`` whose accuracy applies to it), and:

- ``run(image_bgr uint8 [H, W, 3]) -> (features, stages)``: features as the extract contract (keypoints [N,2]
  float32, scores [N] float32 sorted descending, descriptors [N, D]); ``stages`` the milliseconds of
  ``pre`` (image to network input), ``network`` and ``post`` (dense maps to keypoints and packed
  descriptors) for our runtimes, empty for peers (timed end to end only);
- ``match(features1, features2) -> int64 [M, 2]`` index pairs.

Our runtimes run exactly the steps of ``Extractor.extract`` / ``OnnxExtractor.extract`` (prepare, network,
post-process, map keypoints back), each timed. The images come already resized to the resolution, as for
the peers, so no method pays for resizing.
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Callable

import numpy as np

from zippypoint.bench.timing import StageClock
from zippypoint.eval.methods import MethodUnavailable

# (preset, runtime) of our methods; names are "<preset>:<runtime>"
OUR_RUNTIMES = ("pytorch", "onnx-fp32", "onnx-int8", "coreml")
PEERS = ("orb", "sift", "xfeat", "aliked-t16", "aliked-n16", "disk")
DEFAULT_METHODS = (
    "zippypoint:pytorch", "zippypoint:onnx-fp32", "zippypoint:onnx-int8", "zippypoint:coreml",
    "zippypoint-fp:pytorch", "zippypoint-fp:onnx-fp32", *PEERS,
)
HEADLINE = "zippypoint:onnx-int8"  # the deployment runtime the summary reports
_EXPORT_FORMAT = {"onnx-fp32": "onnx", "onnx-int8": "onnx-int8", "coreml": "coreml"}


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


class OursStaged:
    """Our extractor with each stage timed: ``infer`` maps a prepared (1, C, H, W) batch to dense maps."""

    def __init__(self, name: str, runtime: str, weights: str, in_channels: int,
                 infer: Callable[[np.ndarray], dict], postprocess, accuracy_names: tuple[str, ...]) -> None:
        self.name = name
        self.runtime = runtime
        self.weights = weights
        self.in_channels = in_channels
        self.infer = infer
        self.postprocess = postprocess
        self.accuracy_names = accuracy_names
        self.matcher = "match_hamming (mutual NN, ratio 0.95)"

    def run(self, image_bgr: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        from zippypoint.io import prepare_image
        from zippypoint.postprocess import dense_to_features

        clock = StageClock()
        batch, info = prepare_image(image_bgr, self.in_channels)
        clock.lap("pre")
        dense = self.infer(batch)
        clock.lap("network")
        feats = dense_to_features(dense["scores"][0], dense["keypoints"][0], dense["descriptors"][0],
                                  image_size=info.padded_size, valid_size=info.resized_size, config=self.postprocess)
        feats["keypoints"] = info.to_original(feats["keypoints"])
        clock.lap("post")
        return feats, clock.stages

    def match(self, f1: dict, f2: dict) -> np.ndarray:
        from zippypoint.binary_desc.matcher import match_hamming

        return match_hamming(f1["descriptors"], f2["descriptors"])


class PeerTimed:
    """A peer of ``zippypoint.eval.methods`` timed end to end; matched by OpenCV's brute-force mutual NN
    (Hamming for binary descriptors, L2 for float ones)."""

    def __init__(self, method, runtime: str, weights: str) -> None:
        import cv2

        self.method = method
        self.name = method.name
        self.runtime = runtime
        self.weights = weights
        self.accuracy_names = (method.name,)
        binary = method.descriptor_kind == "binary"
        self._bf = cv2.BFMatcher(cv2.NORM_HAMMING if binary else cv2.NORM_L2, crossCheck=True)
        self.matcher = f"cv2.BFMatcher({'NORM_HAMMING' if binary else 'NORM_L2'}, crossCheck=True)"

    def run(self, image_bgr: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        return self.method(image_bgr), {}

    def match(self, f1: dict, f2: dict) -> np.ndarray:
        if len(f1["descriptors"]) == 0 or len(f2["descriptors"]) == 0:
            return np.zeros((0, 2), np.int64)
        matches = self._bf.match(f1["descriptors"], f2["descriptors"])
        return np.array([(m.queryIdx, m.trainIdx) for m in matches], np.int64).reshape(-1, 2)


def _random_weight_peer(name: str, top_k: int):
    """A kornia peer with kornia's random initial weights, for timing only (same network, same cost)."""
    from zippypoint.eval import kornia_methods as km

    torch, kf = km._import_kornia()

    class RandomAliked(km.AlikedMethod):
        def load(self) -> None:
            model = kf.ALIKED(self.name, max_num_keypoints=self.settings["max_keypoints"], detection_threshold=-1.0)
            self._model, self._torch = model.eval(), torch

    class RandomDisk(km.DiskMethod):
        def load(self) -> None:
            self._model, self._torch = kf.DISK().eval(), torch

    class RandomXFeat(km.XFeatMethod):
        def load(self) -> None:
            model = kf.XFeat(top_k=self.settings["max_keypoints"],
                             detection_threshold=self.settings["detection_threshold"])
            self._model, self._torch = model.eval(), torch

    if name == "xfeat":
        return RandomXFeat(max_keypoints=top_k)
    if name == "disk":
        return RandomDisk(max_keypoints=top_k)
    return RandomAliked(name, max_keypoints=top_k)


class MethodFactory:
    """Builds timed methods for a resolution's top-k; our networks and exports are built once (``exports``:
    a :class:`~zippypoint.bench.models.ExportCache`). ``weights``: preset -> WeightsChoice. ``threads``: ONNX
    Runtime intra-op threads. ``random_peers``: allow random kornia weights when the peer cache lacks a file."""

    def __init__(self, exports, weights: dict, threads: int, *, random_peers: bool = True) -> None:
        self.exports = exports
        self.weights = weights
        self.threads = threads
        self.random_peers = random_peers

    def weights_for(self, preset: str):
        from zippypoint.bench.models import resolve_weights

        if preset not in self.weights:
            self.weights[preset] = resolve_weights(preset)
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
        from zippypoint.eval import kornia_methods, opencv_methods
        from zippypoint.eval.peer_weights import weights_path

        if name == "orb":
            method = opencv_methods.OrbMethod(nfeatures=top_k)
        elif name == "sift":
            method = opencv_methods.SiftMethod(max_keypoints=top_k)
        elif name == "xfeat":
            method = kornia_methods.XFeatMethod(max_keypoints=top_k)
        elif name == "disk":
            method = kornia_methods.DiskMethod(max_keypoints=top_k)
        else:
            method = kornia_methods.AlikedMethod(name, max_keypoints=top_k)
        if name in ("orb", "sift"):
            method.load()
            return PeerTimed(method, "opencv", "-")
        if not weights_path(name).exists():
            if not self.random_peers:
                raise MethodUnavailable(f"no weights for {name} in the peer cache ({weights_path(name)}); "
                                        "run `python -m zippypoint.eval.peer_weights`")
            method = _random_weight_peer(name, top_k)
            method.load()
            return PeerTimed(method, "kornia (pytorch)", "random (timing only: peer weights not in the cache)")
        method.load()
        return PeerTimed(method, "kornia (pytorch)", "published (peer cache)")

    def _ours(self, name: str, preset: str, runtime: str, top_k: int) -> OursStaged:
        from zippypoint.extractor import ExtractorConfig

        choice = self.weights_for(preset)
        config = ExtractorConfig(max_keypoints=top_k)
        accuracy = _accuracy_names(preset, runtime, choice)
        if runtime == "pytorch":
            from zippypoint.extractor import Extractor

            extractor = Extractor(self.exports.network(choice), config=config)
            return OursStaged(name, "pytorch eager", choice.label, extractor.in_channels, extractor.dense,
                              config.postprocess(), accuracy)
        if runtime == "coreml":
            return self._coreml(name, choice, config, accuracy)
        try:
            path = self.exports.path(choice, _EXPORT_FORMAT[runtime])
        except (FileNotFoundError, ImportError) as exc:  # e.g. no calibration photos for int8
            raise MethodUnavailable(f"cannot export {preset} as {runtime}: {exc}") from None
        from zippypoint.runtime import OnnxExtractor

        extractor = OnnxExtractor(path, config=config, intra_op_num_threads=self.threads).load()
        post = dataclasses.replace(config.postprocess(), descriptor_ones=extractor.metadata.descriptor_ones)
        label = "onnxruntime " + ("int8 (QDQ)" if runtime == "onnx-int8" else "fp32")
        return OursStaged(name, label, choice.label, extractor.in_channels, extractor.infer_dense, post, accuracy)

    def _coreml(self, name: str, choice, config, accuracy) -> OursStaged:
        if platform.system() != "Darwin":
            raise MethodUnavailable("CoreML prediction needs macOS (conversion alone works elsewhere)")
        try:
            import coremltools as ct
        except ImportError:
            raise MethodUnavailable("coremltools is not installed (pip install 'zippypoint[coreml]')") from None
        path = self.exports.path(choice, "coreml")
        model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
        net = self.exports.network(choice)

        def infer(batch: np.ndarray) -> dict:
            return {k: np.asarray(v) for k, v in model.predict({"image": batch}).items()}

        return OursStaged(name, "coreml (cpu)", choice.label, net.config.in_channels, infer,
                          config.postprocess(), accuracy)


def _accuracy_names(preset: str, runtime: str, choice) -> tuple[str, ...]:
    """Evaluation names (``fnmatch`` patterns) whose accuracy applies, best first: the runtime's own entry, then
    the PyTorch model (the fp32 ONNX export equals it to 1e-4; int8 and CoreML are close but not equal)."""
    torch_names = ([f"{preset}={choice.path}"] if choice.path is not None else []) + [preset, f"{preset}=*"]
    if runtime == "onnx-int8":
        return (f"onnx-int8:{preset}", *torch_names)
    if runtime == "onnx-fp32":
        return (f"onnx:{preset}", *torch_names)
    return tuple(torch_names)
