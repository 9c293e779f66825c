"""int8 QDQ export: integer kernels in ONNX Runtime, exact design scales, parity on real photos."""

import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from export_helpers import PHOTOS, exported, reference_model, require_photos, sample_photos
from onnx import numpy_helper

from zippypoint.export.int8 import Int8Options, find_images, optimized_op_counts
from zippypoint.export.metadata import ExportMetadata
from zippypoint.io import prepare_image, read_image
from zippypoint.postprocess import PostprocessConfig, dense_to_features

NAMES = ("scores", "keypoints", "descriptors")


def _session(path, optimize=True, unsigned=None):
    """The session every runtime builds (``cpu_session``: int8 weights moved to uint8 where u8 x s8 products
    saturate); ``optimize=False``: the QDQ graph executed literally (float ops between Quantize/DequantizeLinear)."""
    from zippypoint.ort_session import cpu_session, session_options

    opts = session_options()
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return cpu_session(path, opts, unsigned=unsigned)


def _features(dense, shape):
    cfg = PostprocessConfig(max_keypoints=500)
    return dense_to_features(dense["scores"][0], dense["keypoints"][0], dense["descriptors"][0],
                             image_size=(shape[3], shape[2]), config=cfg)


def keypoint_and_bit_agreement(ref, out, radius=1.0):
    """(fraction of reference keypoints with an output keypoint within ``radius`` px,
    fraction of equal descriptor bits over those pairs)."""
    if len(ref["keypoints"]) == 0:
        return 1.0, 1.0
    if len(out["keypoints"]) == 0:
        return 0.0, 0.0
    d = np.linalg.norm(ref["keypoints"][:, None] - out["keypoints"][None], axis=2)
    nearest = d.argmin(1)
    ok = d[np.arange(len(nearest)), nearest] <= radius
    if not ok.any():
        return 0.0, 0.0
    a = np.unpackbits(ref["descriptors"][ok], axis=1)
    b = np.unpackbits(out["descriptors"][nearest[ok]], axis=1)
    return float(ok.mean()), float((a == b).mean())


def _photo_batches(count, size=(320, 240)):
    return [prepare_image(read_image(p), 3, size)[0] for p in sample_photos(count)]


def test_integer_kernels_after_optimisation():
    ops = optimized_op_counts(exported("onnx-int8"))
    # 21 convs + 8 threshold (sign) convs; fp32: the first two convs and the score/location output convs
    assert ops["QLinearConv"] == 25
    assert ops["Conv"] == 4
    # residual additions: 7 integer; block1a adds the ±1 grid of down1 to a ±6 grid and runs in float (Sum)
    assert ops["QLinearAdd"] == 7
    assert ops["Sum"] == 1


def test_metadata_records_the_recipe():
    proto = onnx.load(str(exported("onnx-int8")))
    meta = ExportMetadata.from_props({p.key: p.value for p in proto.metadata_props})
    assert meta.format == "onnx-int8" and meta.opset >= 17
    recipe = meta.quantization_dict()
    assert recipe["design_ranges"] and recipe["sign"] == "threshold" and recipe["calibration_images"] == 8
    assert recipe["activations"] == "uint8"


def test_fp32_convs_read_fake_quantised_inputs():
    """Convs kept in fp32 (except the input conv) read their input through the fake-quant grid, as in PyTorch."""
    proto = onnx.load(str(exported("onnx-int8")))
    producer = {o: n for n in proto.graph.node for o in n.output}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert len(convs) == 29
    for conv in convs[1:]:
        assert producer[conv.input[0]].op_type == "DequantizeLinear", conv.name


def test_binary_branch_clamps_run_on_codes():
    proto = onnx.load(str(exported("onnx-int8")))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    clamps = [n for n in proto.graph.node if n.op_type in ("Max", "Min") and n.input[1] in inits]
    on_codes = [n for n in clamps if inits[n.input[1]].dtype == np.uint8]
    assert len(on_codes) == 16  # one Max and one Min per binary block (the pixel geometry has fp32 ones)


def test_design_scales_are_exact():
    """The fake-quant grids (2*qmax/255, zero point 128) and the {0,1} sign codes appear as given; binary
    weights have one int8 code per output channel."""
    proto = onnx.load(str(exported("onnx-int8")))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    grids = set()
    for n in proto.graph.node:
        if n.op_type == "QuantizeLinear":
            scale, zp = inits[n.input[1]], inits[n.input[2]]
            grids.add((round(float(scale), 9), int(zp)))
    for qmax in (1.0, 6.0):
        assert (round(float(np.float32(2 * qmax / 255)), 9), 128) in grids
    assert (round(float(np.float32(1 / 255)), 9), 0) in grids
    model = reference_model()
    binary_codes = 0
    for n in proto.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].dtype == np.int8:
            w = inits[n.input[0]]
            if w.ndim == 4 and w.shape[1:] == (w.shape[1], 3, 3) and np.unique(np.abs(w)).tolist() == [127]:
                binary_codes += 1
    assert binary_codes == sum(1 for m in model.modules() if type(m).__name__ == "BinaryConv2d")


def test_layers_match_fake_quant_pytorch():
    """Runs now (random weights): each layer of the PyTorch network, fed the int8 model's input to it, gives
    the int8 model's output on the same quantisation level (up to values on a rounding boundary, where the
    float and the integer sums fall on either side); never more than one level apart."""
    from zippypoint.export.int8_check import layer_agreement

    batch = _photo_batches(1)[0]
    agreement = layer_agreement(reference_model(), exported("onnx-int8"), batch)
    print(json.dumps(agreement, indent=1))
    assert all(v["max_levels"] <= 1 for v in agreement.values()), agreement
    # binary blocks (sign as an int8 threshold conv, BN folded into the ±1 weights) and the float block1a add
    for layer in ("block1a", "block1b", "block2a", "block2b", "block3a", "block3b", "block4b"):
        assert agreement[layer]["equal"] == 1.0, (layer, agreement[layer])
    # int8 convs (hard-swish ones read the grid the network quantises their output to) and the fp32 ones
    for layer, entry in agreement.items():
        assert entry["equal"] >= 0.998, (layer, entry)
    assert agreement["desc_out"]["bits_equal"] >= 0.99


def _assert_sessions_agree(fast, literal, batches):
    """>= 95 % of keypoints within 1 px and >= 95 % of descriptor bits equal between two sessions' features."""
    kp, bits = [], []
    for batch in _photo_batches(batches):
        a = dict(zip(NAMES, literal.run(None, {"image": batch}), strict=True))
        b = dict(zip(NAMES, fast.run(None, {"image": batch}), strict=True))
        k, d = keypoint_and_bit_agreement(_features(a, batch.shape), _features(b, batch.shape))
        kp.append(k)
        bits.append(d)
    assert np.mean(kp) >= 0.95 and np.mean(bits) >= 0.95, (kp, bits)


def test_integer_kernels_match_the_qdq_graph():
    """Runs now (random weights): ONNX Runtime's integer kernels compute the QDQ graph (executed literally
    in float) closely enough for the 1 px / descriptor-bit requirement."""
    path = exported("onnx-int8")
    fast, literal = _session(path), _session(path, optimize=False)
    _assert_sessions_agree(fast, literal, 4)


def test_int8_pixel_geometry_is_not_quantised(tmp_path):
    """The cell grid + offsets stay fp32: calibrated on small photos, a larger image still gets keypoints
    within 7 px of their cell centres everywhere (a quantised grid saturated at the calibration width)."""
    from zippypoint.export.exporter import export_model

    require_photos()
    path = export_model("onnx-int8", tmp_path / "small-calib.onnx", "zippypoint", net=reference_model(),
                        calibration_dir=PHOTOS, calibration_count=2, calibration_resize=(160, 120))
    batch = _photo_batches(1, (640, 480))[0]
    kp = _session(path).run(["keypoints"], {"image": batch})[0][0]
    h, w = kp.shape[1:]
    centres = np.stack(np.meshgrid(np.arange(w) * 8 + 3.5, np.arange(h) * 8 + 3.5))
    assert np.abs(kp - centres).max() <= 7.0 + 1e-3
    assert kp[0].max() > 600 and kp[1].max() > 440


def test_int8_runs_at_other_sizes_and_batches():
    s = _session(exported("onnx-int8"))
    for shape in ((1, 3, 24, 24), (2, 3, 56, 88)):
        out = s.run(None, {"image": np.random.default_rng(0).random(shape, dtype=np.float32)})
        assert out[0].shape == (shape[0], 1, shape[2] // 8, shape[3] // 8)
        assert out[2].shape == (shape[0], 256, shape[2] // 4, shape[3] // 4)
        assert all(np.isfinite(o).all() for o in out)


def _shipped_model():
    from zippypoint.model.registry import create_model, get_preset

    path = get_preset("zippypoint").weights_path()
    if path is None or not path.exists():
        pytest.skip(f"the int8-vs-PyTorch requirement is measured on trained weights; {path} does not exist yet "
                    "(random weights are chaotic under half-gray-level input changes, see export/README.md)")
    return create_model("zippypoint", pretrained=True).eval()


@pytest.mark.slow
def test_int8_matches_fake_quant_pytorch_on_photos(tmp_path):
    """The requirement: >= 95% of keypoints within 1 px and >= 95% of descriptor bits equal, on real photos."""
    from zippypoint.export.exporter import export_model

    model = _shipped_model()
    require_photos()
    path = export_model("onnx-int8", tmp_path / "int8.onnx", "zippypoint", net=model,
                        calibration_dir=PHOTOS, calibration_count=32)
    s = _session(path)
    kp, bits = [], []
    for batch in _photo_batches(8, (640, 480)):
        with torch.no_grad():
            ref = {k: v.numpy() for k, v in model(torch.from_numpy(batch)).items()}
        out = dict(zip(NAMES, s.run(None, {"image": batch}), strict=True))
        k, d = keypoint_and_bit_agreement(_features(ref, batch.shape), _features(out, batch.shape))
        kp.append(k)
        bits.append(d)
    from zippypoint.export.int8_check import layer_agreement

    print(json.dumps({"keypoints_within_1px": float(np.mean(kp)), "bits_equal": float(np.mean(bits)),
                      "layers": layer_agreement(model, path, batch)}, indent=1))
    assert np.mean(kp) >= 0.95 and np.mean(bits) >= 0.95, (kp, bits)


def test_options_are_validated():
    with pytest.raises(ValueError, match="sign"):
        Int8Options(sign="xnor")
    with pytest.raises(ValueError, match="design_ranges"):
        Int8Options(design_ranges=False, sign="threshold")
    with pytest.raises(ValueError, match="calibration_method"):
        Int8Options(calibration_method="mse")


def test_find_images(tmp_path):
    with pytest.raises(FileNotFoundError):
        find_images(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no images"):
        find_images(tmp_path)
    for i in range(5):
        (tmp_path / f"{i}.jpg").write_bytes(b"x")
    assert [p.name for p in find_images(tmp_path, 3)] == ["0.jpg", "2.jpg", "4.jpg"]
    assert len(find_images(tmp_path)) == 5


def test_unsigned_weights_dequantise_to_the_same_values_and_keep_the_integer_kernels():
    """The uint8 weights (code + 128 at zero point + 128) dequantise exactly to the int8 ones; ONNX Runtime still
    fuses every convolution into QLinearConv; and forced on (as on x86 without VNNI) the session agrees with the
    QDQ graph executed literally as closely as the signed graph must."""
    from zippypoint.ort_session import unsigned_weights

    path = exported("onnx-int8")
    before = onnx.load(str(path))
    data, moved = unsigned_weights(path.read_bytes())
    after = onnx.load_from_string(data)
    weights = {n.input[0] for n in before.graph.node if n.op_type == "DequantizeLinear"} & {
        i.name for i in before.graph.initializer if i.data_type == onnx.TensorProto.INT8}
    assert moved == len(weights) > 0
    old = {i.name: i for i in before.graph.initializer}
    new = {i.name: i for i in after.graph.initializer}

    def dequantised(tensors, weight, zero):  # zero point per output channel (axis 0) or one for the tensor
        w = numpy_helper.to_array(tensors[weight]).astype(np.float32)
        z = numpy_helper.to_array(tensors[zero]).astype(np.float32)
        return w - (z.reshape((-1,) + (1,) * (w.ndim - 1)) if z.ndim else z)

    for node in before.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in weights:
            w, _, zero = node.input
            assert new[w].data_type == new[zero].data_type == onnx.TensorProto.UINT8
            np.testing.assert_array_equal(dequantised(new, w, zero), dequantised(old, w, zero))
    assert not [n for n in before.graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in weights
                and n.input[0] in new and new[n.input[0]].data_type == onnx.TensorProto.UINT8]  # activations untouched
    fast, literal = _session(path, unsigned=True), _session(path, optimize=False, unsigned=False)
    _assert_sessions_agree(fast, literal, 2)
    with tempfile.TemporaryDirectory() as tmp:
        rewritten = Path(tmp) / "u8.onnx"
        rewritten.write_bytes(data)
        assert optimized_op_counts(rewritten)["QLinearConv"] == optimized_op_counts(path)["QLinearConv"] > 0


def test_int8_products_saturate_on_x86_without_vnni_only():
    from zippypoint.machine import int8_products_saturate

    assert int8_products_saturate({"sse4_2": True, "avx2": True})
    assert not int8_products_saturate({"sse4_2": True, "avx2": True, "avx512f": True, "avx512_vnni": True})
    assert not int8_products_saturate({"sse4_2": True, "avx2": True, "avx_vnni": True})
    assert not int8_products_saturate({"sse4_2": True, "avx2": True, "amx_int8": True})
    assert not int8_products_saturate({"neon": True, "asimd": True, "asimddp": True})
