"""Distillation from the shipped paper model into another topology: the losses, partial initialisation, and the
teacher on the deployed int8 file."""

from __future__ import annotations

import pytest
import torch

from zippypoint.train.losses import LossConfig
from zippypoint.train.network_teacher import NetworkTeacher, network_distillation_losses


def _dense(seed: int, b: int = 2, h: int = 48, w: int = 64, desc_stride: int = 4) -> dict:
    g = torch.Generator().manual_seed(seed)
    hc, wc = h // 8, w // 8
    cx = torch.arange(wc).view(1, wc) * 8 + 3.5
    cy = torch.arange(hc).view(hc, 1) * 8 + 3.5
    offsets = torch.rand(b, 2, hc, wc, generator=g) * 6 - 3
    kp = torch.stack([cx.expand(hc, wc), cy.expand(hc, wc)]).unsqueeze(0) + offsets
    return {"scores": torch.rand(b, 1, hc, wc, generator=g),
            "keypoints": kp,
            "descriptors": torch.randn(b, 256, h // desc_stride, w // desc_stride, generator=g)}


def test_a_student_equal_to_the_teacher_has_no_location_or_descriptor_loss():
    cfg = LossConfig(teacher_points=16, descriptor_forward="hard")
    t = _dense(0)
    same = network_distillation_losses(t, t, cfg, (64, 48))
    other = network_distillation_losses(_dense(1), t, cfg, (64, 48))
    assert float(same["teacher_location"]) == 0.0
    assert float(same["teacher_cosine"]) == pytest.approx(0.0, abs=1e-5)
    assert float(same["teacher_bit_agreement"]) == 1.0
    assert float(other["teacher_location"]) > 1.0 and float(other["teacher_cosine"]) > 0.5
    assert float(other["teacher_bit_agreement"]) < 0.5
    assert float(other["teacher_score"]) > float(same["teacher_score"])


def test_losses_reach_the_student_at_another_descriptor_stride_and_the_stem():
    cfg = LossConfig(teacher_points=16)
    student = {k: v.clone().requires_grad_(True) for k, v in _dense(1, desc_stride=8).items()}
    stem_s = torch.randn(2, 32, 24, 32, requires_grad=True)
    losses = network_distillation_losses(student, _dense(0), cfg, (64, 48), stem=(stem_s, torch.randn(2, 32, 24, 32)))
    losses["distill"].backward()
    for name, tensor in (*student.items(), ("stem", stem_s)):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0, name
    assert float(losses["teacher_stem"]) > 0


def test_partial_init_loads_the_fitting_tensors_and_refuses_a_file_that_fits_nothing(tmp_path):
    from zippypoint.model.registry import create_model
    from zippypoint.model.weights import WeightsError, save_weights
    from zippypoint.train.trainer import load_fitting

    torch.manual_seed(0)
    paper = create_model("zippypoint")
    path = tmp_path / "paper.safetensors"
    save_weights(paper, path)
    lean = create_model("zippypoint-lean")
    loaded, rest = load_fitting(lean, path)
    assert "block3a.conv.weight" in loaded and torch.equal(lean.block3a.conv.weight, paper.block3a.conv.weight)
    assert "conv_in.conv.weight" in rest and "head_conv.conv.weight" in rest
    other = tmp_path / "other.safetensors"
    from safetensors.torch import save_file

    save_file({"nothing.weight": torch.zeros(3)}, str(other))
    with pytest.raises(WeightsError, match="fits"):
        load_fitting(lean, other)


def test_teacher_refuses_unknown_presets_and_use_before_load():
    with pytest.raises(ValueError, match="network teacher"):
        NetworkTeacher("zippypoint-lean")
    with pytest.raises(RuntimeError, match="load"):
        NetworkTeacher().dense(torch.zeros(1, 3, 32, 32))


def test_teacher_runs_the_deployed_int8_file_like_the_extractor(photo_bgr):
    import numpy as np

    from zippypoint.resolve import build_extractor

    teacher = NetworkTeacher(threads=2).load()
    rgb = np.ascontiguousarray(photo_bgr[:96, :128, ::-1].transpose(2, 0, 1)).astype(np.float32)[None] / 255
    dense = teacher.dense(torch.from_numpy(rgb))
    assert dense["scores"].shape == (1, 1, 12, 16) and dense["descriptors"].shape == (1, 256, 24, 32)
    ref = build_extractor("zippypoint", "onnx-int8").infer(rgb)
    # the same int8 file in OpenVINO (or ONNX Runtime): scores agree up to the runtimes' rounding
    assert np.abs(dense["scores"].numpy() - ref["scores"]).mean() < 0.02
    stem = teacher.stem(torch.from_numpy(rgb))
    assert stem.shape == (1, teacher.stem_channels, 48, 64)


def test_a_gray_teacher_sees_the_deployed_luma_of_the_rgb_batch(photo_bgr):
    import numpy as np

    from zippypoint.resolve import build_extractor
    from zippypoint.train.data import network_input

    teacher = NetworkTeacher("zippypoint-slim-h64", threads=2).load()
    rgb = torch.from_numpy(np.ascontiguousarray(photo_bgr[:96, :128, ::-1].transpose(2, 0, 1)).astype(np.float32)
                           [None] / 255)
    dense = teacher.dense(rgb)
    assert dense["scores"].shape == (1, 1, 12, 16) and dense["descriptors"].shape == (1, 256, 12, 16)
    gray = network_input(rgb, 1).numpy()
    ref = build_extractor("zippypoint-slim-h64", teacher.runtime).infer(np.ascontiguousarray(gray))
    np.testing.assert_allclose(dense["scores"].numpy(), ref["scores"], atol=1e-6)
    assert teacher.stem(rgb).shape == (1, teacher.stem_channels, 48, 64)


def test_the_teacher_stem_runs_where_the_student_trains():
    with pytest.raises(RuntimeError, match="load"):
        NetworkTeacher().to("cpu")
    teacher = NetworkTeacher("zippypoint-slim-h64", threads=2).load()
    assert teacher.to("meta") is teacher  # any device but the CPU: the stem's weights and activations follow
    stem = teacher.stem(torch.zeros(2, 3, 96, 128, device="meta"))
    assert stem.device.type == "meta" and stem.shape == (2, teacher.stem_channels, 48, 64)
