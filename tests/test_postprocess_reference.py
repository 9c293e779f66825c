"""The vectorised post-processing gives bit-identical features to the previous implementation (kept here as the
reference) on real dense maps, and the opt-in ``dedupe_radius`` drops exactly the keypoints it promises to."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data as skdata

from zippypoint.binary_desc.binarize import topk_binarize
from zippypoint.binary_desc.packing import pack_bits, unpack_bits
from zippypoint.postprocess import (
    PostprocessConfig,
    cell_nms,
    dense_to_features,
    dominated_cells,
    empty_features,
)


def _reference_sample(desc_map, keypoints, image_size):
    d, h4, w4 = desc_map.shape
    if keypoints.shape[0] == 0:
        return np.zeros((0, d), np.float32)
    width, height = image_size
    u = keypoints[:, 0].astype(np.float64) / max(width - 1, 1) * (w4 - 1)
    v = keypoints[:, 1].astype(np.float64) / max(height - 1, 1) * (h4 - 1)
    u0 = np.clip(np.floor(u).astype(np.int64), 0, w4 - 1)
    v0 = np.clip(np.floor(v).astype(np.int64), 0, h4 - 1)
    u1 = np.minimum(u0 + 1, w4 - 1)
    v1 = np.minimum(v0 + 1, h4 - 1)
    fu = (u - u0)[None].astype(np.float32)
    fv = (v - v0)[None].astype(np.float32)
    top = desc_map[:, v0, u0] * (1 - fu) + desc_map[:, v0, u1] * fu
    bottom = desc_map[:, v1, u0] * (1 - fu) + desc_map[:, v1, u1] * fu
    return np.ascontiguousarray((top * (1 - fv) + bottom * fv).T.astype(np.float32))


def _reference(scores, keypoints, descriptors, *, image_size, config, valid_size=None):
    """dense_to_features as it was before vectorising (full lexsort, two-axis fancy-index sampling)."""
    scores = np.asarray(scores, np.float32).reshape(np.asarray(scores).shape[-2:])
    keypoints = np.asarray(keypoints, np.float32)
    descriptors = np.asarray(descriptors, np.float32)
    nbytes = descriptors.shape[0] // 8
    if config.max_keypoints == 0:
        return empty_features(nbytes)
    keep = cell_nms(scores, config.nms_radius) & (scores >= config.score_threshold) & np.isfinite(scores)
    kp = keypoints.reshape(2, -1).T
    if valid_size is not None:
        inside = (kp[:, 0] <= valid_size[0] - 1) & (kp[:, 1] <= valid_size[1] - 1)
        keep &= inside.reshape(scores.shape)
    flat = np.flatnonzero(keep.reshape(-1))
    if flat.size == 0:
        return empty_features(nbytes)
    s = scores.reshape(-1)[flat]
    order = np.lexsort((flat, -s))
    if config.max_keypoints is not None:
        order = order[: config.max_keypoints]
    flat, s = flat[order], s[order]
    kp = np.ascontiguousarray(kp[flat], dtype=np.float32)
    raw = _reference_sample(descriptors, kp, image_size)
    bits = topk_binarize(raw, config.descriptor_ones)
    return {"keypoints": kp, "scores": s.astype(np.float32), "descriptors": pack_bits(bits)}


@pytest.fixture(scope="module")
def dense_maps():
    """Dense maps of the shipped network on two real photos, 320x240 and a padded 328x248 crop."""
    pytest.importorskip("torch")
    from zippypoint.extractor import Extractor
    from zippypoint.io import prepare_image

    ex = Extractor("zippypoint", pretrained=True)
    out = []
    for image, size in ((skdata.astronaut()[:, :, ::-1], (320, 240)), (skdata.coffee()[:, :, ::-1], (322, 243))):
        batch, info = prepare_image(np.ascontiguousarray(image), 3, size)
        dense = ex.infer(batch)
        out.append((dense["scores"][0], dense["keypoints"][0], dense["descriptors"][0], info))
    return out


@pytest.mark.parametrize("config", [
    PostprocessConfig(), PostprocessConfig(max_keypoints=300), PostprocessConfig(max_keypoints=None),
    PostprocessConfig(max_keypoints=7, nms_radius=1), PostprocessConfig(max_keypoints=1),
    PostprocessConfig(score_threshold=0.5), PostprocessConfig(max_keypoints=0),
])
def test_bit_identical_to_the_previous_implementation(dense_maps, config):
    for scores, kp, desc, info in dense_maps:
        kw = {"image_size": info.padded_size, "valid_size": info.resized_size, "config": config}
        ours, ref = dense_to_features(scores, kp, desc, **kw), _reference(scores, kp, desc, **kw)
        for key in ("keypoints", "scores", "descriptors"):
            assert ours[key].dtype == ref[key].dtype and ours[key].shape == ref[key].shape
            assert ours[key].tobytes() == ref[key].tobytes(), key
        channels_last = dense_to_features(scores, kp, np.ascontiguousarray(desc.transpose(1, 2, 0)),
                                          channels_last=True, **kw)
        assert all(channels_last[k].tobytes() == ref[k].tobytes() for k in ref)


def test_ties_at_the_kth_score_keep_the_lowest_cells():
    scores = np.full((6, 6), 0.5, np.float32)
    scores[0, 0] = 0.9
    ys, xs = np.mgrid[0:6, 0:6]
    kp = np.stack([xs * 8 + 3.5, ys * 8 + 3.5]).astype(np.float32)
    desc = np.random.default_rng(0).standard_normal((256, 12, 12)).astype(np.float32)
    cfg = PostprocessConfig(max_keypoints=4)
    ours = dense_to_features(scores, kp, desc, image_size=(48, 48), config=cfg)
    ref = _reference(scores, kp, desc, image_size=(48, 48), config=cfg)
    assert ours["keypoints"].tobytes() == ref["keypoints"].tobytes()
    assert np.array_equal(ours["keypoints"], [[3.5, 3.5], [11.5, 3.5], [19.5, 3.5], [27.5, 3.5]])


def _brute_force_dominated(scores, kp_map, candidates, radius):
    h, w = scores.shape
    s, kp, cand = scores.reshape(-1), kp_map.reshape(2, -1).T, candidates.reshape(-1)
    out = np.zeros(h * w, bool)
    for i in range(h * w):
        for j in range(h * w):
            higher = s[j] > s[i] or (s[j] == s[i] and j < i)
            if j != i and cand[j] and higher and np.sum((kp[j] - kp[i]) ** 2) < np.float32(radius) ** 2:
                out[i] = True
    return out.reshape(h, w)


@pytest.mark.parametrize("radius", [0.0, 2.5, 4.0, 9.0, 30.0])
def test_dominated_cells_equal_a_brute_force_reference(radius):
    rng = np.random.default_rng(int(radius * 10))
    h, w = 5, 7
    scores = rng.choice([0.2, 0.4, 0.6, 0.8], size=(h, w)).astype(np.float32)  # many ties
    ys, xs = np.mgrid[0:h, 0:w]
    kp = np.stack([xs * 8 + 3.5, ys * 8 + 3.5]).astype(np.float32) + rng.uniform(-7, 7, (2, h, w)).astype(np.float32)
    candidates = rng.random((h, w)) > 0.2
    ours = dominated_cells(scores, kp, candidates, radius)
    assert np.array_equal(ours, _brute_force_dominated(scores, kp, candidates, radius))


def test_dedupe_radius_on_real_maps(dense_maps):
    scores, kp, desc, info = dense_maps[0]
    kw = {"image_size": info.padded_size, "valid_size": info.resized_size}
    base = dense_to_features(scores, kp, desc, config=PostprocessConfig(max_keypoints=None), **kw)
    deduped = dense_to_features(scores, kp, desc, config=PostprocessConfig(max_keypoints=None, dedupe_radius=4.0),
                                **kw)
    assert 0 < len(deduped["scores"]) <= len(base["scores"])
    pts = deduped["keypoints"]
    dist2 = ((pts[:, None] - pts[None]) ** 2).sum(-1) + np.eye(len(pts)) * 1e9
    assert dist2.min() >= 16.0  # no two survivors closer than the radius
    # every dropped keypoint has a higher-scoring one (kept or not) closer than the radius
    kept = {tuple(p) for p in pts.tolist()}
    for i, p in enumerate(base["keypoints"].tolist()):
        if tuple(p) not in kept:
            d2 = ((base["keypoints"][:i] - np.asarray(p, np.float32)) ** 2).sum(-1)
            assert (d2 < 16.0).any()
    assert (unpack_bits(deduped["descriptors"]).sum(1) == 64).all()
    with pytest.raises(ValueError, match="dedupe_radius"):
        PostprocessConfig(dedupe_radius=-1.0)
