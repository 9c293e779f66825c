"""The folded deployment view computes the network: BN folding, strided space-to-depth, binary-branch rewrite."""

import numpy as np
import pytest
import torch
from export_helpers import assert_folded_equals_network
from hypothesis import given, settings
from hypothesis import strategies as st

from zippypoint.export.folded import FoldedZippyPoint, offsets_to_pixels, zero_border
from zippypoint.model.network import cell_offsets_to_pixels, zero_border_cells
from zippypoint.model.registry import create_model


def _random_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) * 3 - 1.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()


@pytest.mark.parametrize("sign_as_threshold", [False, True])
def test_folded_full_precision_equals_network(sign_as_threshold):
    torch.manual_seed(0)
    model = _random_bn(create_model("zippypoint-fp"))
    assert_folded_equals_network(model, torch.rand(2, 3, 48, 72), sign_as_threshold=sign_as_threshold)


LAYERS = ("conv_in", "down1", "block1a", "block1b", "down2", "block2a", "block2b", "down3", "block3a", "block3b",
          "block4a", "block4b", "score_conv", "loc_conv", "desc_conv1", "desc_conv2", "desc_conv3", "desc_out")


@pytest.mark.parametrize("sign_as_threshold", [False, True])
def test_folded_mixed_precision_layers_match_fake_quant(sign_as_threshold):
    """Each folded layer, fed the network's own input to that layer, reproduces its output: exactly, except
    for values on a rounding boundary that float summation order moves by one level. (Whole-network outputs
    are compared elsewhere: with random weights one flipped level spreads, which says nothing about folding.)"""
    torch.manual_seed(0)
    model = _random_bn(create_model("zippypoint"))
    folded = FoldedZippyPoint(model, rounding=True, sign_as_threshold=sign_as_threshold)
    inputs, outputs = {}, {}

    def record(name):
        def hook(module, args, output):
            inputs[name], outputs[name] = args[0], output
        return hook

    hooks = [getattr(model, name).register_forward_hook(record(name)) for name in LAYERS]
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(1)))
        for h in hooks:
            h.remove()
        for name in LAYERS:
            ref, out = outputs[name], getattr(folded, name)(inputs[name])
            diff = (ref - out).abs()
            assert (diff <= 1e-4).float().mean() >= 0.999, name
            assert diff.max() <= 12 / 255 + 1e-4 or name == "desc_out", name  # at most one level of ±6


def test_folded_requires_eval_mode():
    with pytest.raises(ValueError, match="eval"):
        FoldedZippyPoint(create_model("zippypoint-fp").train())


@settings(max_examples=20, deadline=None)
@given(h=st.integers(3, 12), w=st.integers(3, 12), seed=st.integers(0, 2**16))
def test_trace_friendly_geometry_equals_network(h, w, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(2, 1, h, w, generator=g)
    offsets = torch.rand(2, 2, h, w, generator=g) * 2 - 1
    assert torch.equal(zero_border(scores), zero_border_cells(scores))
    torch.testing.assert_close(offsets_to_pixels(offsets), cell_offsets_to_pixels(offsets, 8 * h, 8 * w))


def test_threshold_sign_is_exact_on_the_grid():
    """n = clip(-4/step * x - 2, 0, 1) equals [x < 0] for every level k*step of an 8-bit quantiser."""
    torch.manual_seed(0)
    model = create_model("zippypoint").eval()
    folded = FoldedZippyPoint(model, sign_as_threshold=True)
    for block, quant in ((folded.block1a, model.down1.proj.out_quant), (folded.block2a, model.down2.proj.out_quant)):
        step = quant.step
        levels = torch.arange(-128, 128, dtype=torch.float32) * step
        x = levels.view(1, 1, -1, 1).expand(1, block.branch.threshold.in_channels, -1, 1).contiguous()
        with torch.no_grad():
            n = torch.clamp(block.branch.threshold(x), 0, 1)
        assert torch.equal(n, (x < 0).float())
        assert np.isclose(step, 2 * quant.qmax / 255)
