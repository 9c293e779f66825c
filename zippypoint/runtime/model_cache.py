"""Exported models of a preset: the one shipped in the package, else a cached export.

``exported_model_path("zippypoint", "onnx-int8")`` returns the packaged ``zippypoint/weights/zippypoint-int8.onnx``
when it was exported from the same weights with the current recipe (its card records both, and the file's
sha256 is checked), so the default deployment needs no torch, no calibration photos and no export on first
use. Any other combination is exported once (needs torch; int8 also needs calibration photos) into
``$ZIPPYPOINT_CACHE/exports`` or ``~/.cache/zippypoint/exports``, keyed by preset, format, recipe revision and
weights sha256, so new weights or a new recipe never reuse an old export.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# "openvino": the IR with 1-bit binary blocks; "openvino-int8": the IR with the binary blocks as int8 convolutions
FORMATS = ("onnx", "onnx-int8", "openvino", "openvino-int8")
# bumped when an export recipe changes, so that a cached file made by an older recipe is not reused
RECIPE_REVISION = {"onnx": 2, "onnx-int8": 4, "openvino": 4, "openvino-int8": 1}
_IR_FORMATS = ("openvino", "openvino-int8")
CALIBRATION_SUBDIR = "train-images"  # under $ZIPPYPOINT_DATA


def cache_dir() -> Path:
    root = os.environ.get("ZIPPYPOINT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "zippypoint") / "exports"


def packaged_dir() -> Path:
    """The package's weights folder, where packaged exports sit beside the shipped safetensors."""
    from zippypoint.model.registry import WEIGHTS_DIR

    return WEIGHTS_DIR


def packaged_name(preset: str, fmt: str) -> str:
    """File name of a packaged export: ``zippypoint-int8.onnx`` (int8), ``zippypoint.onnx`` (fp32) or
    ``zippypoint-openvino-int8.xml`` (an OpenVINO IR, its weights in the ``.bin`` beside it)."""
    if fmt in _IR_FORMATS:
        return f"{preset}-{fmt}.xml"
    return f"{preset}-int8.onnx" if fmt == "onnx-int8" else f"{preset}.onnx"


def packaged_card(preset: str, fmt: str, directory: Path | None = None) -> dict | None:
    """The card (JSON) of the packaged export of ``preset`` in ``fmt``, or None when none is shipped.

    ``directory``: where to look instead of the package's weights folder."""
    directory = packaged_dir() if directory is None else Path(directory)
    card = directory / (packaged_name(preset, fmt) + ".card.json")
    if not card.is_file() or not (directory / packaged_name(preset, fmt)).is_file():
        return None
    return json.loads(card.read_text())


def _weights_sha256(preset: str, weights: str | Path | None) -> str | None:
    """sha256 of ``weights``, or the one recorded for the preset's shipped weights (no hashing needed)."""
    from zippypoint.model.registry import _expected_sha256, get_preset
    from zippypoint.model.weights import sha256_file

    if weights is not None:
        return sha256_file(weights) if Path(weights).is_file() else None
    return _expected_sha256(get_preset(preset))


def packaged_model_path(preset: str, fmt: str = "onnx-int8", *, weights: str | Path | None = None) -> Path | None:
    """The packaged export when it matches ``preset``, ``fmt``, ``weights`` (default: shipped) and the current
    recipe; None otherwise. Raises ``WeightsError`` when the packaged file does not match its recorded sha256."""
    from zippypoint.model.weights import WeightsError, sha256_file

    card = packaged_card(preset, fmt) if fmt in FORMATS else None
    if card is None:
        return None
    if (card.get("preset"), card.get("format"), card.get("recipe_revision")) != (preset, fmt, RECIPE_REVISION[fmt]):
        return None
    if card.get("weights_sha256") != _weights_sha256(preset, weights):
        return None
    path = packaged_dir() / packaged_name(preset, fmt)
    checks = [(path, card.get("sha256"))]
    if fmt in _IR_FORMATS:  # the IR's weights live in the .bin beside the .xml
        checks.append((path.with_suffix(".bin"), card.get("bin_sha256")))
    for file, expected in checks:
        digest = sha256_file(file) if file.is_file() else "missing"
        if digest != expected:
            raise WeightsError(f"sha256 mismatch for the packaged model {file}: expected {expected}, got "
                               f"{digest} (corrupted or replaced file); reinstall zippypoint")
    return path


def cached_model_path(preset: str, fmt: str = "onnx-int8", *, weights: str | Path | None = None,
                      directory: str | Path | None = None) -> Path:
    """Where the export of ``preset``/``fmt``/``weights`` lives in the cache (it may not exist yet)."""
    from zippypoint.model.registry import get_preset
    from zippypoint.model.weights import WeightsError, sha256_file

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    source = Path(weights) if weights is not None else get_preset(preset).weights_path()
    if source is None or not source.is_file():
        where = f"; looked for {source}" if source is not None else ""
        raise WeightsError(f"no weights to export for {preset!r}{where}: pass --weights FILE.safetensors "
                           "or an exported .onnx file as --model")
    folder = Path(directory) if directory is not None else cache_dir()
    suffix = ".xml" if fmt in _IR_FORMATS else ".onnx"  # an OpenVINO IR is the .xml with its .bin beside it
    return folder / f"{preset}-{fmt}-r{RECIPE_REVISION[fmt]}-{sha256_file(source)[:16]}{suffix}"


def default_calibration_dir() -> Path:
    """Calibration photos for an int8 export: ``$ZIPPYPOINT_DATA/train-images``. Raises FileNotFoundError with
    the fix when it is not set or the folder is missing (the current folder is never consulted)."""
    from zippypoint.data_paths import data_root

    root = data_root(fallback=False)  # the one data setting, without the current-folder guess
    if root is None:
        raise FileNotFoundError("an int8 export needs calibration photos: set ZIPPYPOINT_DATA to a folder holding "
                                f"{CALIBRATION_SUBDIR}/, or run `zippypoint export --format onnx-int8 "
                                "--calibration-dir DIR ...` once and pass the .onnx file as --model")
    path = root / CALIBRATION_SUBDIR
    if not path.is_dir():
        raise FileNotFoundError(f"calibration folder not found: {path} (from ZIPPYPOINT_DATA); point "
                                f"ZIPPYPOINT_DATA at a folder holding {CALIBRATION_SUBDIR}/")
    return path


def exported_model_path(preset: str, fmt: str = "onnx-int8", *, weights: str | Path | None = None,
                        directory: str | Path | None = None, calibration_dir: str | Path | None = None) -> Path:
    """Path of ``preset`` exported as ``fmt`` with its shipped weights (or ``weights``): the packaged file when
    it matches (and no ``directory`` is asked for), else the cached export, made on first use."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if directory is None:
        packaged = packaged_model_path(preset, fmt, weights=weights)
        if packaged is not None:
            return packaged
    path = cached_model_path(preset, fmt, weights=weights, directory=directory)
    if path.is_file():
        return path
    try:
        from zippypoint.export.exporter import export_model
    except ImportError as exc:
        raise ImportError(f"{preset} as {fmt} is not exported yet and exporting needs torch ({exc}): "
                          "pip install 'zippypoint[torch]', or run `zippypoint export` where torch is installed "
                          "and pass the .onnx file as --model") from exc
    kwargs = {"openvino_one_bit": False} if fmt == "openvino-int8" else {}
    if fmt in ("onnx-int8", *_IR_FORMATS):
        kwargs["calibration_dir"] = Path(calibration_dir) if calibration_dir is not None else default_calibration_dir()
        if not kwargs["calibration_dir"].is_dir():
            raise FileNotFoundError(f"calibration folder not found: {kwargs['calibration_dir']}; pass "
                                    "--calibration-dir DIR (a folder of real photos)")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in _IR_FORMATS:  # the .bin first, then the .xml that readers look for
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.xml")
        try:
            export_model("openvino", partial, preset, weights=weights, **kwargs)
            partial.with_suffix(".bin").replace(path.with_suffix(".bin"))
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
            partial.with_suffix(".bin").unlink(missing_ok=True)
        return path
    partial = path.with_suffix(f".{os.getpid()}.partial")
    try:
        export_model(fmt, partial, preset, weights=weights, **kwargs)
        partial.replace(path)  # atomic: a concurrent reader never sees half a file
    finally:
        partial.unlink(missing_ok=True)
    return path
