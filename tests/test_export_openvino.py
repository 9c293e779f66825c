"""OpenVINO IR export and runtime: the binary layers run as 1-bit BinaryConvolution and the int8 layers as int8
(read from the compiled model's runtime graph), the 1-bit layer is exact, parity with the PyTorch fake-quant
network on real photos and on hpatches-dev."""

from __future__ import annotations

import functools
import json
from collections import Counter

import numpy as np
import pytest
from export_helpers import (
    _TMP,
    CALIBRATION_COUNT,
    HPATCHES,
    PHOTOS,
    reference_model,
    require_photos,
    sample_photos,
)

pytest.importorskip("openvino")

from zippypoint.export.int8 import Int8Options  # noqa: E402
from zippypoint.io import prepare_image, read_image  # noqa: E402
from zippypoint.model.registry import DEFAULT_PRESET  # noqa: E402
from zippypoint.postprocess import PostprocessConfig, dense_to_features  # noqa: E402
from zippypoint.quant.layers import BinaryConv2d  # noqa: E402
from zippypoint.runtime.openvino_extractor import OpenVinoExtractor  # noqa: E402


@functools.cache
def exported_ir(pretrained: bool = False, calibration_count: int = CALIBRATION_COUNT, one_bit: bool = True):
    from zippypoint.export.exporter import export_model
    from zippypoint.model.registry import create_model

    require_photos()
    net = create_model("zippypoint", pretrained=True).eval() if pretrained else reference_model()
    name = f"zippypoint-{'shipped' if pretrained else 'random'}-{calibration_count}-{'u1' if one_bit else 'i8'}.xml"
    return export_model("openvino", _TMP / name, "zippypoint", net=net, calibration_dir=PHOTOS,
                        calibration_count=calibration_count, openvino_one_bit=one_bit)


def _runtime_layers(compiled) -> Counter:
    counts = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        counts[(rt["layerType"].astype(str), rt["runtimePrecision"].astype(str))] += 1
    return counts


def _binary_conv_inputs(compiled) -> list[tuple[str, str]]:
    """(layer type, output precision) of the runtime node feeding each BinaryConvolution: the binarising
    FakeQuantize writing packed bits when the pattern is fused, a Reorder (f32 -> u1) when it is not."""
    found = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        if op.get_rt_info()["layerType"].astype(str) == "BinaryConvolution":
            rt = op.input_value(0).get_node().get_rt_info()
            found.append((rt["layerType"].astype(str), rt["outputPrecisions"].astype(str)))
    return found


@pytest.mark.parametrize("shape", [(1, 3, 240, 320), (1, 3, 480, 640)])
def test_runtime_graph_runs_binary_layers_in_1bit_and_int8_layers_in_int8(shape):
    net = reference_model()
    binary = sum(isinstance(m, BinaryConv2d) and m.binary for m in net.modules())
    convs = sum(isinstance(m, __import__("torch").nn.Conv2d) for m in net.modules())
    options = Int8Options()
    fp32_by_design = options.fp32_first_convs + (2 if options.fp32_heads else 0)  # + score/location outputs
    counts = _runtime_layers(OpenVinoExtractor(exported_ir()).compiled(shape))
    print(json.dumps({f"{k[0]}/{k[1]}": v for k, v in sorted(counts.items())}, indent=1))
    assert binary == 8
    assert counts[("BinaryConvolution", "u1")] == binary  # every binary layer is a real 1-bit kernel
    assert sum(v for (t, _), v in counts.items() if t == "BinaryConvolution") == binary
    # each fed by its binarising quantiser writing packed bits, no f32 -> u1 reorder in between
    assert _binary_conv_inputs(OpenVinoExtractor(exported_ir()).compiled(shape)) == [("FakeQuantize", "u1")] * binary
    int8 = counts[("Convolution", "u8")] + counts[("Convolution", "i8")]
    assert int8 == convs - binary - fp32_by_design  # every int8 layer runs on integers
    assert counts[("Convolution", "f32")] == fp32_by_design  # nothing else fell back to float (nor bf16)
    assert not any(p == "bf16" for _, p in counts)


def _branch_chain(conv) -> list[str]:
    """Op types from a BinaryConvolution's output to the residual Add (the first Add of two computed inputs)."""
    chain, out = [], conv.output(0)
    for _ in range(20):
        users = list(out.get_target_inputs())
        assert len(users) == 1, [u.get_node().get_type_name() for u in users]
        node = users[0].get_node()
        inputs = [v.get_node().get_type_name() for v in node.input_values()]
        if node.get_type_name() == "Add" and "Constant" not in inputs:
            return chain
        chain.append(node.get_type_name())
        out = node.output(0)
    raise AssertionError(f"no residual Add after {conv.get_friendly_name()}: {chain}")


def test_binary_branches_run_their_relu_in_the_kernel_and_keep_no_code_clamps():
    """The branch is BN(ReLU(binconv)): the IR applies the ReLU to the popcount, where the CPU plugin fuses it into
    the 1-bit kernel, and drops the int8 graph's per-channel Max/Min on the branch codes (no-ops after it; the
    parity tests below check the outputs)."""
    import openvino as ov

    model = ov.Core().read_model(str(exported_ir()))
    convs = [op for op in model.get_ordered_ops() if op.get_type_name() == "BinaryConvolution"]
    assert len(convs) == 8
    for conv in convs:
        chain = _branch_chain(conv)
        assert chain[:3] == ["Relu", "Multiply", "Add"], chain
        assert "Maximum" not in chain and "Minimum" not in chain, chain
    compiled = OpenVinoExtractor(exported_ir()).compiled((1, 3, 240, 320))
    runtime_ops = compiled.get_runtime_model().get_ordered_ops()
    fused = [op.get_rt_info()["originalLayersNames"].astype(str) for op in runtime_ops
             if op.get_rt_info()["layerType"].astype(str) == "BinaryConvolution"]
    assert len(fused) == 8 and all("Relu" in names for names in fused), fused


def test_int8_variant_runs_the_binary_blocks_as_int8_and_nothing_in_float():
    """``--runtime openvino-int8``: no 1-bit kernel, every quantised layer on integers, the rest as designed."""
    options = Int8Options()
    fp32_by_design = options.fp32_first_convs + (2 if options.fp32_heads else 0)
    counts = _runtime_layers(OpenVinoExtractor(exported_ir(one_bit=False)).compiled((1, 3, 240, 320)))
    assert not any(t == "BinaryConvolution" for t, _ in counts)
    assert counts[("Convolution", "u8")] + counts[("Convolution", "i8")] >= 8 + 8  # the blocks and the int8 layers
    assert counts[("Convolution", "f32")] == fp32_by_design
    assert not any(p == "bf16" for _, p in counts)


def test_descriptors_come_back_channels_last_as_a_view_with_the_contract_shape():
    ex = OpenVinoExtractor(exported_ir())
    batch = np.random.default_rng(0).random((1, 3, 48, 64), dtype=np.float32)
    d = ex.infer(batch)["descriptors"]
    assert d.shape == (1, 256, 12, 16) and d.strides[1] == d.itemsize  # (B, D, h, w) over channels-last memory
    ref = np.ascontiguousarray(d)
    feats = dense_to_features(np.ones((12, 16), np.float32), np.stack(np.meshgrid(np.arange(16) * 4.0 + 1,
                              np.arange(12) * 4.0 + 1)).astype(np.float32)[:, :12, :16], d[0], image_size=(64, 48))
    same = dense_to_features(np.ones((12, 16), np.float32), np.stack(np.meshgrid(np.arange(16) * 4.0 + 1,
                             np.arange(12) * 4.0 + 1)).astype(np.float32)[:, :12, :16], ref[0], image_size=(64, 48))
    np.testing.assert_array_equal(feats["descriptors"], same["descriptors"])


def test_binary_convolution_equals_the_sign_convolution_padded_with_plus_one():
    """The emitted pattern (2-level FakeQuantize with outputs 0 / 1 half a step below 0 + BinaryConvolution, u1
    little-endian weights) computes conv(pad_{+1}(sign(x)), sign(w)) exactly on a fake-quant grid, zeros and
    borders included, and compiles to a binarisation writing packed bits straight into the 1-bit kernel."""
    import openvino as ov
    import torch
    import torch.nn.functional as F
    from openvino import opset1
    from openvino import opset13 as ops

    from zippypoint.export.openvino_export import _u1_constant, sign_bits

    rng = np.random.default_rng(0)
    step = 12.0 / 255.0
    for cin, cout in ((32, 32), (64, 128), (40, 24)):  # 40: not a multiple of the kernel's channel block
        x = (rng.integers(-128, 128, (1, cin, 13, 17)) * step).astype(np.float32)
        x[0, :, 4:7, 4:7] = 0.0  # sign(0) = +1
        w = np.where(rng.random((cout, cin, 3, 3)) > 0.5, 1.0, -1.0).astype(np.float32)
        inp = ops.parameter(list(x.shape), np.float32)
        conv = opset1.binary_convolution(sign_bits(inp, step), _u1_constant(w), [1, 1], [1, 1], [1, 1], [1, 1],
                                         "xnor-popcount", 1.0)
        compiled = ov.Core().compile_model(ov.Model([conv], [inp]), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        assert _runtime_layers(compiled)[("BinaryConvolution", "u1")] == 1
        assert _binary_conv_inputs(compiled) == [("FakeQuantize", "u1")]
        sign = torch.from_numpy(np.where(x >= 0, 1.0, -1.0).astype(np.float32))
        ref = F.conv2d(F.pad(sign, (1, 1, 1, 1), value=1.0), torch.from_numpy(w)).numpy()
        assert np.array_equal(compiled(x)[0], ref)


def _check_contract(f, width, height, max_keypoints):
    n = len(f["scores"])
    assert f["keypoints"].dtype == np.float32 and f["keypoints"].shape == (n, 2) and 0 < n <= max_keypoints
    assert f["scores"].dtype == np.float32 and np.all(np.diff(f["scores"]) <= 0)
    assert f["descriptors"].dtype == np.uint8 and f["descriptors"].shape == (n, 32)
    assert np.all(f["keypoints"] >= 0) and np.all(f["keypoints"] <= [width - 1, height - 1])
    assert np.all(np.unpackbits(f["descriptors"], axis=1).sum(1) == 64)


def test_extractor_contract_sizes_metadata_and_errors(tmp_path):
    ex = OpenVinoExtractor(exported_ir(), max_keypoints=200, threads=2)
    assert ex.metadata.format == "openvino" and ex.in_channels == 3
    assert "BinaryConvolution" in ex.metadata.quantization_dict()["binary_layers"]
    image = read_image(sample_photos(1)[0])
    for size in ((320, 240), (100, 75)):  # 100x75 is padded to 104x80
        ex.config = type(ex.config)(max_keypoints=200, resize=size)
        _check_contract(ex.extract(image), image.shape[1], image.shape[0], 200)
    batch = prepare_image(image, 3, (64, 48))[0]
    dense = ex.infer(np.concatenate([batch, batch]))
    assert dense["scores"].shape == (2, 1, 6, 8) and dense["descriptors"].shape == (2, 256, 12, 16)
    assert np.array_equal(ex.infer(batch)["descriptors"][0], ex.infer(batch)["descriptors"][0])  # deterministic
    with pytest.raises(ValueError, match="multiples of 8"):
        ex.infer(np.zeros((1, 3, 30, 32), np.float32))
    with pytest.raises(ValueError, match="shape"):
        ex.infer(np.zeros((1, 1, 32, 32), np.float32))
    with pytest.raises(FileNotFoundError):
        OpenVinoExtractor(tmp_path / "missing.xml").load()


def _features(dense, shape, k=500):
    return dense_to_features(dense["scores"][0], dense["keypoints"][0], dense["descriptors"][0],
                             image_size=(shape[3], shape[2]), config=PostprocessConfig(max_keypoints=k))


def _shipped_model():
    from zippypoint.model.registry import create_model, get_preset

    path = get_preset("zippypoint").weights_path()
    if path is None or not path.exists():
        pytest.skip(f"parity is measured on trained weights; {path} does not exist")
    return create_model("zippypoint", pretrained=True).eval()


@pytest.mark.slow
@pytest.mark.parametrize("one_bit", [True, False], ids=["1bit", "int8-blocks"])
def test_matches_fake_quant_pytorch_on_photos(one_bit):
    """As for the int8 ONNX export: >= 95% of keypoints within 1 px, >= 95% of descriptor bits equal, 640x480.

    On x86 CPUs without VNNI OpenVINO's int8 kernels add pairs of u8 x s8 products in 16 bits and saturate
    (``machine.int8_products_saturate``): measured on an AVX2-only AMD EPYC, the 1-bit IR kept 0.933 of keypoints
    within 1 px and 0.973 of bits (its hpatches-dev quality stays within the parity bound, the next test), the IR
    with int8 binary blocks only 0.20 / 0.75. There the 1-bit IR must keep 90 % / 95 %, and the int8-blocks IR
    must warn on load instead (the default runtime there is the 1-bit IR)."""
    import torch
    from test_export_int8 import keypoint_and_bit_agreement

    from zippypoint.machine import int8_products_saturate

    saturating = int8_products_saturate()
    model = _shipped_model()
    ex = OpenVinoExtractor(exported_ir(pretrained=True, calibration_count=32, one_bit=one_bit), threads=2)
    if saturating and not one_bit:
        with pytest.warns(RuntimeWarning, match="without VNNI"):
            ex.load()
        return
    kp, bits = [], []
    for path in sample_photos(8):
        batch = prepare_image(read_image(path), 3, (640, 480))[0]
        with torch.no_grad():
            ref = {k: v.numpy() for k, v in model(torch.from_numpy(batch)).items()}
        k, d = keypoint_and_bit_agreement(_features(ref, batch.shape), _features(ex.infer(batch), batch.shape))
        kp.append(k)
        bits.append(d)
    print(json.dumps({"keypoints_within_1px": float(np.mean(kp)), "bits_equal": float(np.mean(bits))}))
    assert np.mean(kp) >= (0.90 if saturating else 0.95) and np.mean(bits) >= 0.95, (kp, bits)


def _hpatches_scores(extractor, size=(320, 240), top_k=300) -> dict:
    from zippypoint.eval.protocol import MMA_THRESHOLDS
    from zippypoint.eval.quick import hpatches_pair_values

    values = hpatches_pair_values(extractor.extract, HPATCHES, size, top_k, "binary", ransac_orders=256)
    i3 = list(MMA_THRESHOLDS).index(3)
    return {"mma_3": float(np.mean([v["mma"][i3] for v in values])),
            "c3_256": float(np.mean([v["correctness_3_orders"] for v in values]))}


@pytest.mark.slow
def test_hpatches_dev_quality_matches_pytorch():
    """MMA@3 on hpatches-dev (320x240, top 300) within 0.03 of the PyTorch fake-quant network, C3/256 not worse
    by more than 0.03. (Measured: MMA@3 0.689 vs 0.709, C3/256 0.471 vs 0.424: on these 10 pairs the level
    flips between the runtimes decide a few pairs near 3 px either way, here in OpenVINO's favour.)"""
    from zippypoint.extractor import Extractor
    from zippypoint.methods.registry import candidate_budget

    if not HPATCHES.is_dir():
        pytest.skip(f"hpatches-dev not found at {HPATCHES}")
    budget = candidate_budget("zippypoint", 300)
    ours = _hpatches_scores(OpenVinoExtractor(exported_ir(pretrained=True, calibration_count=32), threads=2,
                                              max_keypoints=budget))
    ref = _hpatches_scores(Extractor(_shipped_model(), max_keypoints=budget))
    print(json.dumps({"openvino": ours, "pytorch": ref}))
    assert abs(ours["mma_3"] - ref["mma_3"]) <= 0.03 and ours["c3_256"] >= ref["c3_256"] - 0.03, (ours, ref)


@pytest.mark.parametrize("preset", ["zippypoint", "zippypoint-lean", "zippypoint-slim", DEFAULT_PRESET])
def test_packaged_one_bit_ir_runs_every_binary_layer_as_a_1bit_kernel(preset):
    """The packaged 1-bit IR (the default runtime on x86 CPUs without AMX) is the real thing."""
    from zippypoint.model.registry import create_model
    from zippypoint.runtime.model_cache import packaged_model_path

    path = packaged_model_path(preset, "openvino")
    if path is None:
        pytest.skip(f"no packaged 1-bit OpenVINO IR of {preset}")
    net = create_model(preset)
    binary = sum(isinstance(m, BinaryConv2d) and m.binary for m in net.modules())
    compiled = OpenVinoExtractor(path).compiled((1, net.config.in_channels, 240, 320))
    counts = _runtime_layers(compiled)
    assert binary > 0 and counts[("BinaryConvolution", "u1")] == binary
    assert not any(p == "bf16" for _, p in counts)
    assert _binary_conv_inputs(compiled) == [("FakeQuantize", "u1")] * binary  # no f32 -> u1 reorder


@pytest.mark.parametrize("preset", ["zippypoint-lean", "zippypoint", "zippypoint-slim", DEFAULT_PRESET])
def test_the_descriptor_map_comes_out_as_u8_codes_channels_last_without_a_reorder(preset):
    """The int8 export ends the descriptor output in a dequantisation of u8 codes; the extractor asks the plugin
    for the codes, channels last: the compiled graph then has no reorder and no dequantising pass for the map,
    ``infer`` still returns the contract's float map (dequantised, (B, D, h, w) over channels-last memory)."""
    from zippypoint.runtime.model_cache import packaged_model_path

    path = packaged_model_path(preset, "openvino-int8")
    if path is None:
        pytest.skip(f"no packaged OpenVINO IR of {preset}")
    import openvino as ov

    ex = OpenVinoExtractor(path).load()
    c = ex.in_channels
    model, channels_last, codes = ex.prepared_model((1, c, 48, 64))
    assert channels_last and codes is not None
    zero_point, scale = codes
    assert scale > 0 and 0 <= zero_point <= 255
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True})
    out = compiled.output("descriptors")
    stride = 4 if preset == "zippypoint" else 8
    assert out.get_element_type().get_type_name() == "u8"
    assert list(out.get_shape()) == [1, 48 // stride, 64 // stride, 256]
    request = compiled.create_infer_request()
    request.infer({0: np.zeros((1, c, 48, 64), np.float32)})
    # the node writing the output: the conv itself, or a reorder the plugin does not run (a relabelled layout)
    result = next(r for r in compiled.get_runtime_model().get_results()
                  if "descriptors" in r.input_value(0).get_names() or "descriptors" in r.get_friendly_name())
    writer = result.input_value(0).get_node()
    status = {p.node_name: p.status.name for p in request.profiling_info}
    if writer.get_rt_info()["layerType"].astype(str) != "Convolution":
        assert status[writer.get_friendly_name()] == "NOT_RUN"
        assert writer.input_value(0).get_node().get_rt_info()["layerType"].astype(str) == "Convolution"
    dense = ex.infer(np.random.default_rng(0).random((1, c, 48, 64), dtype=np.float32))
    d = dense["descriptors"]
    assert d.dtype == np.float32 and d.shape == (1, 256, 48 // stride, 64 // stride) and d.strides[1] == d.itemsize
    levels = d / np.float32(scale) + np.float32(zero_point)
    np.testing.assert_allclose(levels, np.rint(levels), atol=1e-3)  # on the u8 grid
    feats = ex.extract(np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    assert feats["descriptors"].dtype == np.uint8 and feats["descriptors"].shape[1] == 32
    assert np.all(np.unpackbits(feats["descriptors"], axis=1).sum(1) == 64)


def test_infer_returns_maps_that_the_next_run_does_not_overwrite_and_extract_agrees_with_it():
    """``extract`` reads the maps in the request's own buffers (no copy); ``infer`` must still hand out arrays
    that stay valid, and both paths give the same features."""
    from zippypoint.runtime.model_cache import packaged_model_path

    path = packaged_model_path("zippypoint-lean", "openvino-int8")
    if path is None:
        pytest.skip("no packaged OpenVINO IR of zippypoint-lean")
    ex = OpenVinoExtractor(path)
    rng = np.random.default_rng(0)
    first, second = (rng.integers(0, 256, (64, 96), dtype=np.uint8) for _ in range(2))
    batch, info = ex.prepare(first)
    dense = ex.infer(batch)
    kept = {k: v.copy() for k, v in dense.items()}
    ex.extract(second)
    ex.infer(ex.prepare(second)[0])
    for key, value in kept.items():
        np.testing.assert_array_equal(dense[key], value)
    via_infer, via_extract = ex.postprocess(dense, info), ex.extract(first)
    for key in ("keypoints", "scores", "descriptors"):
        np.testing.assert_array_equal(via_infer[key], via_extract[key])


def test_the_staged_network_path_is_the_one_extract_runs():
    """The benchmark times ``prepare`` / ``network`` / ``postprocess``: those stages must give what ``extract``
    gives (u8 codes and shared buffers included), and ``network`` must differ from ``infer`` only in form."""
    from zippypoint.runtime.model_cache import packaged_model_path

    path = packaged_model_path(DEFAULT_PRESET, "openvino")
    if path is None:
        pytest.skip(f"no packaged OpenVINO IR of {DEFAULT_PRESET}")
    ex = OpenVinoExtractor(path, max_keypoints=150)
    image = np.random.default_rng(3).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    batch, info = ex.prepare(image)
    staged = ex.postprocess(ex.network(batch), info)
    assert ex.network(batch)["descriptors"].dtype == np.uint8  # the codes, not the dequantised map
    via_infer = ex.postprocess(ex.infer(batch), info)
    whole = ex.extract(image)
    assert 0 < len(whole["scores"]) <= 150
    for key in ("keypoints", "scores", "descriptors"):
        np.testing.assert_array_equal(staged[key], whole[key])
        np.testing.assert_array_equal(via_infer[key], whole[key])
