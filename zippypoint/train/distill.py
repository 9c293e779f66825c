"""Distillation from a learned peer (ALIKED through kornia, weights from ``zippypoint.methods.peer_weights``).

The teacher runs without gradients on the *target* images of a batch (the photometrically augmented
originals). Three losses follow, alongside the homographic ones:

- score: binary cross-entropy between our per-cell score and the teacher's score map max-pooled over
  each 8x8 cell (border cells excluded);
- location: in cells where the teacher is confident, the pixel distance from our keypoint to the
  teacher's soft peak inside the cell, weighted by the teacher's score (teaches sub-cell placement);
- descriptors: for ``teacher_points`` random anchors per image, the softmax over target keypoints of
  the teacher's cosine similarities is the target distribution for the softmax of our code distances,
  across the pair (our source code at p against target codes; the teacher reads the target image at
  H p, where the same scene point lies) and within the target image (self excluded).

Why the target image only: the teacher is evaluated once per pair instead of twice, and across the
pair it gives the similarity the scene point *should* have, not the teacher's own warp errors.
Measured on this machine (2 cores): see README "Training" for the teacher's share of a step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zippypoint.train.homography import apply_homography, norm_to_pixel, pixel_to_norm
from zippypoint.train.losses import LossConfig, _sq_dist, border_mask, soft_codes, straight_through_codes

TEACHERS = ("aliked-t16", "aliked-n16")


class TeacherUnavailable(RuntimeError):
    """The teacher cannot run here (kornia missing or weights not cached); the message says how to fix it."""


class AlikedTeacher(torch.nn.Module):
    """ALIKED's dense maps and descriptors at given points; frozen, always in eval mode. Loads in ``load()``."""

    def __init__(self, variant: str = "aliked-t16") -> None:
        super().__init__()
        if variant not in TEACHERS:
            raise ValueError(f"teacher must be one of {TEACHERS}, got {variant!r}")
        self.variant = variant
        self.net = None

    def load(self) -> AlikedTeacher:
        from zippypoint.methods.base import MethodUnavailable
        from zippypoint.methods.kornia_peers import AlikedMethod

        method = AlikedMethod(self.variant)
        try:
            method.load()
        except MethodUnavailable as exc:
            raise TeacherUnavailable(f"teacher {self.variant}: {exc}") from None
        self.net = method._model.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> AlikedTeacher:
        return super().train(False)

    @torch.no_grad()
    def dense(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,3,H,W) RGB in [0,1] -> feature map (B,C,H,W) unit vectors, score map (B,1,H,W) in (0,1)."""
        if self.net is None:
            raise TeacherUnavailable("call load() before using the teacher")
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        return self.net.extract_dense_map(images)

    @torch.no_grad()
    def describe(self, feature_map: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Unit descriptors (B,N,D) at pixel points (B,N,2) of the images behind ``feature_map``."""
        h, w = feature_map.shape[-2:]
        norm = pixel_to_norm(points, w, h).clamp(-1, 1)
        desc, _ = self.net.desc_head(feature_map, list(norm.unbind(0)))
        return F.normalize(torch.stack(desc), dim=-1)


def cell_peaks(score_map: torch.Tensor, cell: int = 8, temperature: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cell max score (B,1,h,w) and soft-argmax peak position in pixels (B,2,h,w) of a (B,1,H,W) map."""
    b, _, hh, ww = score_map.shape
    h, w = hh // cell, ww // cell
    cells = score_map[..., : h * cell, : w * cell].reshape(b, h, cell, w, cell).permute(0, 1, 3, 2, 4)
    cells = cells.reshape(b, h, w, cell * cell)
    peak = cells.max(-1).values
    weights = torch.softmax(cells / temperature, dim=-1)
    local = torch.arange(cell, dtype=score_map.dtype, device=score_map.device)
    ly, lx = torch.meshgrid(local, local, indexing="ij")
    px = (weights * lx.flatten()).sum(-1) + torch.arange(w, device=score_map.device) * cell
    py = (weights * ly.flatten()).sum(-1) + torch.arange(h, device=score_map.device).view(h, 1) * cell
    return peak.unsqueeze(1), torch.stack([px, py], dim=1)


def distillation_losses(out_s: dict, out_t: dict, homography: torch.Tensor, teacher: AlikedTeacher,
                        target_images: torch.Tensor, cfg: LossConfig, image_size: tuple[int, int],
                        generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Teacher losses (weighted sum in ``distill``) for one batch; see the module docstring."""
    width, height = image_size
    feature_map, score_map = teacher.dense(target_images)
    hc, wc = out_t["scores"].shape[-2:]
    inner = border_mask(hc, wc, cfg.border_cells, out_t["scores"].device).view(1, 1, hc, wc)
    peak, peak_xy = cell_peaks(score_map)
    peak = peak[..., :hc, :wc]
    ours = out_t["scores"].clamp(1e-6, 1 - 1e-6)
    score = (F.binary_cross_entropy(ours, peak, reduction="none") * inner).sum() / inner.sum().clamp_min(1) / ours.shape[0]
    confident = (peak > 0.5) & inner
    loc_dist = (out_t["keypoints"] - peak_xy[..., :hc, :wc]).norm(dim=1, keepdim=True)
    location = (loc_dist * peak * confident).sum() / (peak * confident).sum().clamp_min(1e-6)

    # similarity distillation on a random subset of anchors per image
    kp_s = out_s["keypoints"].flatten(2).transpose(1, 2)
    kp_t = out_t["keypoints"].flatten(2).transpose(1, 2)
    b, n, _ = kp_t.shape
    cand = torch.nonzero(inner.flatten()).squeeze(1)
    m = min(cfg.teacher_points, cand.numel())
    pick = cand[torch.randperm(cand.numel(), generator=generator)[:m].to(cand.device)]
    warped = norm_to_pixel(apply_homography(homography, pixel_to_norm(kp_s[:, pick], width, height)), width, height)
    inside = (warped[..., 0] >= 0) & (warped[..., 0] <= width - 1) & (warped[..., 1] >= 0) & (warped[..., 1] <= height - 1)
    t_anchor = teacher.describe(feature_map, warped.detach())
    t_target = teacher.describe(feature_map, kp_t[:, cand].detach())
    from zippypoint.train.losses import sample_map

    codes = straight_through_codes if cfg.descriptor_forward == "hard" else soft_codes
    k, g = cfg.descriptor_ones, cfg.descriptor_gain
    s_anchor = codes(sample_map(out_s["descriptors"], kp_s[:, pick].detach(), width, height), k, g)
    s_target = codes(sample_map(out_t["descriptors"], kp_t[:, cand].detach(), width, height), k, g)
    t_cross = t_anchor @ t_target.transpose(1, 2) / cfg.teacher_temperature
    s_cross = -_sq_dist(s_anchor, s_target) / k / cfg.temperature
    cross = _soft_cross_entropy(s_cross, t_cross, inside)
    # within the target image: anchors are target keypoints ``pick``, self excluded
    pos_in_cand = torch.searchsorted(cand, pick)
    t_self = t_target[:, pos_in_cand] @ t_target.transpose(1, 2) / cfg.teacher_temperature
    s_self = -_sq_dist(s_target[:, pos_in_cand], s_target) / k / cfg.temperature
    eye = F.one_hot(pos_in_cand, cand.numel()).bool().unsqueeze(0)
    within = _soft_cross_entropy(s_self.masked_fill(eye, -1e4), t_self.masked_fill(eye, float("-inf")),
                                 torch.ones_like(inside))
    descriptor = 0.5 * (cross + within)
    total = (cfg.teacher_score_weight * score + cfg.teacher_location_weight * location
             + cfg.teacher_descriptor_weight * descriptor)
    return {"distill": total, "teacher_score": score.detach(), "teacher_location": location.detach(),
            "teacher_descriptor": descriptor.detach()}


def _soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Mean over selected rows of -sum softmax(teacher) * log_softmax(student)."""
    p = torch.softmax(teacher_logits, dim=-1)
    per_row = -(p * torch.log_softmax(student_logits, dim=-1)).sum(-1)
    return (per_row * rows).sum() / rows.sum().clamp_min(1)
