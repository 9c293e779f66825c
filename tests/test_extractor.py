"""The PyTorch extractor: output contract, invariants, empty results, inputs of every accepted kind."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from zippypoint.binary_desc.packing import unpack_bits
from zippypoint.extractor import Extractor, ExtractorConfig
from zippypoint.model.registry import create_model


@pytest.fixture(scope="module")
def extractor():
    torch.manual_seed(0)
    return Extractor(create_model("zippypoint"), max_keypoints=200)


def check_contract(feats: dict, width: int, height: int, max_kp: int | None) -> None:
    kp, sc, de = feats["keypoints"], feats["scores"], feats["descriptors"]
    n = len(sc)
    assert kp.dtype == np.float32 and kp.shape == (n, 2)
    assert sc.dtype == np.float32 and sc.shape == (n,)
    assert de.dtype == np.uint8 and de.shape == (n, 32)
    if max_kp is not None:
        assert n <= max_kp
    if n:
        assert np.isfinite(sc).all() and np.all(np.diff(sc) <= 0)
        assert kp[:, 0].min() >= 0 and kp[:, 0].max() <= width - 1
        assert kp[:, 1].min() >= 0 and kp[:, 1].max() <= height - 1
        assert (unpack_bits(de).sum(axis=1) == 64).all()


def test_contract_on_a_real_photo(extractor, photo_bgr):
    feats = extractor.extract(photo_bgr)
    check_contract(feats, photo_bgr.shape[1], photo_bgr.shape[0], 200)
    assert len(feats["scores"]) == 200


def test_odd_size_and_resize_keep_keypoints_in_input_pixels(extractor, photo_bgr):
    img = photo_bgr[:197, :301]
    check_contract(extractor.extract(img), 301, 197, 200)
    small = Extractor(extractor.model, config=ExtractorConfig(max_keypoints=100, resize=(160, 120)))
    check_contract(small.extract(img), 301, 197, 100)


def test_paths_tensors_gray_uint16_and_bgra_are_accepted(extractor, photo_bgr, tmp_path):
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), photo_bgr)
    from_path = extractor.extract(path)
    from_array = extractor.extract(photo_bgr)
    assert np.array_equal(from_path["keypoints"], from_array["keypoints"])
    rgb = torch.from_numpy(photo_bgr[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255
    from_tensor = extractor.extract(rgb)
    assert np.allclose(from_tensor["keypoints"], from_array["keypoints"], atol=1e-3)
    gray = cv2.cvtColor(photo_bgr, cv2.COLOR_BGR2GRAY)
    check_contract(extractor.extract(gray), gray.shape[1], gray.shape[0], 200)
    check_contract(extractor.extract(gray.astype(np.uint16) * 257), gray.shape[1], gray.shape[0], 200)
    bgra = cv2.cvtColor(photo_bgr, cv2.COLOR_BGR2BGRA)
    assert np.array_equal(extractor.extract(bgra)["keypoints"], from_array["keypoints"])


def test_threshold_one_and_zero_budget_give_well_typed_empty_results(extractor, photo_bgr):
    for cfg in (ExtractorConfig(score_threshold=1.0), ExtractorConfig(max_keypoints=0)):
        feats = Extractor(extractor.model, config=cfg).extract(photo_bgr)
        check_contract(feats, photo_bgr.shape[1], photo_bgr.shape[0], 0)
        assert len(feats["scores"]) == 0


def test_batch_is_padded_with_a_mask(extractor, photo_bgr):
    empty = Extractor(extractor.model, config=ExtractorConfig(score_threshold=1.0))
    out = empty.extract_batch([photo_bgr, photo_bgr])
    assert out["keypoints"].shape == (2, 0, 2) and out["mask"].shape == (2, 0)
    out = extractor.extract_batch([photo_bgr, photo_bgr[:100, :120]])
    n0, n1 = out["mask"].sum(axis=1)
    assert out["keypoints"].shape[1] == max(n0, n1) == n0 and n1 < n0
    assert not out["mask"][1, n1:].any() and (out["descriptors"][1, n1:] == 0).all()


def test_two_runs_are_bit_identical(extractor, photo_bgr):
    a, b = extractor.extract(photo_bgr), extractor.extract(photo_bgr)
    for k in a:
        assert np.array_equal(a[k], b[k])


@pytest.mark.parametrize("bad", [np.zeros((24, 24, 2), np.uint8), np.zeros((10, 10), np.uint8), "not/a/file.png", 3.0])
def test_bad_inputs_raise(extractor, bad):
    with pytest.raises((ValueError, TypeError)):
        extractor.extract(bad)


def test_pixel_limit_applies_to_arrays(extractor):
    small = Extractor(extractor.model, config=ExtractorConfig(max_pixels=1000))
    with pytest.raises(ValueError, match="exceeds"):
        small.extract(np.zeros((100, 100), np.uint8))


def test_config_validation():
    with pytest.raises(ValueError):
        ExtractorConfig(max_keypoints=-1)
    with pytest.raises(ValueError):
        ExtractorConfig(score_threshold=1.5)
    with pytest.raises(ValueError):
        ExtractorConfig(resize="640")
    with pytest.raises(TypeError):
        Extractor(create_model("zippypoint"), config=ExtractorConfig(), max_keypoints=3)
