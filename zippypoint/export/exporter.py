"""One entry point for every export format: ``export_model(format, out, model=NAME, ...)``."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from zippypoint.export.int8 import DEFAULT_CALIBRATION_DIR, Int8Options, find_images
from zippypoint.export.metadata import FORMATS, ExportMetadata
from zippypoint.export.onnx_export import DEFAULT_OPSET
from zippypoint.model.registry import DEFAULT_PRESET

DEFAULT_CALIBRATION_COUNT = 64


def load_export_model(name: str = DEFAULT_PRESET, *, weights: str | Path | None = None,
                      random_weights: bool = False) -> tuple[nn.Module, str]:
    """Build preset ``name`` in eval mode with its weights (``zippypoint.model.resolver``); returns (model, weights
    sha256 or "random").

    ``weights``: a safetensors file (loaded strictly); default: the preset's shipped weights, which must exist
    unless ``random_weights`` (for tests and speed measurements only).
    """
    from zippypoint.model.resolver import build_network, resolve_model

    choice = resolve_model(name, weights, random_weights=random_weights)
    return build_network(choice), choice.sha256


def make_metadata(preset: str, fmt: str, model: nn.Module, weights_sha256: str, opset: int) -> ExportMetadata:
    from zippypoint import __version__
    from zippypoint.model.registry import get_preset

    cfg = model.config
    return ExportMetadata(
        preset=preset, format=fmt, in_channels=cfg.in_channels, input_contract=get_preset(preset).input_contract,
        weights_sha256=weights_sha256, version=__version__, opset=opset if fmt != "coreml" else 0,
        descriptor_dim=cfg.descriptor_dim, descriptor_ones=cfg.descriptor_ones,
    )


def export_model(fmt: str, out: str | Path, model: str = DEFAULT_PRESET, *, weights: str | Path | None = None,
                 random_weights: bool = False, opset: int = DEFAULT_OPSET,
                 calibration_dir: str | Path = DEFAULT_CALIBRATION_DIR,
                 calibration_count: int = DEFAULT_CALIBRATION_COUNT,
                 calibration_resize: tuple[int, int] | None = None,
                 int8_options: Int8Options | None = None, net: nn.Module | None = None,
                 openvino_one_bit: bool = True) -> Path:
    """Export preset ``model`` to ``out`` in format ``fmt`` (onnx, onnx-int8, coreml, openvino); returns the written path.

    ``net``: an already-built network of preset ``model`` to export instead of loading weights (its weights
    are then recorded as "custom"). ``openvino_one_bit=False``: the OpenVINO IR keeps the binary blocks in int8.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if net is None:
        net, sha = load_export_model(model, weights=weights, random_weights=random_weights)
    else:
        net, sha = net.eval(), "custom"
    meta = make_metadata(model, fmt, net, sha, opset)
    if fmt == "onnx":
        from zippypoint.export.onnx_export import export_onnx

        return export_onnx(net, out, meta, opset=opset)
    if fmt == "openvino":
        from zippypoint.export.openvino_export import export_openvino

        images = find_images(calibration_dir, calibration_count)
        return export_openvino(net, out, meta, images, options=int8_options or Int8Options(), opset=opset,
                               calibration_resize=calibration_resize, one_bit=openvino_one_bit)
    if fmt == "onnx-int8":
        from zippypoint.export.int8 import export_int8

        images = find_images(calibration_dir, calibration_count)
        return export_int8(net, out, meta, images, options=int8_options or Int8Options(), opset=opset,
                           calibration_resize=calibration_resize)
    from zippypoint.export.coreml_export import export_coreml

    return export_coreml(net, out, meta)
