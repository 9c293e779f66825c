"""Per-layer ONNX Runtime profile: layer attribution and trace aggregation, and a real profile of a small
ONNX model."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from zippypoint.bench.profile import node_layers, profile_markdown, profile_onnx, summarize_trace


def tiny_model() -> onnx.ModelProto:
    """image -> conv (net.conv_in) -> relu -> conv (net.block1a.branch.conv) -> add -> output."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "net.conv_in.conv.weight")
    w2 = numpy_helper.from_array(rng.standard_normal((8, 8, 3, 3)).astype(np.float32),
                                 "net.block1a.branch.conv.weight")
    nodes = [
        helper.make_node("Conv", ["image", w1.name], ["c1"], name="node_Conv_1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="node_relu"),
        helper.make_node("Conv", ["r1", w2.name], ["c2"], name="node_conv2d_2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["out"], name="node_add"),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8, "h", "w"])], [w1, w2])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_node_layers_follow_weights_then_producers():
    layers = node_layers(tiny_model())
    assert layers == {"node_Conv_1": "conv_in", "node_relu": "conv_in", "node_conv2d_2": "block1a",
                      "node_add": "block1a"}


def _event(name, ts, dur, op, cat="Node"):
    return {"cat": cat, "name": name, "ts": ts, "dur": dur, "args": {"op_name": op}}


def test_trace_summary_drops_warmup_and_attributes_unnamed_nodes():
    trace = []
    for run, start in enumerate((0, 1000, 2000)):  # run 0 is warm-up and ten times slower
        scale = 10 if run == 0 else 1
        trace += [
            {"cat": "Session", "name": "model_run", "ts": start, "dur": 900},
            _event("node_Conv_1_token_3_kernel_time", start + 10, 100 * scale, "QLinearConv"),
            _event("HardSigmoid_7_kernel_time", start + 200, 50 * scale, "HardSigmoid"),  # not in the saved graph
            _event("node_conv2d_2_kernel_time", start + 300, 300 * scale, "Conv"),
        ]
    layers = {"node_Conv_1": "conv_in", "node_conv2d_2": "block1a"}
    s = summarize_trace(trace, layers, warmup=1, runs=2)
    assert s["total_ms"] == pytest.approx(0.45)
    assert [r["op"] for r in s["by_op"]] == ["Conv", "QLinearConv", "HardSigmoid"]
    assert {r["layer"]: r["ms"] for r in s["by_layer"]} == pytest.approx({"block1a": 0.3, "conv_in": 0.15})
    assert s["by_node"][0] == {"node": "node_conv2d_2", "op": "Conv", "layer": "block1a", "ms": pytest.approx(0.3),
                               "share": pytest.approx(0.3 / 0.45)}
    assert sum(r["share"] for r in s["by_op"]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="runs"):
        summarize_trace(trace, layers, warmup=2, runs=2)


def test_profile_of_a_real_model(tmp_path):
    path = tmp_path / "tiny.onnx"
    onnx.save_model(tiny_model(), str(path))
    prof = profile_onnx(path, (64, 48), runs=3, warmup=1, threads=1)
    assert prof["size"] == "64x48" and prof["runs"] == 3 and prof["wall_ms"] > 0
    assert {r["op"] for r in prof["by_op"]} >= {"Conv"}
    layers = {r["layer"] for r in prof["by_layer"]}
    assert {"conv_in", "block1a"} <= layers <= {"conv_in", "block1a", "input"}
    assert sum(r["ms"] for r in prof["by_node"]) == pytest.approx(prof["total_ms"])
    text = profile_markdown(prof, "tiny")
    assert "## By op type" in text and "## By layer" in text and "| Conv |" in text


def test_openvino_profile_of_the_packaged_default_ir():
    """The CPU plugin's per-node counters of the packaged 1-bit IR, by compiled op (with its kernel) and by layer:
    the four binary blocks' 1-bit kernels are attributed to their blocks, and the parts add up."""
    pytest.importorskip("openvino")
    from zippypoint.bench.profile import profile_openvino
    from zippypoint.resolve import model_file

    prof = profile_openvino(model_file("zippypoint-slim-h64", "openvino", None), (64, 48), runs=3, warmup=1, threads=1)
    assert prof["runtime"] == "OpenVINO" and prof["size"] == "64x48" and prof["runs"] == 3 and prof["wall_ms"] > 0
    binary = [r for r in prof["by_node"] if r["op"].startswith("BinaryConvolution [")]
    assert len(binary) == 4 and all(r["op"].endswith("u1]") for r in binary), binary
    assert sorted(r["layer"] for r in binary) == ["block1b", "block2b", "block3b", "block4b"]
    layers = {r["layer"] for r in prof["by_layer"]}
    assert {"conv_in", "down2", "head_conv", "desc_out"} <= layers, layers
    assert sum(r["ms"] for r in prof["by_node"]) == pytest.approx(prof["total_ms"])
    assert sum(r["ms"] for r in prof["by_layer"]) == pytest.approx(prof["total_ms"])
    text = profile_markdown(prof, "zippypoint-slim-h64:openvino")
    assert text.startswith("# OpenVINO profile:") and "BinaryConvolution [" in text
