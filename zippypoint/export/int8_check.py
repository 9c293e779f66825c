"""Layer-by-layer agreement of an int8 ONNX model with the fake-quant PyTorch network.

End-to-end keypoint parity of a randomly initialised binary network says little: it is chaotic (a half
gray-level change of the input already moves most keypoints), so any rounding difference spreads. Here every
layer of the PyTorch network is fed the int8 model's own input to that layer (teacher forcing) and its output
is compared with the int8 model's output, in quantisation levels. This measures what the int8 graph changes,
layer by layer, with any weights; the end-to-end requirement is measured on trained weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from zippypoint.model.network import normalised_input
from zippypoint.quant.quantizers import ActivationQuantizer

# (layer, the layer its input comes from); None = the normalised image
LAYERS = (
    ("conv_in", None), ("down1", "conv_in"), ("block1a", "down1"), ("block1b", "block1a"), ("down2", "block1b"),
    ("block2a", "down2"), ("block2b", "block2a"), ("down3", "block2b"), ("block3a", "down3"),
    ("block3b", "block3a"), ("block4a", "block3b"), ("block4b", "block4a"), ("score_conv", "block4b"),
    ("loc_conv", "block4b"), ("desc_conv1", "block4b"), ("desc_conv2", "desc_conv1"),
    ("desc_conv3", "desc_conv2"), ("desc_out", "desc_conv3"),
)


def _layer_outputs(proto) -> dict[str, tuple[str, str | None, str | None]]:
    """layer -> (uint8 code tensor, scale initializer, zero-point initializer) of its quantised output, or
    (float tensor, None, None) where the output is not quantised (it feeds only fp32 nodes)."""
    order = {}
    for k, node in enumerate(proto.graph.node):
        ns = next((p.value for p in node.metadata_props if p.key == "namespace"), "")
        for name, _ in LAYERS:
            if f"/net.{name}: " in ns:
                order[name] = (k, node.output[0])
    quant = {n.input[0]: n for n in proto.graph.node if n.op_type == "QuantizeLinear"}
    out = {}
    for name, (_, tensor) in order.items():
        q = quant.get(tensor)
        out[name] = (q.output[0], q.input[1], q.input[2]) if q is not None else (tensor, None, None)
    missing = [n for n, _ in LAYERS if n not in out]
    if missing:
        raise ValueError(f"layers not found in the int8 graph (not a zippypoint int8 export?): {missing}")
    return out


def layer_agreement(model, int8_path: str | Path, batch: np.ndarray) -> dict[str, dict[str, float]]:
    """Per layer: ``equal`` (fraction of outputs on the same quantisation level as the PyTorch layer fed the
    same input), ``max_levels`` (largest difference in levels) and, for ``desc_out``, ``bits_equal`` (agreement
    of the top-k binarisation at every position of the raw descriptor map)."""
    import onnx
    from onnx import helper, numpy_helper

    from zippypoint.ort_session import cpu_session

    proto = onnx.load(str(int8_path))
    outputs = _layer_outputs(proto)
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for code, _, _ in outputs.values():
        proto.graph.output.append(helper.make_empty_tensor_value_info(code))
    session = cpu_session(proto.SerializeToString())
    names = [code for code, _, _ in outputs.values()]
    values = dict(zip(names, session.run(names, {session.get_inputs()[0].name: batch}), strict=True))

    def dequantized(layer):
        code, scale, zp = outputs[layer]
        if scale is None:  # float output: count levels of the layer's own fake-quantiser
            quants = [m for m in getattr(model, layer).modules() if isinstance(m, ActivationQuantizer)]
            return values[code], quants[-1].step
        return (values[code].astype(np.float32) - inits[zp].astype(np.float32)) * inits[scale], float(inits[scale])

    model = model.eval()
    k = model.config.descriptor_ones
    result = {}
    with torch.no_grad():
        for layer, source in LAYERS:
            if source is None:
                x = normalised_input(model, torch.from_numpy(batch))
            else:
                x = torch.from_numpy(dequantized(source)[0])
                if layer == "desc_conv3":
                    x = F.pixel_shuffle(x, 2)
            ref = getattr(model, layer)(x).numpy()
            out, step = dequantized(layer)
            levels = np.rint(np.abs(out - ref) / step)
            entry = {"equal": float((levels == 0).mean()), "max_levels": float(levels.max())}
            if layer == "desc_out":
                top_ref = np.argsort(-ref, axis=1)[:, :k]
                top_out = np.argsort(-out, axis=1)[:, :k]
                bits_ref = np.zeros(ref.shape, bool)
                bits_out = np.zeros(out.shape, bool)
                np.put_along_axis(bits_ref, top_ref, True, axis=1)
                np.put_along_axis(bits_out, top_out, True, axis=1)
                entry["bits_equal"] = float((bits_ref == bits_out).mean())
            result[layer] = entry
    return result
