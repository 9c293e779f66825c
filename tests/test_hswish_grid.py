"""The hard-swish input grid: the network quantises int8 conv outputs that feed hard-swish on the uint8 grid
an integer runtime uses there, and evaluates hard-swish in the form ONNX Runtime does."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zippypoint.model.config import ModelConfig
from zippypoint.model.network import ConvBNAct, GridHardswish, ZippyPointNet
from zippypoint.quant.quantizers import HardSwishInputQuantizer, hardswish_input_max


def test_grid_for_the_six_range():
    q = HardSwishInputQuantizer(6.0)
    assert q.zero_point == 85 and math.isclose(q.step, 3 / 85)
    assert math.isclose(q.qmin_int * q.step, -3.0) and math.isclose(q.qmax_int * q.step, 6.0)
    assert q.qmax_int - q.qmin_int == 255  # one uint8 code per level
    # the top level reaches the top of the following ±6 output grid through hard-swish
    assert F.hardswish(torch.tensor(q.qmax_int * q.step)) >= 127 * 12 / 255


@pytest.mark.parametrize("qmax", [1.0, 6.0])
def test_outputs_are_levels_and_gradient_passes_inside(qmax):
    q = HardSwishInputQuantizer(qmax).train()
    x = torch.linspace(-5, 8, 2001, requires_grad=True)
    y = q(x)
    codes = y.detach() / q.step
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    assert codes.min() >= q.qmin_int - 1e-4 and codes.max() <= q.qmax_int + 1e-4
    y.sum().backward()
    inside = (x.detach() >= q.qmin_int * q.step) & (x.detach() <= q.qmax_int * q.step)
    assert torch.equal(x.grad, inside.float())


def test_hardswish_input_max():
    for out_max in (1.0, 127 * 2 / 255, 6.0, 127 * 12 / 255):
        r = hardswish_input_max(out_max)
        assert float(F.hardswish(torch.tensor(r))) == pytest.approx(min(out_max, r), rel=1e-6)


def test_grid_hardswish_is_hardswish():
    x = torch.linspace(-8, 8, 100_001, dtype=torch.float64)
    assert torch.allclose(GridHardswish()(x), F.hardswish(x), atol=1e-12, rtol=0)
    x = torch.linspace(-8, 8, 1001, requires_grad=True)
    GridHardswish()(x).sum().backward()
    ref = x.detach().clone().requires_grad_(True)
    F.hardswish(ref).sum().backward()
    inner = (x.detach().abs() - 3).abs() > 1e-3  # the two sides of the kinks may differ
    assert torch.allclose(x.grad[inner], ref.grad[inner], atol=1e-6)


def test_grid_hardswish_returns_the_input_above_three():
    """On the 3/85 grid, x >= 3 with k = 2 (mod 4) is an exact tie of the 12/255 output grid; the output
    must be x itself for the rounding to be that of the integer runtime."""
    k = torch.arange(85, 171, dtype=torch.float32)
    x = k * (3 / 85)
    assert torch.equal(GridHardswish()(x), x)


def test_only_int8_hardswish_layers_get_the_grid():
    net = ZippyPointNet(ModelConfig())
    with_grid = {name for name, m in net.named_modules() if isinstance(m, ConvBNAct) and m.act_in_quant is not None}
    assert with_grid == {"down2.proj", "down3.proj", "score_conv", "loc_conv", "desc_conv1", "desc_conv3"}
    for off in (ModelConfig(quantized=False), ModelConfig(hswish_input_quant=False)):
        net = ZippyPointNet(off)
        assert all(m.act_in_quant is None for m in net.modules() if isinstance(m, ConvBNAct))
        assert not any(isinstance(m, GridHardswish) for m in net.modules())


def test_uint8_grid_of_clips():
    import onnx
    from onnx import helper, numpy_helper

    from zippypoint.export.int8 import _Graph, uint8_grid

    def clip(lo, hi):
        inits = [numpy_helper.from_array(np.array(lo, np.float32), "lo"),
                 numpy_helper.from_array(np.array(hi, np.float32), "hi")]
        g = helper.make_graph([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])], inits)
        graph = _Graph(helper.make_model(g))
        return uint8_grid(graph, graph.nodes[0])

    step, zp = clip(-3.0, 6.0)
    assert zp == 85 and math.isclose(step, 9 / 255, rel_tol=1e-6)
    step, zp = clip(-128 * 12 / 255, 127 * 12 / 255)
    assert zp == 128 and math.isclose(step, 12 / 255, rel_tol=1e-6)
    assert clip(0.0, 1.0) is None and clip(-1.0, 0.3) is None
