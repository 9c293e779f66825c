"""The lean topology options (stride-2 stem, shared head, descriptors at H/8, one-block stages) and the
zippypoint-lean preset:
shapes, folding, export with 1-bit layers; the existing presets are untouched by the options' defaults."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from export_helpers import assert_folded_equals_network

from zippypoint.model.complexity import count_complexity
from zippypoint.model.config import ModelConfig
from zippypoint.model.network import ZippyPointNet
from zippypoint.model.registry import create_model, get_preset

LEAN_OPTIONS = [dict(stem_stride=2), dict(shared_head=True), dict(descriptor_stride=8),
                dict(descriptor_stride=8, head_width=128), dict(stem_stride=2, descriptor_stride=8, shared_head=True),
                dict(stage_blocks=(1, 2, 1, 2)),
                dict(stem_stride=2, descriptor_stride=8, shared_head=True, head_width=128, stage_blocks=(1, 1, 1, 1)),
                dict(descriptor_kernel=1),
                dict(stem_stride=2, descriptor_stride=8, shared_head=True, head_width=64, stage_blocks=(1, 1, 1, 1),
                     widths=(32, 32, 64, 128, 128), descriptor_kernel=1),
                dict(descriptor_stride=8, shared_head=True, head_width=64, descriptor_rank=32),
                dict(descriptor_stride=8, descriptor_kernel=1, descriptor_rank=16),
                dict(stem_stride=2, descriptor_stride=8, shared_head=True, head_width=64, stage_blocks=(0, 1, 1, 1))]


def _random_bn(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
    return model.eval()


def test_paper_presets_keep_their_topology_and_cost():
    m = create_model("zippypoint")
    c = count_complexity(m, 480, 640)
    assert c["params"] == 5197539 and round(c["macs"] / 1e9, 1) == 40.7 and m.down1 is not None
    names = [n for n, _ in m.named_children()]
    assert names[:2] == ["conv_in", "down1"] and names[-4:] == ["desc_conv1", "desc_conv2", "desc_conv3", "desc_out"]


@pytest.mark.parametrize("options", LEAN_OPTIONS)
def test_options_give_the_documented_maps(options):
    torch.manual_seed(0)
    net = ZippyPointNet(ModelConfig(in_channels=1, **options)).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 1, 48, 64))
    stride = options.get("descriptor_stride", 4)
    assert out["scores"].shape == (2, 1, 6, 8) and out["keypoints"].shape == (2, 2, 6, 8)
    assert out["descriptors"].shape == (2, 256, 48 // stride, 64 // stride)
    assert all(torch.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize("options", LEAN_OPTIONS)
def test_folded_view_follows_the_options(options):
    torch.manual_seed(0)
    model = _random_bn(ZippyPointNet(ModelConfig(in_channels=1, quantized=False, **options)))
    assert_folded_equals_network(model, torch.rand(1, 1, 48, 72), sign_as_threshold=True)


def test_lean_preset_is_cheaper_and_validated():
    lean = get_preset("zippypoint-lean").config
    assert lean.in_channels == 1 and lean.quantized and lean.stem_stride == 2 and lean.descriptor_stride == 8
    c = count_complexity(create_model("zippypoint-lean"), 480, 640)
    assert c["macs"] < 0.4 * 40.7e9 and c["binary_macs"] == count_complexity(create_model("zippypoint"), 480,
                                                                               640)["binary_macs"]
    for bad in (dict(stem_stride=3), dict(descriptor_stride=2), dict(head_width=-1), dict(stage_blocks=(2, 2, 3, 2)),
                dict(stage_blocks=(1, 1, 1)), dict(descriptor_kernel=2), dict(descriptor_rank=8),
                dict(descriptor_rank=-1, descriptor_stride=8), dict(descriptor_rank=256, descriptor_stride=8),
                dict(stage_blocks=(0, 1, 1, 1)), dict(stage_blocks=(1, 0, 1, 1), stem_stride=2)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ModelConfig(**bad)


@pytest.mark.parametrize("preset, binary", [("zippypoint-lean", 8), ("zippypoint-slim", 4), ("zippypoint-tiny", 4),
                                             ("zippypoint-tiny-r64", 4)])
def test_lean_presets_extract_and_export_one_1bit_kernel_per_block(tmp_path, preset, binary):
    pytest.importorskip("openvino")
    from export_helpers import PHOTOS, require_photos

    from zippypoint.export.exporter import export_model
    from zippypoint.extractor import Extractor
    from zippypoint.runtime.openvino_extractor import OpenVinoExtractor

    require_photos()
    torch.manual_seed(0)
    net = _random_bn(create_model(preset))
    image = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    f = Extractor(net, max_keypoints=100).extract(image)
    assert 0 < len(f["scores"]) <= 100 and (np.unpackbits(f["descriptors"], axis=1).sum(1) == 64).all()
    path = export_model("openvino", tmp_path / "lean.xml", preset, net=net, calibration_dir=PHOTOS,
                        calibration_count=1, calibration_resize=(160, 120))
    ex = OpenVinoExtractor(path, max_keypoints=100)
    types = [op.get_rt_info()["layerType"].astype(str) for op in ex.compiled((1, 1, 120, 160)).get_runtime_model()
             .get_ordered_ops()]
    assert types.count("BinaryConvolution") == binary
    g = ex.extract(image)
    assert 0 < len(g["scores"]) <= 100 and g["descriptors"].shape == (len(g["scores"]), 32)


def test_one_block_stages_keep_the_second_block_and_its_order():
    from zippypoint.model.network import binary_block_inputs

    net = ZippyPointNet(ModelConfig(in_channels=1, stem_stride=2, stage_blocks=(1, 2, 1, 1)))
    assert net.block1a is None and net.block3a is None and net.block4a is None and net.block2a is not None
    order = [(name, source) for name, source in binary_block_inputs(net)]
    assert [n for n, _ in order] == ["block1b", "block2a", "block2b", "block3b", "block4b"]
    assert [s for _, s in order] == [net.conv_in, net.down2, net.block2a, net.down3, net.block3b]
    # the one block of stage 4 projects c3 -> c4 on its shortcut
    assert net.block4b.conv.weight.shape[:2] == (256, 128) and not isinstance(net.block4b.shortcut, torch.nn.Identity)
    assert {k.split(".")[0] for k in net.state_dict()}.isdisjoint({"block1a", "block3a", "block4a"})
    full = count_complexity(ZippyPointNet(ModelConfig(in_channels=1, stem_stride=2)), 480, 640)
    one = count_complexity(ZippyPointNet(ModelConfig(in_channels=1, stem_stride=2, stage_blocks=(1, 1, 1, 1))), 480, 640)
    assert 0.3 * full["binary_macs"] < one["binary_macs"] < 0.6 * full["binary_macs"]
    again = ModelConfig.from_dict(ModelConfig(stage_blocks=(1, 2, 1, 1)).to_dict())
    assert again.stage_blocks == (1, 2, 1, 1)


def test_a_stage_1_without_blocks_feeds_the_stem_to_down2():
    """stage_blocks[0] = 0: nothing binary runs at H/2; the stem's output is down2's input."""
    from zippypoint.model.network import binary_block_inputs

    net = ZippyPointNet(ModelConfig(in_channels=1, stem_stride=2, stage_blocks=(0, 1, 1, 1)))
    assert net.block1a is None and net.block1b is None
    assert [(n, s) for n, s in binary_block_inputs(net)][0] == ("block2b", net.down2)
    assert {k.split(".")[0] for k in net.state_dict()}.isdisjoint({"block1a", "block1b"})
    seen = []
    hook = net.down2.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape))
    with torch.no_grad():
        net.eval()(torch.rand(1, 1, 48, 64))
    hook.remove()
    assert seen == [(1, 32, 24, 32)]  # the stem's c1 channels at H/2
    one = count_complexity(ZippyPointNet(ModelConfig(in_channels=1, stem_stride=2, stage_blocks=(1, 1, 1, 1))), 480, 640)
    none = count_complexity(net, 480, 640)
    assert none["binary_macs"] < one["binary_macs"] and none["params"] < one["params"]


def test_slim_preset_starts_from_the_lean_first_blocks():
    from conftest import load_script

    script = load_script("init_slim_from_lean")
    slim_cfg = get_preset("zippypoint-slim").config
    assert slim_cfg.stage_blocks == (1, 1, 1, 1) and slim_cfg == ModelConfig(
        **{**get_preset("zippypoint-lean").config.to_dict(), "widths": slim_cfg.widths, "stage_blocks": (1, 1, 1, 1)})
    torch.manual_seed(0)
    lean = _random_bn(create_model("zippypoint-lean")).state_dict()
    slim = create_model("zippypoint-slim")
    slim.load_state_dict(script.slim_state_from_lean(lean, slim.state_dict().keys()), strict=True)
    got = slim.state_dict()
    for i in range(1, 5):
        for name in ("conv.weight", "bn.running_var"):
            assert torch.equal(got[f"block{i}b.{name}"], lean[f"block{i}a.{name}"])
    assert torch.equal(got["block4b.shortcut.0.weight"], lean["block4a.shortcut.0.weight"])
    assert torch.equal(got["head_conv.conv.weight"], lean["head_conv.conv.weight"])
    with pytest.raises(KeyError, match="block1a"):
        script.slim_state_from_lean({k: v for k, v in lean.items() if not k.startswith("block1a.")},
                                    slim.state_dict().keys())


def test_tiny_preset_cuts_stage_four_and_the_descriptor_conv():
    slim, tiny = create_model("zippypoint-slim-h64"), create_model("zippypoint-tiny")
    assert tiny.block4b.shortcut.__class__.__name__ == "Identity" and tiny.desc_out.kernel_size == (1, 1)
    assert tiny.head_conv.conv.in_channels == 128 and tiny.desc_out.in_channels == 64
    a, b = count_complexity(slim, 480, 640), count_complexity(tiny, 480, 640)
    assert b["macs"] < 0.75 * a["macs"] and b["binary_macs"] < a["binary_macs"]
    out = tiny.eval()(torch.rand(1, 1, 48, 64))
    assert out["descriptors"].shape == (1, 256, 6, 8) and out["scores"].shape == (1, 1, 6, 8)


def test_low_rank_descriptor_head_is_two_convs_at_a_fraction_of_the_cost():
    tiny, r64 = create_model("zippypoint-tiny"), create_model("zippypoint-tiny-r64")
    assert r64.desc_conv2.conv.weight.shape == (64, 64, 3, 3) and r64.desc_out.weight.shape == (256, 64, 1, 1)
    assert not hasattr(tiny, "desc_conv2")
    # a 3x3 64 -> 256 conv costs 147 k MACs per cell; the rank-64 pair 37 k + 16 k, the tiny 1x1 16 k
    cells = 60 * 80
    assert count_complexity(r64, 480, 640)["macs"] - count_complexity(tiny, 480, 640)["macs"] == cells * 64 * 64 * 9
    out = r64.eval()(torch.rand(1, 1, 48, 64))
    assert out["descriptors"].shape == (1, 256, 6, 8)
