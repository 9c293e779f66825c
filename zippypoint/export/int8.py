"""Real int8 for ONNX Runtime: static QDQ quantisation of the folded network.

Recipe (the measured choices are in ``export/README.md``):

1. Export the folded deployment view (:class:`~zippypoint.export.folded.FoldedZippyPoint`, ``rounding=False``):
   BatchNorm folded, space-to-depth + 1x1 conv as a 2x2 stride-2 conv, fake-quantisers as ``Clip`` to their range.
2. ``onnxruntime.quantization.quantize_static`` in QDQ format: per-channel symmetric int8 weights, uint8
   activations, calibrated on real photos. Tensors whose range is fixed by the design are not calibrated; they
   get their exact scales through ``TensorQuantOverrides``:

   - every activation fake-quantiser: scale ``2*qmax/255``, zero point 128 (uint8), which is the fake-quant
     grid ``k*scale``, k in [-128, 127], so QuantizeLinear reproduces it exactly;
   - binary-conv inputs: ``[x < 0]`` from a saturating threshold conv, {0, 1} on codes {0, 255} (scale 1/255,
     zp 0; zero padding is exact); the ±2 weights times the folded BN scale have one int8 code each (exact);
   - binary-conv outputs: BN is folded into them, so they are quantised directly on the next fake-quant grid;
   - conv outputs feeding hard-swish: the network's own grid there
     (:class:`~zippypoint.quant.quantizers.HardSwishInputQuantizer`, a ``Clip`` to [-3, 6] in the folded
     graph: step 3/85, zero point 85), so the int8 conv writes the codes the network computes; networks
     without it get the range ``[-3, r]`` with ``hswish(r)`` the top of the following fake-quant range.

   Calibrated: only the raw descriptor map (its range is not fixed by the design).
3. fp32: the first two convs (the 3-channel full-resolution input conv is no faster in int8, and both feed
   hard-swish with a ±1 output grid finer than any uint8 grid of their inputs), the score and location output
   convs and everything after them (sigmoid, tanh), and the pixel geometry (only the feature path is quantised).
4. Rewrites of the QDQ graph (:mod:`~zippypoint.export.qdq_rewrites`): fp32 convs read their inputs through
   the fake-quant grid, the binary branches' Max/Min run on uint8 codes, and additions of different grids
   (block1a) run as a float ``Sum`` so that their ties round as in PyTorch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zippypoint.data_paths import data_path
from zippypoint.export.metadata import ExportMetadata
from zippypoint.io import IMAGE_SUFFIXES, list_images
from zippypoint.quant.quantizers import hardswish_input_max

DEFAULT_CALIBRATION_DIR = data_path("train-images")  # the one data setting ($ZIPPYPOINT_DATA)
# data-movement ops: their output keeps the input's quantisation (ONNX Runtime runs them on uint8)
_PASS_THROUGH = ("DepthToSpace", "Reshape", "Transpose")


@dataclass(frozen=True)
class Int8Options:
    design_ranges: bool = True  # exact scales for tensors whose range the design fixes; False = calibrate all
    sign: str = "threshold"  # binary-conv input: "threshold" (int8 conv, needs design_ranges) or "compare" (fp32)
    hswish_inputs: str = "design"  # range of conv outputs feeding hard-swish: "design" [-3, r] or "calibrated"
    fp32_heads: bool = True  # keep the score/location output convs in fp32 (tiny, and they set the geometry)
    integer_clamps: bool = True  # binary branches' per-channel Max/Min on uint8 codes (exact) instead of fp32
    float_adds: bool = True  # additions of different grids in float (ties rounded as in PyTorch), not QLinearAdd
    fp32_first_convs: int = 2  # leading convs kept fp32: input conv (3 channels) and down1 (see export/README.md)
    fuse_heads: bool = True  # fp32 output convs reading one shared head run as one conv + split (exact)
    calibration_method: str = "minmax"  # "minmax", "percentile" (99.999) or "entropy"

    def __post_init__(self) -> None:
        if self.sign not in ("threshold", "compare"):
            raise ValueError(f"sign must be 'threshold' or 'compare', got {self.sign!r}")
        if self.hswish_inputs not in ("design", "calibrated"):
            raise ValueError(f"hswish_inputs must be 'design' or 'calibrated', got {self.hswish_inputs!r}")
        if not 0 <= self.fp32_first_convs <= 2:
            raise ValueError(f"fp32_first_convs must be 0, 1 or 2, got {self.fp32_first_convs}")
        if self.calibration_method not in ("minmax", "percentile", "entropy"):
            raise ValueError(f"calibration_method must be minmax, percentile or entropy, got {self.calibration_method!r}")
        if self.sign == "threshold" and not self.design_ranges:
            raise ValueError("sign='threshold' needs design_ranges=True (the threshold relies on the fake-quant grid)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def find_images(root: str | Path, limit: int | None = None) -> list[Path]:
    """Image files under ``root`` (recursive), sorted; ``limit`` picks that many spread evenly over the list."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"calibration image folder not found: {root}")
    paths = list_images(root)
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
    if limit is not None and limit < len(paths):
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, limit).round().astype(int)]
    return paths


def calibration_batches(paths: Iterable[str | Path], in_channels: int,
                        resize: tuple[int, int] | None = None) -> Iterable[np.ndarray]:
    """Prepared (1, C, H, W) float32 batches of real photos, as the runtime feeds them."""
    from zippypoint.io import prepare_image, read_image

    for path in paths:
        batch, _ = prepare_image(read_image(path), in_channels, resize)
        yield batch


def _calibration_reader(batches: Iterable[np.ndarray], input_name: str):
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self):
            batch = next(self._it, None)
            return None if batch is None else {input_name: batch}

    return _Reader()


class _Graph:
    """Producer/consumer maps and constant values of an ONNX graph."""

    def __init__(self, proto) -> None:
        from onnx import numpy_helper

        g = proto.graph
        self.nodes = list(g.node)
        self.consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        for n in self.nodes:
            if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
                self.consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        self.consumers: dict[str, list] = defaultdict(list)
        for n in self.nodes:
            for i in n.input:
                self.consumers[i].append(n)

    def const(self, name: str) -> float | None:
        value = self.consts.get(name)
        return None if value is None or value.size != 1 else float(value.reshape(()))

    def only_consumer(self, tensor: str, op_type: str):
        users = self.consumers.get(tensor, [])
        return users[0] if len(users) == 1 and users[0].op_type == op_type else None

    def ancestors(self, tensors: Iterable[str]) -> set[str]:
        """Names of the nodes that ``tensors`` depend on."""
        producer = {o: n for n in self.nodes for o in n.output}
        seen: set[str] = set()
        stack = [producer[t] for t in tensors if t in producer]
        while stack:
            n = stack.pop()
            if n.name in seen:
                continue
            seen.add(n.name)
            stack.extend(producer[i] for i in n.input if i in producer)
        return seen

    def descendants(self, roots: Iterable) -> set[str]:
        """Names of the nodes reachable from ``roots`` (inclusive)."""
        seen: set[str] = set()
        stack = list(roots)
        while stack:
            n = stack.pop()
            if n.name in seen:
                continue
            seen.add(n.name)
            for out in n.output:
                stack.extend(self.consumers.get(out, []))
        return seen


def clip_range(graph: _Graph, clip) -> tuple[float | None, float | None]:
    """The constant (min, max) of a Clip node; None where a bound is absent or not a constant scalar."""
    lo = graph.const(clip.input[1]) if len(clip.input) > 1 else None
    hi = graph.const(clip.input[2]) if len(clip.input) > 2 else None
    return lo, hi


def fake_quant_step(graph: _Graph, clip) -> float | None:
    """Step of a fixed-range fake-quant Clip (range [-128, 127] * step), None for other Clips."""
    lo, hi = clip_range(graph, clip)
    if lo is None or hi is None or hi <= 0:
        return None
    step = hi / 127.0
    return step if math.isclose(lo, -128.0 * step, rel_tol=1e-5) else None


def uint8_grid(graph: _Graph, clip) -> tuple[float, int] | None:
    """(step, zero point) of a Clip to a 255-step grid with 0 on a level, e.g. [-3, 6] -> (9/255, 85)."""
    lo, hi = clip_range(graph, clip)
    if lo is None or hi is None or not lo < 0 < hi:
        return None
    step = (hi - lo) / 255.0
    zero_point = -lo / step
    return (step, round(zero_point)) if abs(zero_point - round(zero_point)) < 1e-3 else None


def quantization_plan(proto, options: Int8Options) -> tuple[dict[str, list[dict]], list[str], list[str]]:
    """(TensorQuantOverrides, nodes_to_exclude, op_types_to_quantize) for the folded graph ``proto``."""
    from onnxruntime.quantization import QuantType

    graph = _Graph(proto)

    def grid(scale: float, zero_point: int) -> list[dict]:
        return [{"scale": np.array(scale, np.float32), "zero_point": np.array(zero_point, np.uint8),
                 "quant_type": QuantType.QUInt8}]

    overrides: dict[str, list[dict]] = {}
    if options.design_ranges:
        for n in graph.nodes:
            if n.op_type != "Clip":
                continue
            step = fake_quant_step(graph, n)
            if step is not None:
                overrides[n.output[0]] = grid(step, 128)
            elif len(n.input) == 3 and graph.const(n.input[1]) == 0.0 and graph.const(n.input[2]) == 1.0:
                # threshold sign: [x < 0] on codes {0, 255}; the conv before it saturates to these codes
                overrides[n.output[0]] = overrides[n.input[0]] = grid(1.0 / 255.0, 0)
        for n in graph.nodes:
            if n.op_type == "Cast" and any(m.op_type == "Less" and m.output[0] == n.input[0] for m in graph.nodes):
                overrides[n.output[0]] = grid(1.0 / 255.0, 0)  # float sign: [x < 0] on codes {0, 255}
            if n.op_type != "Conv":
                continue
            nxt = graph.only_consumer(n.output[0], "Max")
            if nxt is not None:  # binary conv with folded BN -> Max -> Min -> fake-quant Clip
                mn = graph.only_consumer(nxt.output[0], "Min")
                clip = mn and graph.only_consumer(mn.output[0], "Clip")
                step = clip and fake_quant_step(graph, clip)
                if step:
                    overrides[n.output[0]] = grid(step, 128)
            pre = graph.only_consumer(n.output[0], "Clip")
            if pre is not None and graph.only_consumer(pre.output[0], "HardSwish") is not None:
                grid_of_model = uint8_grid(graph, pre)  # the network's hard-swish input quantiser
                if grid_of_model is not None:
                    overrides[n.output[0]] = overrides[pre.output[0]] = grid(*grid_of_model)
                    continue
            act = graph.only_consumer(n.output[0], "HardSwish")
            if act is not None and options.hswish_inputs == "design":
                clip = graph.only_consumer(act.output[0], "Clip")
                step = clip and fake_quant_step(graph, clip)
                if step:
                    overrides[n.output[0]] = [{"rmin": np.array(-3.0, np.float32),
                                               "rmax": np.array(hardswish_input_max(127 * step), np.float32)}]
        # data movement keeps the quantisation of its input
        for n in graph.nodes:
            if n.op_type in _PASS_THROUGH and n.input[0] in overrides:
                overrides[n.output[0]] = overrides[n.input[0]]

    # the score/location heads end in sigmoid/tanh: their output convs and everything after stay fp32
    ends = [n for n in graph.nodes if n.op_type in ("Sigmoid", "Tanh")]
    heads = []
    for end in ends:
        heads.extend(m for m in graph.nodes if end.input[0] in m.output and m.op_type == "Conv")
    exclude = graph.descendants(ends)
    # only the network's feature path is quantised: the pixel geometry (cell grid + offsets, built from the
    # map's shape) is fp32; a calibrated uint8 range would saturate its coordinates at the calibration size
    maps = [o.name for o in proto.graph.output if o.name not in ("scores", "keypoints")]  # the descriptor map
    feature_path = graph.ancestors([end.input[0] for end in ends] + maps)
    exclude |= {n.name for n in graph.nodes if n.name not in feature_path}
    if options.fp32_heads:
        exclude |= {m.name for m in heads}
    for conv in [n for n in graph.nodes if n.op_type == "Conv"][: options.fp32_first_convs]:
        exclude.add(conv.name)
        overrides.pop(conv.output[0], None)  # not quantised: hard-swish follows in fp32
    op_types = ["Conv", "Add", "Clip", "DepthToSpace"]
    return overrides, sorted(exclude), op_types


def quantize_folded_onnx(float_path: str | Path, out_path: str | Path, batches: Iterable[np.ndarray],
                         options: Int8Options | None = None) -> Path:
    """quantize_static on a folded fp32 ONNX file, calibrated on ``batches`` of prepared photos."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from zippypoint.export.qdq_rewrites import (
        float_adds,
        fuse_sibling_convs,
        integer_clamps,
        quantize_fp32_inputs,
    )

    options = options or Int8Options()
    proto = onnx.load(str(float_path))
    overrides, exclude, op_types = quantization_plan(proto, options)
    import logging

    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}[options.calibration_method]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_static logs advice about pre-processing we do not need
    try:
        quantize_static(
            str(float_path), str(out_path), _calibration_reader(batches, proto.graph.input[0].name),
            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, op_types_to_quantize=op_types, nodes_to_exclude=exclude,
            calibrate_method=method,
            extra_options={"TensorQuantOverrides": overrides, "WeightSymmetric": True, "ActivationSymmetric": False},
        )
    finally:
        root.setLevel(level)
    out = onnx.load(str(out_path))
    changed = quantize_fp32_inputs(out, overrides)
    if options.integer_clamps:
        changed += integer_clamps(out)
    if options.float_adds:
        changed += float_adds(out)
    if options.fuse_heads:
        changed += fuse_sibling_convs(out)
    if changed:
        onnx.save_model(out, str(out_path))
    return Path(out_path)


def export_int8(model, path: str | Path, metadata: ExportMetadata, calibration_images: Sequence[str | Path], *,
                options: Int8Options | None = None, opset: int = 18,
                calibration_resize: tuple[int, int] | None = None) -> Path:
    """Fold ``model`` (eval), export it, quantise it to int8 QDQ and write ``path`` with ``metadata``."""
    import onnx

    from zippypoint.export.folded import FoldedZippyPoint
    from zippypoint.export.onnx_export import save_checked, set_metadata, trace_to_onnx

    if metadata.format != "onnx-int8":
        raise ValueError(f"export_int8 writes format 'onnx-int8', metadata says {metadata.format!r}")
    if not calibration_images:
        raise ValueError("int8 export needs calibration images (real photos); got none")
    options = options or Int8Options()
    if model.down1 is None and options.fp32_first_convs > 1:  # stride-2 stem: one ±1 layer before the blocks
        options = dataclasses.replace(options, fp32_first_convs=1)
    folded = FoldedZippyPoint(model.eval(), rounding=False, sign_as_threshold=options.sign == "threshold")
    proto = trace_to_onnx(folded, metadata.in_channels, opset=opset)
    recipe = {**options.to_dict(), "calibration_images": len(calibration_images),
              "calibration_resize": calibration_resize, "weights": "per-channel symmetric int8",
              "activations": "uint8"}
    metadata = dataclasses.replace(metadata, quantization=json.dumps(recipe, sort_keys=True))
    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "folded.onnx"
        onnx.save_model(proto, str(float_path))
        quantized = quantize_folded_onnx(
            float_path, Path(tmp) / "int8.onnx",
            calibration_batches(calibration_images, metadata.in_channels, calibration_resize), options,
        )
        out = onnx.load(str(quantized))
    set_metadata(out, metadata)
    return save_checked(out, path)


def optimized_op_counts(path: str | Path) -> Counter:
    """Op types of the graph ONNX Runtime actually runs (after its optimisations), e.g. to count QLinearConv."""
    import onnx

    from zippypoint.ort_session import cpu_session, session_options

    with tempfile.TemporaryDirectory() as tmp:
        opts = session_options()
        opts.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        cpu_session(path, opts)
        proto = onnx.load(opts.optimized_model_filepath)
    return Counter(n.op_type for n in proto.graph.node)
