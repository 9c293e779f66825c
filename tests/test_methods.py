"""The method registry: the output contract, matching, skipping with reasons, and real peer weights when present."""

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from zippypoint.eval.hpatches import scale_homography
from zippypoint.eval.protocol import evaluate_pair
from zippypoint.methods.base import MethodUnavailable, check_features
from zippypoint.methods.ours import OurMethod
from zippypoint.methods.peer_weights import weights_path
from zippypoint.methods.registry import candidate_budget, create_method

SIZE = (320, 240)


@pytest.fixture(scope="module")
def photo():
    return cv2.resize(cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR), SIZE)


def warped_pair(photo):
    """The photo and a rotated, scaled copy, with the homography between them."""
    h = np.vstack([cv2.getRotationMatrix2D((160, 120), 12, 0.9), [0, 0, 1]])
    return photo, cv2.warpPerspective(photo, h, SIZE, borderMode=cv2.BORDER_REFLECT_101), h


def assert_contract(features, method, limit=None):
    checked = check_features(features, method)
    kp, scores, desc = checked["keypoints"], checked["scores"], checked["descriptors"]
    assert kp.dtype == np.float32 and scores.dtype == np.float32
    assert np.all(np.diff(scores) <= 0), "scores sorted descending"
    assert np.all((kp >= -0.5) & (kp <= np.array(SIZE) - 0.5)), "keypoints inside the image"
    if method.descriptor_kind == "binary":
        assert desc.dtype == np.uint8
    if limit is not None:
        assert len(scores) <= limit


@pytest.mark.parametrize("name, width", [("orb", 32), ("sift", 128)])
def test_opencv_methods_follow_the_contract(photo, name, width):
    method = create_method(name, 100)
    method.load()
    features = method(photo)
    assert_contract(features, method, limit=100)
    assert features["descriptors"].shape[1] == width and len(features["scores"]) > 50


def test_opencv_methods_on_a_blank_image_return_typed_empty_arrays():
    for name, dtype in (("orb", np.uint8), ("sift", np.float32)):
        method = create_method(name, 100)
        method.load()
        features = method(np.full((240, 320, 3), 128, np.uint8))
        assert features["keypoints"].shape == (0, 2) and features["descriptors"].dtype == dtype


def test_unknown_methods_and_missing_opencv_modules():
    with pytest.raises(ValueError, match="unknown method 'superpoint'"):
        create_method("superpoint", 300)
    for name in ("akaze", "brisk"):
        method = create_method(name, 300)
        if not hasattr(cv2, f"{name.upper()}_create"):
            with pytest.raises(MethodUnavailable, match="has no"):
                method.load()


@pytest.mark.slow
def test_zippypoint_adapter_runs_the_extractor(photo):
    pytest.importorskip("zippypoint.extractor")
    method = create_method("zippypoint", 200, random_weights=True)
    method.load()
    assert method.settings["weights_sha256"] == "random"
    image1, image2, _ = warped_pair(photo)
    f1, f2 = method(image1), method(image2)
    assert_contract(f1, method, limit=200)
    pairs = method.match(f1, f2)
    assert pairs.dtype == np.int64 and pairs.shape[1] == 2 and np.all(np.diff(pairs[:, 0]) > 0)
    with pytest.raises(MethodUnavailable, match="no-such-preset"):
        OurMethod("no-such-preset").load()


@pytest.mark.parametrize("name", ["aliked-n16", "aliked-t16", "disk", "xfeat"])
def test_peers_without_weights_are_skipped_with_the_command(tmp_path, monkeypatch, name):
    monkeypatch.setenv("ZIPPYPOINT_CACHE", str(tmp_path))
    with pytest.raises(MethodUnavailable, match="python -m zippypoint.methods.peer_weights"):
        create_method(name, 300).load()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["aliked-n16", "aliked-t16", "disk", "xfeat"])
def test_peer_weights_are_real(photo, name):
    if not weights_path(name).exists():
        pytest.skip(f"{name} weights not in the cache (python -m zippypoint.methods.peer_weights)")
    method = create_method(name, 300)
    method.load()
    image1, image2, h = warped_pair(photo)
    f1, f2 = method(image1), method(image2)
    assert_contract(f1, method, limit=1200)
    result = evaluate_pair(f1, f2, scale_homography(h, SIZE, SIZE, SIZE), SIZE, 300, method.descriptor_kind)
    # Random weights give repeatability near chance and almost no correct matches.
    assert result["repeatability"] > 0.3
    assert result["mma"][2] > 0.5
    assert result["correctness_5"] == 1.0


def test_onnx_method_names_choose_the_format():
    fp32 = create_method("onnx:zippypoint", 300)
    int8 = create_method("onnx-int8:zippypoint", candidate_budget("onnx-int8:zippypoint", 300))
    assert isinstance(fp32, OurMethod) and fp32.runtime == "onnx" and fp32.name == "onnx:zippypoint"
    assert isinstance(int8, OurMethod) and int8.runtime == "onnx-int8" and int8.settings["max_keypoints"] == 1200


def test_candidate_budget_is_decided_in_one_place():
    assert candidate_budget("orb", 300) == candidate_budget("sift", 300) == 300  # the reference protocol
    assert candidate_budget("akaze", 300) is None  # no count setting: all it detects
    for name in ("zippypoint", "onnx-int8:zippypoint", "xfeat", "disk", "aliked-n16"):
        assert candidate_budget(name, 300) == 1200
    assert create_method("akaze", None).settings == {}
    assert create_method("brisk", 50).settings == {"max_keypoints": 50}
    with pytest.raises(ValueError, match="needs a number"):
        create_method("xfeat", None)
    with pytest.raises(ValueError, match="top_k"):
        candidate_budget("orb", 0)


@pytest.mark.parametrize("name", ["orb", "sift"])
def test_methods_match_by_mutual_nearest_neighbours(photo, name):
    method = create_method(name, 200)
    method.load()
    image1, image2, _ = warped_pair(photo)
    f1, f2 = method(image1), method(image2)
    pairs = method.match(f1, f2)
    assert pairs.dtype == np.int64 and pairs.shape[1] == 2 and len(pairs) > 20
    assert len(np.unique(pairs[:, 0])) == len(pairs) == len(np.unique(pairs[:, 1]))  # one-to-one
    empty = {k: v[:0] for k, v in f1.items()}
    assert method.match(empty, f2).shape == (0, 2)
