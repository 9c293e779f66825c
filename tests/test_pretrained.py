"""Behaviour of the shipped weights: golden regression, geometry checks, the demo end to end."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import load_script, requires_weights

GOLDEN = Path(__file__).with_name("golden") / "zippypoint.npz"
pytestmark = requires_weights


def _load_golden_module():
    return load_script("make_golden")


@pytest.fixture(scope="module")
def extractor():
    from zippypoint.extractor import Extractor, ExtractorConfig

    return Extractor("zippypoint", config=ExtractorConfig(max_keypoints=500))


def test_golden_regression_on_two_fixed_images():
    if not GOLDEN.exists():
        pytest.skip("no golden file; run scripts/make_golden.py after shipping weights")
    golden = np.load(GOLDEN)
    current = _load_golden_module().golden_features("zippypoint")
    from zippypoint.binary_desc.packing import unpack_bits

    for name in ("coffee", "astronaut"):
        g_kp, c_kp = golden[f"{name}_keypoints"], current[f"{name}_keypoints"]
        assert abs(len(g_kp) - len(c_kp)) <= 0.02 * len(g_kp) + 1
        # each golden keypoint has a current keypoint within 0.5 px (most of them)
        d = np.linalg.norm(g_kp[:, None] - c_kp[None], axis=-1)
        nearest = d.argmin(axis=1)
        close = d[np.arange(len(g_kp)), nearest] <= 0.5
        assert close.mean() >= 0.98
        bits_g = unpack_bits(golden[f"{name}_descriptors"][close])
        bits_c = unpack_bits(current[f"{name}_descriptors"][nearest[close]])
        assert (bits_g == bits_c).mean() >= 0.99


def test_constant_image_gives_no_keypoints_above_threshold(extractor):
    from zippypoint.extractor import Extractor, ExtractorConfig

    strict = Extractor(extractor.model, config=ExtractorConfig(score_threshold=0.5))
    for value in (0, 128, 255):
        feats = strict.extract(np.full((240, 320), value, np.uint8))
        assert feats["keypoints"].shape == (0, 2) and feats["descriptors"].shape == (0, 32)


def test_blob_at_a_known_place_is_detected_within_1px(extractor):
    img = np.full((240, 320), 200, np.float32)
    yy, xx = np.mgrid[0:240, 0:320]
    cx, cy = 161.0, 117.0
    img -= 150 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 3.0**2))
    feats = extractor.extract(np.clip(img, 0, 255).astype(np.uint8))
    assert len(feats["keypoints"]) >= 1
    d = np.linalg.norm(feats["keypoints"] - [cx, cy], axis=1)
    assert d.min() <= 1.0
    assert d.argmin() < 3  # among the strongest responses


def test_horizontal_flip_maps_keypoints(extractor, photo_bgr):
    img = cv2.resize(photo_bgr, (320, 240), interpolation=cv2.INTER_AREA)
    a = extractor.extract(img)["keypoints"]
    b = extractor.extract(img[:, ::-1].copy())["keypoints"]
    mirrored = a.copy()
    mirrored[:, 0] = 319 - mirrored[:, 0]  # documented convention: x -> W - 1 - x
    dist = np.linalg.norm(mirrored[:100, None] - b[None], axis=-1)
    nearest = dist.argmin(axis=1)
    close = dist[np.arange(len(nearest)), nearest] <= 3.0
    assert close.mean() >= 0.8  # the strongest keypoints come back under the flip
    # the convention is right when the flip leaves no systematic horizontal offset (x -> W - x would give 1 px)
    dx = b[nearest[close], 0] - mirrored[:100][close, 0]
    assert abs(float(np.mean(dx))) <= 0.25


def test_demo_runs_end_to_end(tmp_path, capsys):
    from zippypoint.cli import main

    out = tmp_path / "demo.png"
    assert main(["demo", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "homography corner error" in text
    err = float(text.split("homography corner error vs ground truth:")[1].split("px")[0])
    assert err < 5.0
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[1] == 1024  # two 512-px images side by side


@pytest.mark.parametrize(("gray", "rgb", "exact"), [("zippypoint-fp-gray", "zippypoint-fp", True),
                                                    ("zippypoint-gray", "zippypoint", False)])
def test_gray_presets_compute_what_the_rgb_network_computes_on_a_gray_image(gray, rgb, exact):
    """Their weights are the RGB ones with the input kernel summed over its channels (scripts/derive_gray_weights.py):
    exact in full precision; with int8 fake quantisation of that kernel most keypoints stay put."""
    import torch

    from zippypoint.demo import sample_photo
    from zippypoint.io import prepare_image
    from zippypoint.model.registry import create_model
    from zippypoint.postprocess import PostprocessConfig, dense_to_features

    one = torch.from_numpy(prepare_image(cv2.cvtColor(sample_photo("coffee"), cv2.COLOR_BGR2GRAY), 1, (320, 240))[0])
    with torch.no_grad():
        a = create_model(gray, pretrained=True).eval()(one)
        b = create_model(rgb, pretrained=True).eval()(one.expand(-1, 3, -1, -1).contiguous())
    if exact:
        for key in ("scores", "keypoints", "descriptors"):
            torch.testing.assert_close(a[key], b[key], atol=1e-4, rtol=1e-4)
        return
    feats = [dense_to_features(m["scores"][0].numpy(), m["keypoints"][0].numpy(), m["descriptors"][0].numpy(),
                               image_size=(320, 240), config=PostprocessConfig(max_keypoints=300)) for m in (a, b)]
    d = np.linalg.norm(feats[0]["keypoints"][:, None] - feats[1]["keypoints"][None], axis=2).min(axis=1)
    print(f"{gray}: {np.mean(d <= 1.0):.3f} of the top-300 keypoints within 1 px")
    assert np.mean(d <= 1.0) >= 0.8, np.mean(d <= 1.0)
