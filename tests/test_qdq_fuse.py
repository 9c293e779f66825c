"""The sibling-conv fusion of the int8 export: exact, and only where the convs share input and attributes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from zippypoint.export.qdq_rewrites import fuse_sibling_convs


def _model(same_input: bool = True):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in
             (("w1", (1, 8, 3, 3)), ("b1", (1,)), ("w2", (2, 8, 3, 3)), ("b2", (2,)))]
    nodes = [helper.make_node("Relu", ["x"], ["x2"]),
             helper.make_node("Conv", ["x", "w1", "b1"], ["score"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x" if same_input else "x2", "w2", "b2"], ["loc"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 6, 7])],
                              [helper.make_tensor_value_info("score", TensorProto.FLOAT, [1, 1, 6, 7]),
                               helper.make_tensor_value_info("loc", TensorProto.FLOAT, [1, 2, 6, 7])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model, x):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(["score", "loc"], {"x": x})


def test_two_convs_on_one_tensor_become_one_conv_and_a_split_with_the_same_outputs():
    x = np.random.default_rng(1).standard_normal((1, 8, 6, 7)).astype(np.float32)
    model = _model()
    before = _run(model, x)
    assert fuse_sibling_convs(model) == 1
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node].count("Conv") == 1 and any(n.op_type == "Split" for n in model.graph.node)
    for a, b in zip(before, _run(model, x), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_convs_on_different_tensors_stay_apart():
    model = _model(same_input=False)
    assert fuse_sibling_convs(model) == 0
    assert [n.op_type for n in model.graph.node].count("Conv") == 2
