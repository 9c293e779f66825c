"""One model resolver and one extractor factory, used by the CLI, evaluation, export and benchmark.

``resolve_model(preset, weights)`` decides which weights a preset runs with: a safetensors file (``weights``),
the preset's shipped file, or seeded random weights (``random_weights=True``, or ``fallback_random=True`` when
nothing is shipped: timing only, the network costs the same). The result records the file's sha256.

``build_extractor(model, runtime, weights, config, threads)`` returns a ready extractor of the shared staged
interface (``zippypoint.runtime.base.StagedExtractor``):

- ``"torch"``: ``zippypoint.extractor.Extractor`` over the resolved network;
- ``"onnx"`` / ``"onnx-int8"``: ``zippypoint.runtime.OnnxExtractor`` over ``model`` when it is an ``.onnx`` file,
  else over the preset's export from ``zippypoint.runtime.model_cache`` (made once, then reused);
- ``"openvino"``: ``zippypoint.runtime.openvino_extractor.OpenVinoExtractor`` when that module is installed
  (same rule: a model file, or the preset's cached export in format ``"openvino"``).

Nothing here imports torch at module level; an exported model file runs without it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

RUNTIMES = ("torch", "onnx", "onnx-int8", "openvino")
DEFAULT_MODEL = "zippypoint"
RANDOM_SEED = 0  # random weights are drawn from this seed, so two builds of "random" are the same network
RANDOM_SHA256 = "random"
_MODEL_SUFFIXES = {"onnx": (".onnx",), "onnx-int8": (".onnx",), "openvino": (".xml",)}


@dataclass(frozen=True)
class ModelChoice:
    """The weights a preset runs with: ``source`` is "shipped", "file" or "random"."""

    preset: str
    source: str
    path: str | None  # the safetensors file (shipped and file)
    sha256: str  # of that file; RANDOM_SHA256 for seeded random weights

    @property
    def label(self) -> str:
        if self.source == "random":
            return "random (timing only: trained weights absent)"
        name = "shipped" if self.source == "shipped" else f"file {Path(self.path).name}"
        return f"{name} (sha256 {self.sha256[:12]})"


def available_runtimes() -> tuple[str, ...]:
    """The runtimes ``build_extractor`` accepts here ("openvino" only with its extractor module installed)."""
    has_openvino = importlib.util.find_spec("zippypoint.runtime.openvino_extractor") is not None
    return RUNTIMES if has_openvino else tuple(r for r in RUNTIMES if r != "openvino")


def resolve_model(preset: str = DEFAULT_MODEL, weights: str | Path | None = None, *, random_weights: bool = False,
                  fallback_random: bool = False) -> ModelChoice:
    """Pick the weights of ``preset``: ``weights`` (a safetensors file) if given, else the shipped ones, else
    random ones when ``fallback_random``; ``random_weights`` forces random ones. Raises ValueError for an
    unknown preset or contradictory options, FileNotFoundError for a missing file and ``WeightsError`` when
    nothing is shipped and random weights are not allowed."""
    from zippypoint.model.registry import get_preset
    from zippypoint.model.weights import WeightsError, sha256_file

    info = get_preset(preset)  # ValueError naming the presets
    if weights is not None and random_weights:
        raise ValueError("pass either a weights file or random_weights, not both")
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
        return ModelChoice(preset, "file", str(path), sha256_file(path))
    shipped = info.weights_path()
    if not random_weights and shipped is not None and shipped.is_file():
        return ModelChoice(preset, "shipped", str(shipped), sha256_file(shipped))
    if random_weights or fallback_random:
        return ModelChoice(preset, "random", None, RANDOM_SHA256)
    raise WeightsError(f"no pretrained weights are shipped for {preset!r} (looked for {shipped}); pass a weights "
                       "file (--weights FILE) or allow random weights (--random-weights, for testing only)")


def build_network(choice: ModelChoice):
    """The network of ``choice`` in eval mode: shipped weights checked against their recorded sha256, a file
    loaded strictly, random weights drawn from RANDOM_SEED. Needs torch."""
    import torch

    from zippypoint.model.registry import create_model, load_pretrained, load_weights

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model = create_model(choice.preset)
    if choice.source == "shipped":
        load_pretrained(model, choice.preset)
    elif choice.source == "file":
        load_weights(model, choice.path)
    return model.eval()


def _is_model_file(model: str | Path, runtime: str) -> bool:
    return str(model).endswith(_MODEL_SUFFIXES[runtime]) or (Path(model).is_file() and not str(model).endswith(
        ".safetensors"))


def model_file(model: str | Path, runtime: str, weights: str | Path | None = None) -> Path:
    """The exported file an export runtime runs: ``model`` itself when it is a model file, else the cached
    export of preset ``model`` (with ``weights`` or its shipped weights), exported on first use."""
    if runtime not in _MODEL_SUFFIXES:
        raise ValueError(f"runtime {runtime!r} runs no exported file; expected one of {tuple(_MODEL_SUFFIXES)}")
    if _is_model_file(model, runtime):
        return Path(model)
    from zippypoint.runtime.model_cache import exported_model_path

    return exported_model_path(str(model), runtime, weights=weights)


def build_extractor(model: str | Path = DEFAULT_MODEL, runtime: str = "torch", weights: str | Path | None = None,
                    config=None, threads: int | None = None, *, random_weights: bool = False):
    """A ready extractor for ``model`` (a preset, or for the export runtimes a model file) on ``runtime``.

    ``weights``: a safetensors file instead of the shipped weights; ``config``: an ``ExtractorConfig``;
    ``threads``: CPU threads of the network (None = the runtime's default); ``random_weights``: seeded random
    weights (torch runtime; for tests and timing)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if threads is not None and threads < 0:
        raise ValueError(f"threads must be >= 0 or None, got {threads}")
    if runtime == "torch":
        import torch

        from zippypoint.extractor import Extractor

        if threads:
            torch.set_num_threads(threads)
        choice = resolve_model(str(model), weights, random_weights=random_weights)
        return Extractor(build_network(choice), config=config, name=choice.preset)
    if random_weights:
        raise ValueError(f"random_weights applies to the torch runtime only, not {runtime!r}")
    if runtime == "openvino":
        if "openvino" not in available_runtimes():
            raise ImportError("the openvino runtime needs zippypoint.runtime.openvino_extractor, which is not "
                              "installed here")
        from zippypoint.runtime.openvino_extractor import OpenVinoExtractor

        return OpenVinoExtractor(model_file(model, runtime, weights), config=config, threads=threads).load()
    from zippypoint.runtime.onnx_extractor import OnnxExtractor

    return OnnxExtractor(model_file(model, runtime, weights), config=config, intra_op_num_threads=threads).load()
