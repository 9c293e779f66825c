"""Feature extraction with an OpenVINO IR written by ``zippypoint export --format openvino``; no torch.

Binary layers run as OpenVINO's 1-bit BinaryConvolution, int8 layers as u8/i8 convolutions, the rest in fp32
(``INFERENCE_PRECISION_HINT=f32``: on CPUs with AMX OpenVINO would otherwise run them in bf16). Same staged
interface and output contract as every extractor (:class:`zippypoint.runtime.base.StagedExtractor`):
- ``keypoints``   float32 [N, 2]: (x, y) in input-image pixels; the centre of the top-left pixel is (0, 0);
- ``scores``      float32 [N], sorted descending;
- ``descriptors`` uint8 [N, 32]: 256 bits with exactly 64 ones; bit j is ``(d[j // 8] >> (j % 8)) & 1``.

The CPU plugin compiles BinaryConvolution for static shapes only, so the network is compiled once per input
size (a few sizes are kept; the first image of a new size pays the compilation, about a second).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

import numpy as np

from zippypoint.export.metadata import ExportMetadata
from zippypoint.runtime.base import ExportedExtractor, ExtractorConfig, make_config

OUTPUT_NAMES = ("scores", "keypoints", "descriptors")
COMPILE_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}  # as in zippypoint.export.openvino_export (torch-free here)


class _Compiled(NamedTuple):
    """The network compiled for one input size, its infer request, whether it writes descriptors channels last,
    and (zero point, scale) where it writes the descriptor map as the u8 codes of its int8 output (None: float)."""

    model: object
    request: object
    channels_last: bool
    codes: tuple[float, float] | None = None


class OpenVinoExtractor(ExportedExtractor):
    """Detect and describe with an exported ZippyPoint OpenVINO IR (``.xml`` with its ``.bin``).

    ``model_path``: the ``.xml`` file; opened on first use (or by :meth:`load`). ``config`` / keyword overrides:
    as for every extractor. ``threads``: CPU threads per inference (None = OpenVINO's default).
    ``cached_shapes``: how many input sizes stay compiled.
    """

    def __init__(self, model_path: str | Path, *, config: ExtractorConfig | None = None, threads: int | None = None,
                 cached_shapes: int = 4, **config_overrides) -> None:
        if threads is not None and threads < 0:
            raise ValueError(f"threads must be >= 0 or None, got {threads}")
        if cached_shapes < 1:
            raise ValueError(f"cached_shapes must be >= 1, got {cached_shapes}")
        self.model_path = Path(model_path)
        self.config = make_config(config, config_overrides)
        self.threads = threads
        self.cached_shapes = cached_shapes
        self._core = None
        self._model = None
        self._metadata: ExportMetadata | None = None
        self._compiled: OrderedDict[tuple[int, ...], _Compiled] = OrderedDict()

    def load(self) -> OpenVinoExtractor:
        """Read the IR now (otherwise on first use); returns self."""
        if self._model is None:
            import openvino as ov

            from zippypoint.export.openvino_export import read_rt_metadata

            if not self.model_path.is_file():
                raise FileNotFoundError(f"OpenVINO model not found: {self.model_path}")
            if self.model_path.suffix != ".xml":
                raise ValueError(f"expected an OpenVINO IR .xml file, got {self.model_path.name!r}")
            core = ov.Core()
            model = core.read_model(str(self.model_path))
            meta = read_rt_metadata(model)
            if meta.format != "openvino":
                raise ValueError(f"{self.model_path} is a {meta.format!r} export, not an OpenVINO IR")
            outputs = tuple(o.get_any_name() for o in model.outputs)
            if outputs != OUTPUT_NAMES:
                raise ValueError(f"{self.model_path}: expected outputs {OUTPUT_NAMES}, got {outputs}")
            self._core, self._model, self._metadata = core, model, meta
            recipe = json.loads(meta.quantization or "{}")
            if str(recipe.get("binary_layers", "")).startswith("int8"):  # the IR whose binary blocks run as int8
                from zippypoint.machine import int8_products_saturate

                if int8_products_saturate():
                    import warnings

                    warnings.warn(
                        f"{self.model_path.name}: an IR whose binary blocks run as int8 convolutions, on an x86 CPU "
                        "without VNNI, where OpenVINO's int8 kernels saturate 16-bit sums of products: its outputs "
                        "deviate from the model's (measured on an AVX2-only CPU: 20 % of keypoints within 1 px of "
                        "PyTorch's). Use the 1-bit IR (--runtime openvino, the default on this CPU) or onnx-int8",
                        RuntimeWarning, stacklevel=2)
        return self

    def compiled(self, shape: tuple[int, int, int, int]):
        """The network compiled for input ``shape`` (B, C, H, W) (compiled on first request, then cached)."""
        return self._entry(shape).model

    def _entry(self, shape: tuple[int, ...]) -> _Compiled:
        self.load()
        shape = tuple(int(v) for v in shape)
        hit = self._compiled.get(shape)
        if hit is not None:
            self._compiled.move_to_end(shape)
            return hit
        model, channels_last, codes = self.prepared_model(shape)
        compiled = self._compile(model)
        entry = self._compiled[shape] = _Compiled(compiled, compiled.create_infer_request(), channels_last, codes)
        while len(self._compiled) > self.cached_shapes:
            self._compiled.popitem(last=False)
        return entry

    def compiled_with(self, shape: tuple[int, int, int, int], config: dict):
        """A fresh compilation of the network for input ``shape`` with extra CPU plugin ``config`` (e.g.
        ``{"PERF_COUNT": True}`` for the per-layer profile); not cached, and ``extract`` does not use it."""
        return self._compile(self.prepared_model(tuple(int(v) for v in shape))[0], config)

    def _compile(self, model, extra: dict | None = None):
        config = dict(COMPILE_CONFIG)
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        config.update(extra or {})
        return self._core.compile_model(model, "CPU", config)

    def prepared_model(self, shape: tuple[int, ...]) -> tuple[object, bool, tuple[float, float] | None]:
        """(the model as it is compiled for input ``shape``, whether it writes descriptors channels last, (zero
        point, scale) where it writes them as u8 codes)."""
        self.load()
        model = self._model.clone()
        model.reshape({model.inputs[0]: list(shape)})
        codes = descriptor_codes(model)
        channels_last = codes is not None or descriptors_upsampled(model)
        if channels_last:
            model = descriptors_channels_last(model)
        return model, channels_last, codes

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run the network on a prepared float32 batch (B, C, H, W) in [0, 1], H and W multiples of 8 (>= 24).

        Returns numpy dense maps: scores (B,1,H/8,W/8), keypoints (B,2,H/8,W/8), descriptors (B,256,H/4,W/4).
        """
        return self._run(batch, share_outputs=False)

    def network(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """``infer`` as ``extract`` uses it: the maps stay in the request's output buffers (valid until the next run
        of the same input size; the features made from them are new arrays), and the descriptor map may stay u8
        codes (the top-64 bits of a bilinear blend of codes are those of the dequantised map)."""
        return self._run(batch, share_outputs=True, dequantize=False)

    def _run(self, batch: np.ndarray, *, share_outputs: bool, dequantize: bool = True) -> dict[str, np.ndarray]:
        """``infer``; with ``share_outputs`` the maps are views of the request's output buffers, valid until the
        next run of the same input size; without ``dequantize`` a descriptor map of u8 codes stays codes."""
        self.load()
        self.check_batch(batch)
        entry = self._entry(batch.shape)
        result = entry.request.infer({0: np.ascontiguousarray(batch)}, share_inputs=True, share_outputs=share_outputs)
        dense = {name: np.asarray(result[entry.model.output(name)]) for name in OUTPUT_NAMES}
        if entry.codes is not None and dequantize:
            zero_point, scale = entry.codes
            codes = dense["descriptors"]
            dense["descriptors"] = np.multiply(np.subtract(codes, np.float32(zero_point), dtype=np.float32),
                                               np.float32(scale), dtype=np.float32)
        if entry.channels_last:
            # (B, H/4, W/4, D) as the plugin keeps it; the contract's (B, D, H/4, W/4) as a view, no copy
            dense["descriptors"] = dense["descriptors"].transpose(0, 3, 1, 2)
        return dense

    def __repr__(self) -> str:
        return f"OpenVinoExtractor({str(self.model_path)!r}, config={self.config})"


def descriptors_upsampled(model) -> bool:
    """Whether the (reshaped) ``model`` writes its descriptor map at a finer stride than its score map (the paper
    topology's depth-to-space head at H/4; the lean topology writes both at H/8)."""
    shapes = {o.get_any_name(): o.get_partial_shape() for o in model.outputs}
    return shapes["descriptors"][2].get_length() > shapes["scores"][2].get_length()


def descriptor_codes(model) -> tuple[float, float] | None:
    """Where ``model`` ends its descriptor output in the int8 export's dequantisation of u8 codes by scalars,
    ``(code - zero_point) * scale`` with ``scale > 0``: make the codes themselves the output (in place) and return
    (zero_point, scale); else None (the model is left as it is).

    A positive affine map keeps the order of the values, and the weights of a bilinear blend sum to 1, so the top-64
    bits of a blend of codes are the bits of the blend of the dequantised map: the post-processing reads a map a
    quarter the size, and the plugin writes it channels last without the reorder (0.2 ms at 320x240 and 0.9 ms at
    640x480 on the lean topology here) and the dequantising pass it needs for float."""
    result = next((r for r in model.get_results() if "descriptors" in r.input_value(0).get_names()), None)
    if result is None:
        return None
    multiply = result.input_value(0).get_node()
    if multiply.get_type_name() != "Multiply":
        return None
    subtract = multiply.input_value(0).get_node()
    scale_value = _constant(multiply.input_value(1).get_node())
    if subtract.get_type_name() != "Subtract" or scale_value is None:
        return None
    convert = subtract.input_value(0).get_node()
    zero_value = _constant(subtract.input_value(1).get_node())
    if convert.get_type_name() != "Convert" or zero_value is None:
        return None
    source = convert.input_value(0)
    if (source.get_element_type().get_type_name() != "u8" or scale_value.size != 1 or zero_value.size != 1
            or not float(scale_value.reshape(-1)[0]) > 0):
        return None
    names = result.input_value(0).get_names()
    result.input(0).replace_source_output(source)
    source.get_tensor().set_names(set(names))
    model.validate_nodes_and_infer_types()
    return float(zero_value.reshape(-1)[0]), float(scale_value.reshape(-1)[0])


def _constant(node) -> np.ndarray | None:
    """The value of a Constant node, also behind a Convert (a u8 zero point is stored so); else None."""
    if node.get_type_name() == "Convert":
        node = node.input_value(0).get_node()
    return np.asarray(node.get_data(), np.float64) if node.get_type_name() == "Constant" else None


def descriptors_channels_last(model):
    """``model`` writing its descriptor map as (B, H/4, W/4, D). Used for the depth-to-space head at H/4 only:
    there the CPU plugin keeps the map channels last and asking for NCHW adds a reorder of the whole map (about
    1 ms at 640x480 here), while the post-processing reads a channels-last map faster (each keypoint's
    neighbours are contiguous rows). A head at H/8 ends in a convolution that writes NCHW directly; asking it
    for NHWC added a transpose and a reorder instead (measured 0.4-0.5 ms slower in all, post-processing
    included, at 320x240 and 640x480)."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model)
    out = ppp.output("descriptors")
    out.model().set_layout(ov.Layout("NCHW"))
    out.tensor().set_layout(ov.Layout("NHWC"))
    return ppp.build()
