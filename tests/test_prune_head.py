"""scripts/prune_head.py: the narrow head's state loads strictly into the narrow network, the refit is exact
where it can be, and the kept channels are the ones carrying the outputs."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import load_script

torch = pytest.importorskip("torch")

def _module():
    return load_script("prune_head")


def _wide():
    from zippypoint.model.network import ZippyPointNet
    from zippypoint.model.registry import get_preset

    torch.manual_seed(0)
    config = dataclasses.replace(get_preset("zippypoint-slim").config, quantized=False, widths=(8, 8, 16, 32, 32),
                                 head_width=16, descriptor_dim=32, descriptor_ones=8)
    return ZippyPointNet(config).eval()


def test_refit_on_every_channel_reproduces_the_outputs():
    prune = _module()
    net = _wide()
    feat, outs = prune.head_features(net, torch.rand(2, 1, 48, 64))
    keep = torch.arange(feat.shape[1])
    weight, bias = prune.refit_outputs(feat, outs, keep, ridge=1e-9)
    approx = torch.nn.functional.conv2d(feat, weight, bias, padding=1)
    assert torch.allclose(approx, outs, atol=1e-3 * float(outs.abs().max()))


def test_pruned_state_loads_strictly_and_keeps_the_channels_that_carry_the_outputs():
    from zippypoint.model.network import ZippyPointNet

    prune = _module()
    net = _wide()
    with torch.no_grad():  # two channels that no output reads
        for conv in (net.score_out, net.loc_out, net.desc_out):
            conv.weight[:, [3, 11]] = 0.0
    feat, outs = prune.head_features(net, torch.rand(2, 1, 48, 64))
    keep = prune.choose_channels(feat, net, 14)
    assert 3 not in keep.tolist() and 11 not in keep.tolist() and keep.tolist() == sorted(keep.tolist())
    weight, bias = prune.refit_outputs(feat, outs, keep, ridge=1e-9)
    narrow = ZippyPointNet(dataclasses.replace(net.config, head_width=14)).eval()
    narrow.load_state_dict(prune.pruned_state(net, narrow, keep, weight, bias), strict=True)
    # dropping only channels no output reads loses nothing, on an image the refit never saw
    image = torch.rand(1, 1, 48, 64)
    assert torch.allclose(prune.head_features(narrow, image)[1], prune.head_features(net, image)[1], atol=1e-3)


def test_pruned_state_refuses_a_network_it_does_not_fit():
    from zippypoint.model.network import ZippyPointNet

    prune = _module()
    net = _wide()
    feat, outs = prune.head_features(net, torch.rand(1, 1, 48, 64))
    keep = torch.arange(12)
    weight, bias = prune.refit_outputs(feat, outs, keep)
    other = ZippyPointNet(dataclasses.replace(net.config, head_width=10))
    with pytest.raises(ValueError, match="does not fit"):
        prune.pruned_state(net, other, keep, weight, bias)
