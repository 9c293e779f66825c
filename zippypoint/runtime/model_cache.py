"""Exported models of a preset, cached on disk: ``exported_model_path("zippypoint", "onnx-int8")``.

A cached file is used without torch; exporting one the first time needs torch (and, for int8, the calibration
photos). Files are keyed by preset, format, the export recipe's revision and the sha256 of the weights, so new
weights or a new recipe never reuse an old export. Cache folder: ``$ZIPPYPOINT_CACHE/exports`` or
``~/.cache/zippypoint/exports``.
"""

from __future__ import annotations

import os
from pathlib import Path

FORMATS = ("onnx", "onnx-int8")
# bumped when an export recipe changes, so that a cached file made by an older recipe is not reused
RECIPE_REVISION = {"onnx": 2, "onnx-int8": 3}


def cache_dir() -> Path:
    root = os.environ.get("ZIPPYPOINT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "zippypoint") / "exports"


def exported_model_path(preset: str, fmt: str = "onnx-int8", *, weights: str | Path | None = None,
                        directory: str | Path | None = None, calibration_dir: str | Path | None = None) -> Path:
    """Path of ``preset`` exported as ``fmt`` with its shipped weights (or ``weights``), exporting on first use."""
    from zippypoint.model.registry import get_preset
    from zippypoint.model.weights import WeightsError, sha256_file

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    source = Path(weights) if weights is not None else get_preset(preset).weights_path()
    if source is None or not source.is_file():
        raise WeightsError(f"no weights to export for {preset!r} (looked for {source}); pass --weights FILE "
                           "or an exported .onnx file as the model")
    folder = Path(directory) if directory is not None else cache_dir()
    path = folder / f"{preset}-{fmt}-r{RECIPE_REVISION[fmt]}-{sha256_file(source)[:16]}.onnx"
    if path.is_file():
        return path
    try:
        from zippypoint.export.exporter import export_model
        from zippypoint.export.int8 import DEFAULT_CALIBRATION_DIR
    except ImportError as exc:
        raise ImportError(f"{path} is not exported yet and exporting needs torch ({exc}); run "
                          f"`zippypoint export --format {fmt} --model {preset} --out FILE` where torch is "
                          "installed and pass FILE as the model") from exc
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    kwargs = {"calibration_dir": calibration_dir or DEFAULT_CALIBRATION_DIR} if fmt == "onnx-int8" else {}
    try:
        export_model(fmt, partial, preset, weights=source if weights is not None else None, **kwargs)
        partial.replace(path)  # atomic: a concurrent reader never sees half a file
    finally:
        partial.unlink(missing_ok=True)
    return path
