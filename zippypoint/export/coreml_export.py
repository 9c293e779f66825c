"""CoreML export: an ML program (``.mlpackage``, iOS 16 / macOS 13) with flexible height and width.

Conversion runs on Linux (coremltools); prediction needs macOS. The package takes the same float input as
the ONNX models, ``image`` (1, C, H, W) in [0, 1] with H and W multiples of 8, and returns the dense maps.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from zippypoint.export.folded import FoldedZippyPoint
from zippypoint.export.metadata import ExportMetadata
from zippypoint.export.onnx_export import INPUT_NAME, OUTPUT_NAMES, _DenseOutputs

MIN_SIDE = 24
MAX_SIDE = 4096


def export_coreml(model: nn.Module, path: str | Path, metadata: ExportMetadata, *,
                  default_size: tuple[int, int] = (480, 640), max_side: int = MAX_SIDE) -> Path:
    """Convert ``model`` (eval) to ``path`` (must end in .mlpackage); returns the path.

    Height and width are flexible in [24, max_side] (``RangeDim``); the caller pads to multiples of 8 as for ONNX.
    ``default_size`` (H, W) is the shape CoreML plans for.
    """
    path = Path(path)
    if path.suffix != ".mlpackage":
        raise ValueError(f"CoreML ML programs are saved as .mlpackage, got {path.name!r}")
    if metadata.format != "coreml":
        raise ValueError(f"export_coreml writes format 'coreml', metadata says {metadata.format!r}")
    h, w = default_size
    example = torch.rand(1, metadata.in_channels, h, w, generator=torch.Generator().manual_seed(0))
    with _quiet() as chatter, torch.no_grad():
        try:
            import coremltools as ct
        except ImportError as exc:
            raise ImportError("CoreML export needs coremltools: pip install 'zippypoint[coreml]'") from exc
        # the folded view (BN folded, trace-friendly border and pixel geometry) equals the network; every
        # wrapper in eval mode, or the converter refuses to trust it ("Model is not in eval mode")
        wrapped = _DenseOutputs(FoldedZippyPoint(model.eval(), rounding=True)).eval()
        traced = torch.jit.trace(wrapped, example)
        shape = ct.Shape(shape=(1, metadata.in_channels,
                                ct.RangeDim(lower_bound=MIN_SIDE, upper_bound=max_side, default=h),
                                ct.RangeDim(lower_bound=MIN_SIDE, upper_bound=max_side, default=w)))
        try:
            mlmodel = ct.convert(
                traced,
                inputs=[ct.TensorType(name=INPUT_NAME, shape=shape)],
                outputs=[ct.TensorType(name=name) for name in OUTPUT_NAMES],
                convert_to="mlprogram",
                minimum_deployment_target=ct.target.iOS16,
                compute_precision=ct.precision.FLOAT32,
            )
        except Exception as exc:
            raise RuntimeError(f"CoreML conversion failed: {exc}\n{chatter.getvalue()}") from exc
    mlmodel.short_description = f"ZippyPoint {metadata.preset}: {metadata.outputs}"
    mlmodel.version = metadata.version
    mlmodel.user_defined_metadata.update(metadata.to_props())
    path.parent.mkdir(parents=True, exist_ok=True)
    mlmodel.save(str(path))
    return path


@contextlib.contextmanager
def _quiet():
    """Collect what the tracer and coremltools print (version notes, tracer warnings about shape-derived
    constants, which are expected here, progress bars of the conversion passes); yields the text."""
    buffer = io.StringIO()
    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(buffer), contextlib.redirect_stdout(buffer):
            warnings.simplefilter("ignore")
            yield buffer
    finally:
        logger.setLevel(level)
