"""ONNX export of the dense network: dynamic batch, height and width (multiples of 8), opset >= 17.

The ``onnx`` format exports the network exactly as PyTorch computes it (fake-quantisers become
Clip/Round arithmetic, so the dense maps match the PyTorch model to float precision). The int8 format
(:mod:`zippypoint.export.int8`) starts from the folded deployment view instead.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from zippypoint.export.metadata import ExportMetadata

DEFAULT_OPSET = 18
MIN_OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAMES = ("scores", "keypoints", "descriptors")
_OUTPUT_DIMS = {
    "scores": ("batch", 1, "height/8", "width/8"),
    "keypoints": ("batch", 2, "height/8", "width/8"),
    "descriptors": ("batch", None, "height/4", "width/4"),
}


class _DenseOutputs(nn.Module):
    """Returns the dense dict as a tuple in OUTPUT_NAMES order (ONNX outputs are positional)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(image)
        return tuple(out[k] for k in OUTPUT_NAMES)


def trace_to_onnx(module: nn.Module, in_channels: int, *, opset: int = DEFAULT_OPSET,
                  sample_size: tuple[int, int] = (64, 96)):
    """Export ``module`` (image -> dense dict) to an in-memory ``onnx.ModelProto`` with dynamic B, H, W.

    ``sample_size`` (H, W) is the example input used for tracing; any multiple of 8 >= 24 works after export.
    """
    from torch.export import Dim

    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET}, got {opset}")
    h, w = sample_size
    if h % 8 or w % 8 or min(h, w) < 24:
        raise ValueError(f"sample_size must be multiples of 8 and >= 24, got {sample_size}")
    example = torch.rand(2, in_channels, h, w, generator=torch.Generator().manual_seed(0))
    dims = {0: Dim("batch", min=1, max=1024), 2: 8 * Dim("h8", min=3, max=4096), 3: 8 * Dim("w8", min=3, max=4096)}
    wrapped = _DenseOutputs(module).eval()
    # the exporter logs optional-op registration notes (e.g. torchvision absent) and progress; failures still raise
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapped, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                dynamic_shapes={"image": dims}, opset_version=opset, verbose=False, report=False,
            )
    finally:
        quiet.setLevel(level)
    proto = program.model_proto
    _name_dims(proto)
    return proto


def _name_dims(proto) -> None:
    """Readable symbolic dimension names (the exporter's are internal symbols)."""
    for dim, name in zip(proto.graph.input[0].type.tensor_type.shape.dim, ("batch", None, "height", "width"), strict=True):
        if name is not None:
            dim.dim_param = name
    for out in proto.graph.output:
        for dim, name in zip(out.type.tensor_type.shape.dim, _OUTPUT_DIMS[out.name], strict=True):
            if isinstance(name, str):
                dim.dim_param = name


def set_metadata(proto, metadata: ExportMetadata) -> None:
    """Replace the ``zippypoint.*`` entries of ``proto.metadata_props`` with ``metadata``."""
    keep = [(p.key, p.value) for p in proto.metadata_props if not p.key.startswith("zippypoint.")]
    del proto.metadata_props[:]
    for key, value in [*keep, *metadata.to_props().items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"ZippyPoint {metadata.preset} ({metadata.format}): {metadata.outputs}"


def save_checked(proto, path: str | Path) -> Path:
    """Run the ONNX checker and write ``proto`` as one file (weights inline; the model is ~20 MB)."""
    import onnx

    onnx.checker.check_model(proto, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path))
    return path


def export_onnx(model: nn.Module, path: str | Path, metadata: ExportMetadata, *,
                opset: int = DEFAULT_OPSET) -> Path:
    """fp32 ONNX of ``model`` exactly as PyTorch computes it (eval mode); returns the written path."""
    if metadata.format != "onnx":
        raise ValueError(f"export_onnx writes format 'onnx', metadata says {metadata.format!r}")
    model = model.eval()
    proto = trace_to_onnx(model, metadata.in_channels, opset=opset)
    set_metadata(proto, metadata)
    return save_checked(proto, path)
