"""The least-squares conv refit behind the presets cut from wider ones, and the tiny preset's cut."""

from __future__ import annotations

import pytest
import torch

from zippypoint.train.refit import relative_error, ridge_conv_fit


@pytest.mark.parametrize("kernel", [1, 3])
def test_ridge_fit_recovers_a_known_convolution(kernel):
    g = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(6, 4, kernel, padding=kernel // 2)
    feat = torch.randn(5, 6, 12, 14, generator=g)
    with torch.no_grad():
        target = conv(feat)
    weight, bias = ridge_conv_fit(feat, target, kernel, ridge=1e-9)
    assert weight.shape == (4, 6, kernel, kernel) and bias.shape == (4,)
    torch.testing.assert_close(weight, conv.weight.detach(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(bias, conv.bias.detach(), atol=1e-4, rtol=1e-4)
    fitted = torch.nn.functional.conv2d(feat, weight, bias, padding=kernel // 2)
    assert float(relative_error(fitted, target).max()) < 1e-8


def test_ridge_fit_rejects_mismatched_shapes_and_even_kernels():
    with pytest.raises(ValueError, match="share N, h, w"):
        ridge_conv_fit(torch.zeros(2, 3, 4, 4), torch.zeros(2, 1, 4, 5), 3)
    with pytest.raises(ValueError, match="odd"):
        ridge_conv_fit(torch.zeros(2, 3, 4, 4), torch.zeros(2, 1, 4, 4), 2)


def _script_and_photos(name: str):
    """The module of ``scripts/<name>.py`` and 6 training photos at 160x120 (skips without the photos)."""
    import sys
    from pathlib import Path

    from export_helpers import PHOTOS, require_photos

    require_photos()
    from conftest import load_script

    scripts = Path(__file__).parents[1] / "scripts"
    module = load_script(name)
    sys.path.insert(0, str(scripts))
    from prune_head import load_photos

    return module, load_photos(Path(PHOTOS), 6, (160, 120))


def test_shrinking_slim_h64_to_tiny_starts_close_to_it():
    from zippypoint.model.registry import create_model

    module, images = _script_and_photos("shrink_stage4")
    wide = create_model("zippypoint-slim-h64", pretrained=True).eval()
    tiny = create_model("zippypoint-tiny").eval()
    fit = module.shrink(wide, tiny, images)
    # everything before stage 4 is the wide network's; the refitted signals explain most of the wide ones
    assert torch.equal(tiny.block3b.conv.weight, wide.block3b.conv.weight)
    assert fit["score"] < 0.3 and fit["head"] < 0.5 and fit["descriptor"] < 0.8


def test_low_rank_descriptor_head_reproduces_the_teacher_fit():
    from zippypoint.model.registry import create_model

    module, images = _script_and_photos("lowrank_descriptor")
    tiny = create_model("zippypoint-tiny", pretrained=True).eval()
    teacher = create_model("zippypoint-slim-h64", pretrained=True).eval()
    target = create_model("zippypoint-tiny-r64").eval()
    fit = module.lowrank_fit(tiny, teacher, target, images)
    # the backbone and the other heads are the tiny file's; the two descriptor convs are new
    assert torch.equal(target.head_conv.conv.weight, tiny.head_conv.conv.weight)
    assert torch.equal(target.score_out.weight, tiny.score_out.weight)
    # the rank-64 int8 head loses little against the full-rank fit, which explains most of the teacher's map,
    # and far more of it than the tiny file's own 1x1 head
    with torch.no_grad():
        own = tiny(images)["descriptors"]
        wanted = teacher(images)["descriptors"]
    from zippypoint.train.refit import relative_error

    assert fit["full_rank"] < 0.3 and fit["factorised"] < fit["full_rank"] + 0.05 and fit["variance_kept"] > 0.9
    assert fit["factorised"] < 0.6 * float(relative_error(own, wanted).mean())
    # the middle channels use their int8 range (±6): spread about 1.5, hardly any value clipped at its ends
    with torch.no_grad():
        middle = target.desc_conv2(module.head_features(target, images))
    assert 1.0 < float(middle.std()) < 2.0 and float((middle.abs() > 5.9).float().mean()) < 0.005
