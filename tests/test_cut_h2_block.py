"""scripts/cut_h2_block.py: the cut network drops only the H/2 binary block, keeps every other weight, refits down2 by
least squares, and refuses presets whose stage 1 is not one block."""

from __future__ import annotations

import pytest
import torch
from conftest import load_script

from zippypoint.model.config import without_h2_block
from zippypoint.model.registry import create_model


def test_cut_keeps_every_other_weight_and_refits_down2():
    script = load_script("cut_h2_block")
    torch.manual_seed(0)
    full = create_model("zippypoint-tiny-r64").eval()
    images = torch.rand(3, 1, 64, 96)
    net, error = script.cut(full, images)
    assert net.config.stage_blocks == (0, 1, 1, 1) and net.block1b is None
    assert 0.0 <= error < 1.0  # a least-squares fit with an intercept beats predicting the mean
    before, after = full.state_dict(), net.state_dict()
    assert set(after) == {k for k in before if not k.startswith("block1b.")}
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"down2.proj.conv.weight", "down2.proj.bn.running_mean"}
    with torch.no_grad():
        out = net(images)
    assert out["descriptors"].shape == (3, 256, 8, 12) and torch.isfinite(out["scores"]).all()


def test_the_cuts_of_tiny_r64_and_slim_h64_are_the_registered_noh2_presets():
    from zippypoint.model.registry import get_preset

    assert without_h2_block(get_preset("zippypoint-tiny-r64").config) == get_preset("zippypoint-tiny-r64-noh2").config
    assert get_preset("zippypoint-tiny-r64-noh2").weights == "zippypoint-tiny-r64-noh2.safetensors"
    assert without_h2_block(get_preset("zippypoint-slim-h64").config) == get_preset("zippypoint-slim-h64-noh2").config
    assert get_preset("zippypoint-slim-h64-noh2").weights == "zippypoint-slim-h64-noh2.safetensors"


def test_cut_refuses_a_two_block_stage_1():
    script = load_script("cut_h2_block")
    with pytest.raises(ValueError, match="one-block stage 1"):
        without_h2_block(create_model("zippypoint-lean").config)
    with pytest.raises(SystemExit):
        script.main(["--preset", "zippypoint-lean", "--photos", ".", "--out", "x.safetensors"])
