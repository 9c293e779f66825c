"""Distillation from a trained ZippyPoint network into another topology (docs/design.md §8).

The teacher is a preset with shipped weights (``zippypoint``, the paper topology, or ``zippypoint-slim-h64``, the
default before ``zippypoint-slim-h64-noh2``, for the presets cut from it) run through its
deployed int8 model (the packaged OpenVINO IR, or the int8 ONNX file without OpenVINO), so the student learns
what users of the teacher actually get. It sees the same augmented source and target images as the student (in
RGB; a gray network, student or teacher, sees their deployed luma). Losses, on the student's dense maps against the teacher's:

- score: binary cross-entropy to the teacher's per-cell score (border cells excluded);
- location: L1 pixel distance between the two keypoints of a cell, weighted by the teacher's score;
- descriptors: at the teacher's ``teacher_points`` strongest keypoints of each image, both raw descriptors are
  sampled as inference samples them (bilinear, align-corners; the student's map may have another stride) and
  compared by centred cosine (the top-64 code depends only on the order of the entries, which centring keeps),
  plus relation distillation: the softmax over the image's other keypoints of the student's code distances
  follows the teacher's shared-ones similarities of its hard codes;
- stem: where the student's input conv replaces the teacher's input conv + space-to-depth (the lean stem, same
  output shape), the mean squared difference of the two activations, so the pre-trained binary stages keep the
  input distribution they were trained on (computed by the teacher's own PyTorch stem: a small share of it).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from zippypoint.model.network import normalised_input
from zippypoint.train.data import network_input
from zippypoint.train.losses import (
    LossConfig,
    _sq_dist,
    border_mask,
    hard_codes,
    sample_map,
    soft_codes,
    straight_through_codes,
)

NETWORK_TEACHERS = ("zippypoint", "zippypoint-slim-h64")


class NetworkTeacher:
    """A shipped ZippyPoint preset as a frozen teacher. Constructing it loads nothing; ``load()`` does."""

    def __init__(self, preset: str = "zippypoint", threads: int | None = None) -> None:
        if preset not in NETWORK_TEACHERS:
            raise ValueError(f"network teacher must be one of {NETWORK_TEACHERS}, got {preset!r}")
        self.preset = preset
        self.threads = threads
        self.runtime = ""
        self._run = None
        self._stem = None

    def load(self) -> NetworkTeacher:
        from zippypoint.machine import int8_products_saturate
        from zippypoint.model.registry import create_model
        from zippypoint.resolve import available_runtimes, build_extractor

        # the deployed int8 model through the project's own extractor: OpenVINO where installed, else ONNX Runtime,
        # which is also the exact one on x86 CPUs without VNNI (OpenVINO's int8 convolutions saturate there)
        openvino = "openvino-int8" in available_runtimes() and not int8_products_saturate()
        self.runtime = "openvino-int8" if openvino else "onnx-int8"
        self._run = build_extractor(self.preset, self.runtime, threads=self.threads).infer
        net = create_model(self.preset, pretrained=True).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self._stem = net
        return self

    def to(self, device: str | torch.device) -> NetworkTeacher:
        """Run the PyTorch stem (the only part of the teacher that is not the deployed model) on ``device``; the
        deployed model stays on the CPU and its maps are moved to the images' device."""
        if self._stem is None:
            raise RuntimeError("call load() before using the teacher")
        self._stem.to(device)
        return self

    @property
    def stem_channels(self) -> int:
        return self._stem.config.widths[1]

    @torch.no_grad()
    def dense(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B,3,H,W) RGB in [0,1] -> the teacher's dense maps (scores, keypoints, descriptors) as tensors (a gray
        teacher sees the deployed luma of the batch)."""
        if self._run is None:
            raise RuntimeError("call load() before using the teacher")
        images = network_input(images, self._stem.config.in_channels)
        batch = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        return {k: torch.from_numpy(np.array(v)).to(images.device) for k, v in self._run(batch).items()}

    @torch.no_grad()
    def stem(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's activations after its input conv and space-to-depth projection (B, c1, H/2, W/2)."""
        if self._stem is None:
            raise RuntimeError("call load() before using the teacher")
        net = self._stem
        images = network_input(images, net.config.in_channels)
        x = net.conv_in(normalised_input(net, images))
        return net.down1(x) if net.down1 is not None else x


def network_distillation_losses(out: dict, teacher: dict, cfg: LossConfig, image_size: tuple[int, int],
                                stem: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Teacher losses for one batch (see the module docstring); ``distill`` is their weighted sum.

    ``out``: the student's dense maps, ``teacher``: the teacher's on the same images, ``stem``: (student, teacher)
    stem activations or None."""
    width, height = image_size
    b, _, hc, wc = out["scores"].shape
    inner = border_mask(hc, wc, cfg.border_cells, out["scores"].device).view(1, 1, hc, wc).float()
    t_scores = teacher["scores"].clamp(0, 1)
    ours = out["scores"].clamp(1e-6, 1 - 1e-6)
    score = (F.binary_cross_entropy(ours, t_scores, reduction="none") * inner).sum() / (inner.sum() * b)
    weight = t_scores * inner
    l1 = (out["keypoints"] - teacher["keypoints"]).abs().sum(1, keepdim=True)
    location = (l1 * weight).sum() / weight.sum().clamp_min(1e-6)

    n = min(cfg.teacher_points, int(inner.sum()))
    idx = weight.flatten(1).topk(n, dim=1).indices
    points = teacher["keypoints"].flatten(2).transpose(1, 2).gather(1, idx.unsqueeze(-1).expand(-1, -1, 2))
    t_raw = sample_map(teacher["descriptors"], points, width, height)
    s_raw = sample_map(out["descriptors"], points, width, height)
    cosine = 1 - F.cosine_similarity(s_raw - s_raw.mean(-1, keepdim=True), t_raw - t_raw.mean(-1, keepdim=True),
                                     dim=-1).mean()
    k = cfg.descriptor_ones
    t_codes = hard_codes(t_raw, k)
    codes = straight_through_codes if cfg.descriptor_forward == "hard" else soft_codes
    s_codes = codes(s_raw, k, cfg.descriptor_gain)
    eye = torch.eye(n, dtype=torch.bool, device=s_raw.device).unsqueeze(0)
    t_logits = (t_codes @ t_codes.transpose(1, 2) / k / cfg.teacher_temperature).masked_fill(eye, float("-inf"))
    s_logits = (-_sq_dist(s_codes, s_codes) / k / cfg.temperature).masked_fill(eye, -1e4)
    relation = -(torch.softmax(t_logits, -1) * torch.log_softmax(s_logits, -1)).sum(-1).mean()
    descriptor = cosine + relation
    zero = out["scores"].sum() * 0.0
    stem_loss = F.mse_loss(stem[0], stem[1]) if stem is not None else zero
    total = (cfg.teacher_score_weight * score + cfg.teacher_location_weight * location
             + cfg.teacher_descriptor_weight * descriptor + cfg.teacher_feature_weight * stem_loss)
    with torch.no_grad():
        agreement = (hard_codes(s_raw, k) * t_codes).sum(-1).mean() / k
    return {"distill": total, "teacher_score": score.detach(), "teacher_location": location.detach(),
            "teacher_cosine": cosine.detach(), "teacher_relation": relation.detach(),
            "teacher_stem": stem_loss.detach(), "teacher_bit_agreement": agreement}
