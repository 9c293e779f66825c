"""Distillation from ALIKED, the development benchmarks and the training diagnostics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from zippypoint.train.distill import AlikedTeacher, TeacherUnavailable, cell_peaks, distillation_losses
from zippypoint.train.losses import LossConfig


def test_cell_peaks_find_the_peak_of_each_cell():
    score = torch.zeros(1, 1, 16, 24)
    score[0, 0, 3, 5] = 1.0  # cell (0, 0)
    score[0, 0, 12, 21] = 0.8  # cell (1, 2)
    peak, xy = cell_peaks(score, temperature=0.01)
    assert peak.shape == (1, 1, 2, 3) and xy.shape == (1, 2, 2, 3)
    assert float(peak[0, 0, 0, 0]) == 1.0 and float(peak[0, 0, 1, 2]) == pytest.approx(0.8)
    assert torch.allclose(xy[0, :, 0, 0], torch.tensor([5.0, 3.0]), atol=1e-3)
    assert torch.allclose(xy[0, :, 1, 2], torch.tensor([21.0, 12.0]), atol=1e-3)


def test_teacher_refuses_unknown_variants_and_use_before_load():
    with pytest.raises(ValueError, match="teacher"):
        AlikedTeacher("superpoint")
    with pytest.raises(TeacherUnavailable, match="load"):
        AlikedTeacher().dense(torch.zeros(1, 3, 32, 32))


def _teacher():
    try:
        return AlikedTeacher("aliked-t16").load()
    except TeacherUnavailable as exc:
        pytest.skip(f"{exc} (python -m zippypoint.methods.peer_weights)")


def test_distillation_losses_on_real_photos_are_finite_and_reach_every_head(photo_bgr):
    from zippypoint.model.registry import create_model

    teacher = _teacher()
    torch.manual_seed(0)
    model = create_model("zippypoint-fp")
    rgb = torch.from_numpy(np.ascontiguousarray(photo_bgr[:96, :128, ::-1].transpose(2, 0, 1))).float()[None] / 255
    out = model(torch.cat([rgb, rgb]))
    out_s = {k: v[:1] for k, v in out.items()}
    out_t = {k: v[1:] for k, v in out.items()}
    losses = distillation_losses(out_s, out_t, torch.eye(3)[None], teacher, rgb, LossConfig(teacher_points=32),
                                 (128, 96), generator=torch.Generator().manual_seed(0))
    assert all(torch.isfinite(v) for v in losses.values())
    losses["distill"].backward()
    for head in ("score_out", "loc_out", "desc_out"):
        assert getattr(model, head).weight.grad.abs().sum() > 0, head
    assert all(p.grad is None for p in teacher.parameters())


def test_descriptor_distillation_is_lower_for_the_teachers_own_similarities():
    """Codes built from the teacher's own descriptors agree with its similarity rows better than random codes."""
    teacher = _teacher()
    from zippypoint.demo import sample_photo

    img = sample_photo("coffee")[:96, :128, ::-1]
    rgb = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()[None] / 255
    feats, _ = teacher.dense(rgb)
    hc, wc = 12, 16
    cx = torch.arange(wc).view(1, wc) * 8 + 3.5
    cy = torch.arange(hc).view(hc, 1) * 8 + 3.5
    kp = torch.stack([cx.expand(hc, wc), cy.expand(hc, wc)])[None].float()
    # a descriptor map whose value at each keypoint is a fixed random projection of the teacher's descriptor
    desc_teacher = teacher.describe(feats, kp.flatten(2).transpose(1, 2))  # (1, N, D)
    proj = torch.randn(desc_teacher.shape[-1], 256, generator=torch.Generator().manual_seed(0))
    aligned = (desc_teacher @ proj).transpose(1, 2).reshape(1, 256, hc, wc)
    aligned = torch.nn.functional.interpolate(aligned, size=(24, 32), mode="bilinear", align_corners=True)
    noise = torch.randn(1, 256, 24, 32, generator=torch.Generator().manual_seed(1))
    scores = torch.full((1, 1, hc, wc), 0.5)
    cfg = LossConfig(teacher_points=64, teacher_score_weight=0.0, teacher_location_weight=0.0)
    values = {}
    for name, desc in (("aligned", aligned), ("noise", noise)):
        out = {"keypoints": kp, "scores": scores, "descriptors": desc}
        values[name] = float(distillation_losses(out, out, torch.eye(3)[None], teacher, rgb, cfg, (128, 96),
                                                 generator=torch.Generator().manual_seed(0))["teacher_descriptor"])
    assert values["aligned"] < values["noise"]


def test_make_benchmark_builds_held_out_viewpoint_and_illumination_sets(tmp_path):
    import cv2

    from zippypoint.eval.hpatches import find_sequences, read_homography
    from zippypoint.eval.synthetic import SyntheticConfig, make_benchmark
    from zippypoint.train.split import is_dev_photo

    names = [f"photo_{i:03d}.png" for i in range(60)]
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in names:
        cv2.imwrite(str(photos / n), (rng.random((80, 96, 3)) * 255).astype(np.uint8))
    dev = {n for n in names if is_dev_photo(n)}
    assert len(dev) >= 2
    for kind in ("viewpoint", "illumination"):
        out = tmp_path / kind
        folders = make_benchmark(photos, out, SyntheticConfig(sequences=2, per_sequence=3, kind=kind,
                                                                held_out=True), log=lambda _m: None)
        record = json.loads((out / "benchmark.json").read_text())
        assert {p.split("/")[-1] for p in (s["image"] for s in record["sequences"].values())} <= dev
        assert len(find_sequences(out)) == len(folders) == 2
        h = read_homography(folders[0] / "H_1_3")
        if kind == "illumination":
            assert np.allclose(h, np.eye(3))
            a = cv2.imread(str(folders[0] / "1.png")).astype(float)
            b = cv2.imread(str(folders[0] / "4.png")).astype(float)
            assert np.abs(a - b).mean() > 3  # the lighting changed
        else:
            assert not np.allclose(h, np.eye(3))
    with pytest.raises(ValueError, match="kind"):
        SyntheticConfig(kind="weather")


def test_near_duplicate_share_and_rotation_sweep_on_sift(photo_bgr):
    from zippypoint.methods.registry import create_method
    from zippypoint.train.diagnostics import near_duplicate_share, rotation_sweep

    pts = np.array([[0, 0], [1, 0], [10, 10], [30, 30]], np.float32)
    assert near_duplicate_share(pts, 2.0) == 0.5
    assert near_duplicate_share(pts[:1], 2.0) == 0.0
    sift = create_method("sift", 300)
    sift.load()
    import cv2

    photo = cv2.resize(photo_bgr, (320, 240), interpolation=cv2.INTER_AREA)
    res = rotation_sweep(sift, [photo], angles=(0, 30))
    assert res["0"] > 0.95  # the same image: nearly every match is correct
    assert 0 < res["30"] <= 1


def test_float_ablation_features_share_the_keypoints_of_the_binary_ones(photo_bgr):
    import cv2

    from zippypoint.model.registry import create_model
    from zippypoint.train.diagnostics import dense_maps, features_from_dense

    torch.manual_seed(0)
    model = create_model("zippypoint").eval()
    dense, size = dense_maps(model, cv2.resize(photo_bgr, (160, 120), interpolation=cv2.INTER_AREA))
    binary = features_from_dense(dense, size, 100)
    floats = features_from_dense(dense, size, 100, descriptors="float")
    assert np.array_equal(binary["keypoints"], floats["keypoints"])
    assert binary["descriptors"].dtype == np.uint8 and floats["descriptors"].shape == (len(binary["scores"]), 256)
    assert np.allclose(np.linalg.norm(floats["descriptors"], axis=1), 1, atol=1e-5)
    deduped = features_from_dense(dense, size, 100, dedupe_radius=2.0)
    kp = deduped["keypoints"]
    d = np.linalg.norm(kp[:, None] - kp[None], axis=-1) + np.eye(len(kp)) * 99
    assert d.min() >= 2.0
