"""The network: shapes, binary conv exactness, quantisers, determinism, shared keys across presets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zippypoint.model.registry import create_model, get_preset, list_models
from zippypoint.quant.layers import BinaryConv2d, clip_latent_weights
from zippypoint.quant.quantizers import ActivationQuantizer, WeightQuantizer, sign_ste


@pytest.mark.parametrize("name", list_models())
def test_dense_output_shapes(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    c = get_preset(name).config.in_channels
    out = model(torch.rand(2, c, 64, 96))
    assert out["scores"].shape == (2, 1, 8, 12)
    assert out["keypoints"].shape == (2, 2, 8, 12)
    stride = get_preset(name).config.descriptor_stride  # 4, or 8 for the lean presets
    assert out["descriptors"].shape == (2, 256, 64 // stride, 96 // stride)
    s = out["scores"]
    assert s.min() >= 0 and s.max() <= 1
    # outermost ring of cells is zero
    assert s[..., 0, :].abs().max() == 0 and s[..., -1, :].abs().max() == 0
    assert s[..., :, 0].abs().max() == 0 and s[..., :, -1].abs().max() == 0
    kp = out["keypoints"]
    assert kp[:, 0].min() >= 0 and kp[:, 0].max() <= 95 and kp[:, 1].min() >= 0 and kp[:, 1].max() <= 63


def test_keypoints_stay_near_their_cell():
    model = create_model("zippypoint").eval()
    kp = model(torch.rand(1, 3, 64, 64))["keypoints"][0]
    cx = torch.arange(8) * 8 + 3.5
    assert (kp[0] - cx.view(1, 8)).abs().max() <= 7.0 + 1e-5
    assert (kp[1] - cx.view(8, 1)).abs().max() <= 7.0 + 1e-5


@pytest.mark.parametrize("bad", [torch.rand(3, 64, 64), torch.rand(1, 2, 64, 64), torch.rand(1, 3, 60, 64),
                                 torch.rand(1, 3, 16, 16), torch.zeros(1, 3, 64, 64, dtype=torch.uint8)])
def test_forward_rejects_bad_input(bad):
    model = create_model("zippypoint")
    with pytest.raises((ValueError, TypeError)):
        model(bad)


def test_fp_and_mixed_presets_share_state_dict_keys():
    a = create_model("zippypoint").state_dict()
    b = create_model("zippypoint-fp").state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)


def test_two_cpu_runs_are_bit_identical():
    torch.manual_seed(3)
    model = create_model("zippypoint").eval()
    x = torch.rand(1, 3, 64, 80)
    o1, o2 = model(x), model(x)
    for k in o1:
        assert torch.equal(o1[k], o2[k])


def test_sign_ste_forward_and_gradient():
    x = torch.tensor([-2.0, -1.0, -0.3, 0.0, 0.4, 1.0, 1.5], requires_grad=True)
    y = sign_ste(x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]  # sign(0) = +1
    y.sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 1, 1, 0]  # clipped STE 1[|x| <= 1]


def test_binary_conv_is_exact_xnor_popcount_with_plus_one_padding():
    torch.manual_seed(0)
    conv = BinaryConv2d(4, 5, 3).eval()
    x = torch.randn(1, 4, 6, 7)
    y = conv(x)
    xb = torch.where(x >= 0, 1.0, -1.0)
    wb = torch.where(conv.weight >= 0, 1.0, -1.0)
    ref = F.conv2d(F.pad(xb, (1, 1, 1, 1), value=1.0), wb)
    assert torch.equal(y, ref)
    # every output is an integer with the parity of the kernel size (sum of 36 terms of +-1)
    assert torch.equal(y, y.round()) and bool(((y.abs() % 2) == 0).all())


def test_latent_weights_are_clipped():
    conv = BinaryConv2d(2, 2, 3)
    with torch.no_grad():
        conv.weight.mul_(10)
    clip_latent_weights(conv)
    assert conv.weight.abs().max() <= 1.0


def test_activation_fake_quant_levels_and_gradient():
    q = ActivationQuantizer(qmax=1.0)
    x = torch.linspace(-1.5, 1.5, 301, requires_grad=True)
    y = q(x)
    codes = y / q.step
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    assert codes.min() >= -128 - 1e-4 and codes.max() <= 127 + 1e-4
    assert (y - x.clamp(-128 * q.step, 127 * q.step)).abs().max() <= q.step / 2 + 1e-6
    y.sum().backward()
    inside = (x >= -128 * q.step) & (x <= 127 * q.step)
    assert torch.equal(x.grad, inside.float())


def test_weight_quant_is_per_channel_int8():
    w = torch.randn(4, 3, 3, 3) * torch.tensor([0.01, 0.1, 1.0, 10.0]).view(4, 1, 1, 1)
    q = WeightQuantizer()
    wq = q(w)
    scale = q.scale(w)
    codes = wq / scale
    assert torch.allclose(codes, codes.round(), atol=1e-3)
    assert codes.abs().max() <= 127 + 1e-3
    assert ((wq - w).abs() <= scale / 2 + 1e-6).all()
