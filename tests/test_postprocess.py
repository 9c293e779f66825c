"""Post-processing shared by the PyTorch and ONNX runtimes: NMS, top-k, descriptor sampling."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from zippypoint.binary_desc.packing import unpack_bits
from zippypoint.postprocess import PostprocessConfig, cell_nms, dense_to_features, sample_descriptors


def test_nms_keeps_only_local_maxima():
    s = np.zeros((6, 6), np.float32)
    s[2, 2], s[2, 3], s[4, 4] = 0.9, 0.8, 0.5
    keep = cell_nms(s, 1)
    assert keep[2, 2] and not keep[2, 3] and keep[4, 4]
    assert cell_nms(s, 0).all()


def test_descriptor_sampling_matches_grid_sample_align_corners():
    rng = np.random.default_rng(0)
    desc = rng.standard_normal((16, 6, 8)).astype(np.float32)
    width, height = 32, 24
    kp = np.stack([rng.uniform(0, width - 1, 50), rng.uniform(0, height - 1, 50)], 1).astype(np.float32)
    ours = sample_descriptors(desc, kp, (width, height))
    grid = torch.from_numpy(np.stack([kp[:, 0] / (width - 1) * 2 - 1, kp[:, 1] / (height - 1) * 2 - 1], 1))
    ref = F.grid_sample(torch.from_numpy(desc)[None], grid.view(1, 1, -1, 2).float(), align_corners=True)
    assert np.allclose(ours, ref[0, :, 0].T.numpy(), atol=1e-5)


def test_dense_to_features_contract_topk_and_padding():
    rng = np.random.default_rng(1)
    h, w = 4, 6
    scores = rng.random((h, w)).astype(np.float32)
    ys, xs = np.mgrid[0:h, 0:w]
    kp = np.stack([xs * 8 + 3.5, ys * 8 + 3.5]).astype(np.float32)
    desc = rng.standard_normal((256, 2 * h, 2 * w)).astype(np.float32)
    out = dense_to_features(scores, kp, desc, image_size=(48, 32), valid_size=(40, 32),
                            config=PostprocessConfig(max_keypoints=10))
    assert out["keypoints"].shape == (10, 2) and out["descriptors"].shape == (10, 32)
    assert np.all(np.diff(out["scores"]) <= 0) and out["keypoints"][:, 0].max() <= 39
    assert (unpack_bits(out["descriptors"]).sum(1) == 64).all()
    expected = np.sort(scores[:, :5].ravel())[::-1][:10]  # the last cell column lies in the padding
    assert np.allclose(out["scores"], expected)
    empty = dense_to_features(scores, kp, desc, image_size=(48, 32), config=PostprocessConfig(score_threshold=1.0))
    assert empty["keypoints"].shape == (0, 2) and empty["descriptors"].shape == (0, 32)


def test_integer_codes_give_the_bits_of_their_dequantised_map():
    """An int8 output's u8 codes and the float map ``(code - zp) * scale`` select the same top-64 bits after
    bilinear sampling (a positive affine map, blend weights summing to 1), in both layouts."""
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, (256, 12, 16), dtype=np.uint8)
    dequantised = (codes.astype(np.float32) - np.float32(117)) * np.float32(0.031)
    scores = rng.random((6, 8)).astype(np.float32)
    cells = np.stack(np.meshgrid(np.arange(8), np.arange(6))).astype(np.float32)
    keypoints = (cells * 8 + 3.5 + rng.uniform(-3, 3, cells.shape)).astype(np.float32)
    ref = dense_to_features(scores, keypoints, dequantised, image_size=(64, 48))
    for layout in ("nchw", "nhwc"):
        m = codes if layout == "nchw" else np.ascontiguousarray(codes.transpose(1, 2, 0))
        got = dense_to_features(scores, keypoints, m, image_size=(64, 48), channels_last=layout == "nhwc")
        np.testing.assert_array_equal(got["keypoints"], ref["keypoints"])
        np.testing.assert_array_equal(got["descriptors"], ref["descriptors"])
