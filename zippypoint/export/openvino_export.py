"""OpenVINO IR export with real 1-bit and int8 kernels (``zippypoint export --format openvino``).

Route: the int8 QDQ ONNX export (:mod:`zippypoint.export.int8`, the same calibrated recipe ONNX Runtime runs) is
read by OpenVINO, which turns every QuantizeLinear/DequantizeLinear pair into a FakeQuantize and runs the
quantised convolutions in u8/i8. The binary branches of that file are int8 convolutions on ``n = [x < 0]``
(see :class:`~zippypoint.export.folded.FoldedBinaryBranch`); here each is replaced by what it computes,

    ``a * relu(binconv_pad(+1)(sign(x), sign(w))) + b``    (a, b: the folded BatchNorm scale and shift),

written as ``FakeQuantize(levels=2)`` on the block input followed by a ``BinaryConvolution`` (xnor-popcount,
``pad_value=+1``) with u1 weights packed ``bitorder="little"``, then a ReLU and a per-channel Multiply and Add
that the CPU plugin fuses into the kernel and the next quantiser. The int8 graph applies the ReLU after the
BatchNorm, as a per-channel Max/Min on the branch's uint8 codes (``b`` is the bound); with the ReLU on the
popcount those clamps can no longer change a code (rounding is monotone), so they are removed: the same codes in
exact arithmetic, one elementwise pass less per block (about 4 % of the slim network's time, docs/design.md §7).
The block input lies on its fake-quant grid ``k*step``, so the 2-level quantiser's threshold is put half a step
below 0: ``k < 0`` gives bit 0 (-1 to xnor-popcount) and ``k >= 0`` bit 1 (+1; ``sign(0) = +1``). The quantiser
is written in the form the operation set defines for BinaryConvolution inputs: ``input_low == input_high`` (the
threshold) and outputs 0 / 1. The CPU plugin then runs it as a binarisation
kernel that writes packed bits channels last, straight into the 1-bit convolution; with outputs -1 / +1 it ran as
an ordinary f32 quantiser followed by a reference (scalar) f32 -> u1 reorder, about a fifth of the slim network's
time at 320x240 on an AVX-512 CPU without AMX (docs/design.md §7).

The result is an IR (``.xml`` + ``.bin``) with the export metadata in its ``rt_info`` under ``zippypoint``.
Its height and width stay dynamic in the file, but the CPU plugin's BinaryConvolution needs static shapes: the
runtime (:class:`~zippypoint.runtime.openvino_extractor.OpenVinoExtractor`) reshapes per image size.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zippypoint.export.metadata import ExportMetadata

RT_INFO_KEY = "zippypoint"
# OpenVINO runs "fp32" layers in bf16 on CPUs with AMX unless told otherwise; the geometry must stay fp32
COMPILE_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


@dataclass(frozen=True)
class BinaryLayer:
    """One binary 3x3 convolution with its folded BatchNorm, as the exporter emits it."""

    block: str  # module name in the network, e.g. "block2a"
    signs: np.ndarray  # (O, I, 3, 3) weights in {-1, +1}
    scale: np.ndarray  # (O,) BatchNorm scale a (0 where the channel is the constant b)
    shift: np.ndarray  # (O,) BatchNorm shift b
    input_step: float  # fake-quant step of the block input (its values are k * step)


def binary_layers(net) -> list[BinaryLayer]:
    """The binary convolutions of a ZippyPoint network (eval mode), in network order. Needs torch."""
    from zippypoint.export.folded import FoldedZippyPoint, bn_affine
    from zippypoint.model.network import binary_block_inputs

    folded = FoldedZippyPoint(net.eval(), rounding=False, sign_as_threshold=True)
    layers = []
    for name, _ in binary_block_inputs(net):
        block = getattr(net, name)
        if not block.conv.binary:
            continue
        threshold = getattr(folded, name).branch.threshold
        if threshold is None:
            raise ValueError(f"{name}: its input has no fake-quant grid; a 1-bit export needs one")
        a, b = (t.detach().double().numpy() for t in bn_affine(block.bn))
        signs = np.where(block.conv.weight.detach().numpy() >= 0, 1.0, -1.0).astype(np.float32)
        step = float(-4.0 / threshold.weight.detach().reshape(-1)[0])
        layers.append(BinaryLayer(name, signs, a.astype(np.float32),
                                  b.astype(np.float32), step))
    return layers


def _binary_tensors(proto, block: str) -> tuple[str, str]:
    """(input tensor of the block's threshold conv, output tensor of its binary conv) in the QDQ ONNX graph."""
    producer = {o: n for n in proto.graph.node for o in n.output}

    def conv_with_weight(weight: str):
        for n in proto.graph.node:
            if n.op_type != "Conv" or len(n.input) < 2:
                continue
            w = producer.get(n.input[1])
            source = w.input[0] if w is not None and w.op_type == "DequantizeLinear" else n.input[1]
            if source.startswith(weight):
                return n
        raise ValueError(f"no Conv with weights {weight!r} in the int8 graph; is it a zippypoint int8 export?")

    conv = conv_with_weight(f"net.{block}.branch.conv.weight")
    # up from the binary conv through the {0, 1} codes' Q/DQ and Clip to the threshold conv (its weights may be
    # shared with another block's in the file, so it is found by position, not by name)
    node = producer.get(conv.input[0])
    while node is not None and node.op_type in ("DequantizeLinear", "QuantizeLinear", "Clip"):
        node = producer.get(node.input[0])
    if node is None or node.op_type != "Conv":
        raise ValueError(f"{block}: the binary conv's input does not come from a threshold conv in the int8 graph")
    return node.input[0], conv.output[0]


def _output_named(model, name: str):
    for op in model.get_ordered_ops():
        for out in op.outputs():
            if name in out.get_names():
                return out
    raise ValueError(f"tensor {name!r} not found in the OpenVINO model")


def _u1_constant(signs: np.ndarray):
    import openvino as ov

    tensor = ov.Tensor(ov.Type.u1, list(signs.shape))
    bits = np.packbits((signs > 0).reshape(-1), bitorder="little")  # OpenVINO's u1 layout (docs/design.md §7)
    np.asarray(tensor.data).view(np.uint8).reshape(-1)[:] = bits
    return ov.op.Constant(tensor)


def sign_bits(x, step: float, name: str | None = None):
    """``FakeQuantize(levels=2)`` giving bit 1 where ``x >= 0`` and bit 0 where ``x < 0`` for ``x`` on the grid
    ``k*step``: the threshold half a step below 0 as both input bounds, outputs 0 and 1 (the binarisation form)."""
    from openvino import opset13 as ops

    threshold = np.float32(-0.5 * step)
    return ops.fake_quantize(x, threshold, threshold, np.float32(0.0), np.float32(1.0), 2, name=name)


def _only_user(output, block: str, *types: str):
    users = list(output.get_target_inputs())
    node = users[0].get_node() if len(users) == 1 else None
    if node is None or node.get_type_name() not in types:
        found = sorted(u.get_node().get_type_name() for u in users)
        raise ValueError(f"{block}: expected the binary branch's output to go to one of {types}, found {found}; "
                         "is the file a zippypoint int8 export with integer clamps?")
    return node


def _drop_code_clamps(y, block: str) -> None:
    """Remove the per-channel Maximum / Minimum that the int8 graph applies to the branch's uint8 codes
    (quantiser -> Convert -> Maximum -> Minimum -> dequantiser): with the ReLU before the BatchNorm they are no-ops."""
    quantiser = _only_user(y, block, "FakeQuantize")
    codes = _only_user(quantiser.output(0), block, "Convert")
    maximum = _only_user(codes.output(0), block, "Maximum")
    minimum = _only_user(maximum.output(0), block, "Minimum")
    minimum.output(0).replace(codes.output(0))


def binarize_model(model, proto, layers: Sequence[BinaryLayer]) -> int:
    """Replace each binary branch of ``model`` (read from the QDQ ONNX ``proto``) by FakeQuantize(levels=2) +
    BinaryConvolution + ReLU + per-channel scale and shift, and drop the per-channel clamps of its codes (module
    docstring). Returns the number of layers replaced."""
    from openvino import opset1
    from openvino import opset13 as ops

    for layer in layers:
        x_name, y_name = _binary_tensors(proto, layer.block)
        x, y = _output_named(model, x_name), _output_named(model, y_name)
        _drop_code_clamps(y, layer.block)
        signs_in = sign_bits(x, layer.input_step, name=f"{layer.block}.sign")
        k = layer.signs.shape[-1] // 2
        conv = opset1.binary_convolution(signs_in, _u1_constant(layer.signs), [1, 1], [k, k], [k, k], [1, 1],
                                         "xnor-popcount", 1.0, name=f"{layer.block}.binary_conv")
        scaled = ops.multiply(ops.relu(conv), ops.constant(layer.scale.reshape(1, -1, 1, 1)))
        out = ops.add(scaled, ops.constant(layer.shift.reshape(1, -1, 1, 1)), name=f"{layer.block}.branch")
        y.replace(out.output(0))
    model.validate_nodes_and_infer_types()
    return len(layers)


def set_rt_metadata(model, metadata: ExportMetadata) -> None:
    for key, value in dataclasses.asdict(metadata).items():
        model.set_rt_info(str(value), [RT_INFO_KEY, key])


def read_rt_metadata(model) -> ExportMetadata:
    """The :class:`ExportMetadata` stored in an IR's rt_info (ValueError if it is not a zippypoint export)."""
    if not model.has_rt_info([RT_INFO_KEY]):
        raise ValueError("not a zippypoint OpenVINO export: its rt_info has no 'zippypoint' section")
    fields = [f.name for f in dataclasses.fields(ExportMetadata)]
    props = {f"zippypoint.{k}": model.get_rt_info([RT_INFO_KEY, k]).astype(str)
             for k in fields if model.has_rt_info([RT_INFO_KEY, k])}
    return ExportMetadata.from_props(props)


def export_openvino(model, path: str | Path, metadata: ExportMetadata, calibration_images: Sequence[str | Path], *,
                    options=None, opset: int = 18, calibration_resize: tuple[int, int] | None = None,
                    one_bit: bool = True) -> Path:
    """Export ``model`` (eval) as OpenVINO IR at ``path`` (.xml, with its .bin beside it); returns the .xml path.

    ``options`` / ``calibration_*``: as for the int8 ONNX export, whose calibrated int8 layers the IR keeps.
    ``one_bit=False`` keeps the binary branches as the int8 export runs them (int8 threshold conv + int8 conv):
    on CPUs with fast int8 (AMX) that is faster than the 1-bit path (export/README.md, OpenVINO).
    """
    from zippypoint.export.int8 import Int8Options, export_int8

    if metadata.format != "openvino":
        raise ValueError(f"export_openvino writes format 'openvino', metadata says {metadata.format!r}")
    path = Path(path)
    if path.suffix != ".xml":
        raise ValueError(f"an OpenVINO IR is written as .xml (+ .bin), got {path.name!r}")
    options = options or Int8Options()
    if options.sign != "threshold":
        raise ValueError("the OpenVINO export needs Int8Options(sign='threshold') (the binary inputs' grid)")
    int8_meta = dataclasses.replace(metadata, format="onnx-int8")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_int8(model, Path(tmp) / "int8.onnx", int8_meta, calibration_images, options=options,
                                opset=opset, calibration_resize=calibration_resize)
        return openvino_from_int8(model, onnx_path, path, metadata, one_bit=one_bit)


def openvino_from_int8(model, onnx_path: str | Path, path: str | Path, metadata: ExportMetadata, *,
                       one_bit: bool = True) -> Path:
    """The IR of ``model`` from its int8 QDQ ONNX export ``onnx_path`` (binary branches made 1-bit unless
    ``one_bit=False``)."""
    import onnx
    import openvino as ov

    path = Path(path)
    layers = binary_layers(model) if one_bit else []
    proto = onnx.load(str(onnx_path))
    ov_model = ov.Core().read_model(str(onnx_path))
    binarize_model(ov_model, proto, layers)
    kind = (f"{len(layers)} x FakeQuantize(levels=2) + BinaryConvolution (u1 weights)" if one_bit else
            "int8 (threshold conv + int8 conv, as the int8 ONNX export)")
    recipe = {**_recipe_of(proto), "binary_layers": kind}
    set_rt_metadata(ov_model, dataclasses.replace(metadata, format="openvino",
                                                  quantization=json.dumps(recipe, sort_keys=True)))
    path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov_model, str(path), compress_to_fp16=False)
    return path


def _recipe_of(proto) -> dict:
    props = {p.key: p.value for p in proto.metadata_props}
    return json.loads(props.get("zippypoint.quantization") or "{}")


def runtime_layer_counts(compiled) -> dict[tuple[str, str], int]:
    """(layer type, runtime precision) -> count in the graph OpenVINO really runs for a compiled model, e.g.
    ``("BinaryConvolution", "u1")`` or ``("Convolution", "u8")``."""
    from collections import Counter

    counts: Counter = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        counts[(rt["layerType"].astype(str), rt["runtimePrecision"].astype(str))] += 1
    return dict(counts)
