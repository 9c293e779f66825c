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
