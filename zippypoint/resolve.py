"""One model resolver and one extractor factory, used by the CLI, evaluation, export and benchmark.

``resolve_model(preset, weights)`` decides which weights a preset runs with: a safetensors file (``weights``),
the preset's shipped file, or seeded random weights (``random_weights=True``, or ``fallback_random=True`` when
nothing is shipped: timing only, the network costs the same). The result records the file's sha256. It and
``build_network`` are defined in ``zippypoint.model.resolver`` (below the exporters, which use it).

``build_extractor(model, runtime, weights, config, threads)`` returns a ready extractor of the shared staged
interface (``zippypoint.runtime.base.StagedExtractor``):

- ``"torch"``: ``zippypoint.extractor.Extractor`` over the resolved network;
- ``"onnx"`` / ``"onnx-int8"``: ``zippypoint.runtime.OnnxExtractor`` over ``model`` when it is an ``.onnx`` file,
  else over the preset's export from ``zippypoint.runtime.model_cache`` (made once, then reused);
- ``"openvino"``: ``zippypoint.runtime.openvino_extractor.OpenVinoExtractor`` when OpenVINO is installed (same
  rule: a model file, or the preset's export in format ``"openvino"``: binary blocks as 1-bit convolutions);
- ``"openvino-int8"``: the same extractor over the IR whose binary blocks run as int8 convolutions (format
  ``"openvino-int8"``), the fastest of ours on CPUs with AMX int8 tiles (docs/benchmark-openvino.md).

Nothing here imports torch at module level; an exported model file runs without it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from zippypoint.model.registry import DEFAULT_PRESET
from zippypoint.model.resolver import ModelChoice, build_network, resolve_model

__all__ = ["RUNTIMES", "ModelChoice", "available_runtimes", "build_extractor", "build_network", "model_file",
           "resolve_model"]

RUNTIMES = ("torch", "onnx", "onnx-int8", "openvino", "openvino-int8")
_MODEL_SUFFIXES = {"onnx": (".onnx",), "onnx-int8": (".onnx",), "openvino": (".xml",), "openvino-int8": (".xml",)}
_OPENVINO = ("openvino", "openvino-int8")


def available_runtimes() -> tuple[str, ...]:
    """The runtimes ``build_extractor`` accepts here (the OpenVINO ones only where OpenVINO is installed)."""
    has_openvino = importlib.util.find_spec("openvino") is not None
    return RUNTIMES if has_openvino else tuple(r for r in RUNTIMES if r not in _OPENVINO)


def default_runtime(model: str | Path = DEFAULT_PRESET, weights: str | Path | None = None) -> str:
    """The runtime used when none is named: for a preset whose exports ship in the package (its shipped weights,
    no ``weights`` file) the fastest of them here -- where OpenVINO is installed "openvino" (the 1-bit IR) on x86
    CPUs without AMX and "openvino-int8" elsewhere (docs/isa-levels.md), else
    "onnx-int8" -- all torch-free; "onnx-int8" for an .onnx file and "openvino" for an .xml; otherwise "torch"
    where torch is importable, else "onnx-int8" (which then explains what is missing)."""
    if str(model).endswith(".onnx"):
        return "onnx-int8"
    if str(model).endswith(".xml"):
        return "openvino"
    if weights is None:
        from zippypoint.machine import prefers_one_bit_ir
        from zippypoint.runtime.model_cache import packaged_card

        if "openvino-int8" in available_runtimes():
            for runtime in ("openvino", "openvino-int8") if prefers_one_bit_ir() else ("openvino-int8",):
                if packaged_card(str(model), runtime) is not None:
                    return runtime
        if packaged_card(str(model), "onnx-int8") is not None:
            return "onnx-int8"
    return "torch" if importlib.util.find_spec("torch") is not None else "onnx-int8"


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


def build_extractor(model: str | Path = DEFAULT_PRESET, runtime: str = "torch", weights: str | Path | None = None,
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
    if runtime in _OPENVINO:
        if runtime not in available_runtimes():
            raise ImportError(f"the {runtime} runtime needs OpenVINO: pip install 'zippypoint[openvino]'")
        from zippypoint.runtime.openvino_extractor import OpenVinoExtractor

        return OpenVinoExtractor(model_file(model, runtime, weights), config=config, threads=threads).load()
    from zippypoint.runtime.onnx_extractor import OnnxExtractor

    return OnnxExtractor(model_file(model, runtime, weights), config=config, intra_op_num_threads=threads).load()
