"""Self-supervised losses of docs/design.md §4 (KP2D), with binary descriptors through the LML projection.

All functions take the dense outputs of the network for the source (warped) and target (original)
images and the normalised source->target homographies (B,3,3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from zippypoint.train.homography import apply_homography, norm_to_pixel, pixel_to_norm


@dataclass(frozen=True)
class LossConfig:
    location_weight: float = 1.0  # weight of the keypoint location loss
    descriptor_weight: float = 1.0  # weight of the descriptor loss (InfoNCE by default)
    score_weight: float = 1.0  # weight of the UnsuperPoint score loss
    consistency_weight: float = 2.0  # weight of the score consistency loss
    match_radius: float = 4.0  # px: a warped source point is "valid" when its nearest target point is closer
    negative_radius: float = 4.0  # px: negatives must lie at least this far from the positive
    descriptor_loss: str = "infonce"  # "infonce" (softmax over all negatives) or "triplet" (hardest negative)
    margin: float = 0.2  # triplet margin in unit-vector units (distances divided by sqrt(k))
    temperature: float = 0.1  # InfoNCE temperature on squared unit-vector distances
    descriptor_ones: int = 64  # k of the LML projection / top-k binarisation
    descriptor_gain: float = 3.0  # LML input = gain * per-descriptor standardised values (sets the softness)
    border_cells: int = 1  # ignore this many rings of cells at the image border
    # "soft": the loss sees the LML codes; "hard": it sees the top-k 0/1 codes that inference uses, with the
    # LML projection's gradient (straight-through), so training measures what matching will meet
    descriptor_forward: str = "soft"
    detach_descriptor_points: bool = False  # descriptor-loss gradients do not move the keypoints (KP2D)
    repulsion_weight: float = 0.0  # weight of the penalty on scored keypoints of different cells meeting
    repulsion_radius: float = 3.0  # px: keypoints closer than this repel (weighted by both scores)
    suppression_weight: float = 0.0  # weight of the penalty on the score of the weaker of two meeting keypoints
    suppression_radius: float = 4.5  # px: a keypoint this close to a higher-scoring one is suppressed
    saturation_weight: float = 0.0  # weight of the penalty on location pre-tanh values beyond the bound
    saturation_bound: float = 2.0  # |pre-tanh| allowed (tanh(2) = 0.964: 6.7 px offsets still reachable)
    teacher_score_weight: float = 1.0  # distillation: BCE to the teacher's score map, max-pooled per cell
    teacher_location_weight: float = 0.5  # distillation: px distance to the teacher's peak in confident cells
    teacher_descriptor_weight: float = 1.0  # distillation: cross-entropy to the teacher's similarity rows
    teacher_temperature: float = 0.05  # softmax temperature on the teacher's cosine similarities
    teacher_points: int = 128  # anchors per image for the similarity distillation
    teacher_feature_weight: float = 1.0  # network teacher: MSE between the stem activations (lean stem only)
    homographic_weight: float = 1.0  # weight of all self-supervised losses above (0 = distillation only)


def _flatten_points(kp: torch.Tensor) -> torch.Tensor:
    """(B,2,h,w) -> (B,N,2)."""
    return kp.flatten(2).transpose(1, 2)


def sample_map(feature: torch.Tensor, points: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Bilinearly sample (B,C,h',w') at pixel points (B,N,2) of an image of width x height; returns (B,N,C)."""
    grid = pixel_to_norm(points, width, height).unsqueeze(1)
    out = F.grid_sample(feature, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.squeeze(2).transpose(1, 2)


def sample_cell_map(cell_map: torch.Tensor, points: torch.Tensor, cell: int = 8) -> torch.Tensor:
    """Sample a per-cell map (B,C,h,w) at pixel points: cell centres sit at 8c + 3.5."""
    h, w = cell_map.shape[-2:]
    u = (points[..., 0] - (cell - 1) / 2) / cell
    v = (points[..., 1] - (cell - 1) / 2) / cell
    grid = torch.stack([u / max(w - 1, 1) * 2 - 1, v / max(h - 1, 1) * 2 - 1], dim=-1).unsqueeze(1)
    out = F.grid_sample(cell_map, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.squeeze(2).transpose(1, 2)


def hard_codes(raw: torch.Tensor, k: int) -> torch.Tensor:
    """The inference codes: 1 at the k largest values of each row, 0 elsewhere (no gradient)."""
    idx = torch.topk(raw.detach(), k, dim=-1).indices
    return torch.zeros_like(raw).scatter_(-1, idx, 1.0)


def straight_through_codes(raw: torch.Tensor, k: int, gain: float) -> torch.Tensor:
    """Forward: the hard top-k codes; backward: the gradient of the soft LML codes."""
    soft = soft_codes(raw, k, gain)
    return soft + (hard_codes(raw, k) - soft).detach()


def _sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise squared distances (B,N,D) x (B,M,D) -> (B,N,M), with a gradient at 0 (unlike cdist's)."""
    return ((a * a).sum(-1, keepdim=True) + (b * b).sum(-1).unsqueeze(-2) - 2 * a @ b.transpose(-1, -2)).clamp_min(0)


def repulsion_penalty(keypoints: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor, radius: float) -> torch.Tensor:
    """Penalty on keypoints of different cells closer than ``radius`` px, weighted by both scores.

    keypoints (B,N,2) px, scores (B,N), mask (B,N) cells taken into account. Returns the sum over pairs of
    ``s_i s_j (1 - d_ij / radius)_+`` divided by the number of cells: zero when no two points meet.
    """
    d = torch.cdist(keypoints, keypoints)
    pair = mask.unsqueeze(1) & mask.unsqueeze(2)
    pair &= ~torch.eye(d.shape[-1], dtype=torch.bool, device=d.device)
    overlap = F.relu(1.0 - d / radius) * pair
    weighted = overlap * scores.unsqueeze(1) * scores.unsqueeze(2)
    return weighted.sum() / 2 / mask.sum().clamp_min(1)


def suppression_penalty(keypoints: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor,
                        radius: float) -> torch.Tensor:
    """Penalty on the score of each keypoint that has a higher-scoring keypoint of another cell within ``radius`` px.

    A learned non-maximum suppression: unlike ``repulsion_penalty`` it moves no keypoint and leaves the stronger
    of two neighbours alone. keypoints (B,N,2) px, scores (B,N), mask (B,N). Returns the sum over keypoints of
    ``s_i max_j (1 - d_ij / radius)_+`` over stronger neighbours ``j``, divided by the number of cells.
    """
    with torch.no_grad():
        d = torch.cdist(keypoints, keypoints)
        stronger = (scores.unsqueeze(1) > scores.unsqueeze(2)) & mask.unsqueeze(1) & mask.unsqueeze(2)
        overlap = (F.relu(1.0 - d / radius) * stronger).amax(dim=2)
    return (overlap * scores * mask).sum() / mask.sum().clamp_min(1)


def saturation_penalty(offset_logits: torch.Tensor, bound: float) -> torch.Tensor:
    """Mean squared excess of |pre-tanh| over ``bound``: keeps offsets where tanh still has a gradient."""
    return (F.relu(offset_logits.abs() - bound) ** 2).mean()


def soft_codes(raw: torch.Tensor, k: int, gain: float) -> torch.Tensor:
    """Soft k-of-D codes: LML of each descriptor standardised over its channels, times ``gain``.

    Standardising a row is a monotonic map, so the top-k bits at inference are unchanged; it fixes
    the LML's softness independently of the raw output scale, which is tiny at initialisation and
    would otherwise leave every code near k/D and the triplet loss without signal.
    """
    from zippypoint.binary_desc.lml import lml_projection

    mean = raw.mean(dim=-1, keepdim=True)
    std = raw.std(dim=-1, keepdim=True).clamp_min(1e-6)
    return lml_projection((raw - mean) / std * gain, k)


def border_mask(h: int, w: int, rings: int, device) -> torch.Tensor:
    m = torch.zeros(h, w, dtype=torch.bool, device=device)
    m[rings : h - rings, rings : w - rings] = True
    return m.flatten()


def homographic_losses(out_s: dict, out_t: dict, homography: torch.Tensor, cfg: LossConfig,
                       image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Returns a dict of scalar losses (``total`` included) and diagnostics."""
    width, height = image_size
    kp_s, kp_t = _flatten_points(out_s["keypoints"]), _flatten_points(out_t["keypoints"])
    sc_s, sc_t = out_s["scores"].flatten(1), out_t["scores"].flatten(1)
    b, n, _ = kp_s.shape
    hc, wc = out_s["scores"].shape[-2:]

    # warp source keypoints into the target image
    warped = norm_to_pixel(apply_homography(homography, pixel_to_norm(kp_s, width, height)), width, height)
    inside = (warped[..., 0] >= 0) & (warped[..., 0] <= width - 1) & (warped[..., 1] >= 0) & (warped[..., 1] <= height - 1)
    not_border = border_mask(hc, wc, cfg.border_cells, kp_s.device).unsqueeze(0)
    visible = inside & not_border

    dist = torch.cdist(warped, kp_t)  # (B,N,N) source -> target distances in px
    d_min, j_star = dist.min(dim=2)
    valid = visible & (d_min < cfg.match_radius)
    zero = kp_s.sum() * 0.0

    n_valid = valid.sum().clamp_min(1)
    loc_loss = (d_min * valid).sum() / n_valid

    # UnsuperPoint score loss: reward high scores where points are repeatable (below-mean distance)
    sc_t_assoc = torch.gather(sc_t, 1, j_star)
    if valid.any():
        d_mean = d_min[valid].mean().detach()
        score_loss = (((sc_t_assoc + sc_s) * (d_min - d_mean)) * valid).sum() / n_valid
    else:
        score_loss = zero

    # score consistency: target score map sampled at the warped source points vs the source score
    sc_t_at_w = sample_cell_map(out_t["scores"], warped).squeeze(-1)
    n_vis = visible.sum().clamp_min(1)
    consistency = (((sc_t_at_w - sc_s) ** 2) * visible).sum() / n_vis

    # descriptors: k-of-D codes (soft LML or hard with LML gradients); distances in unit-vector units
    k = cfg.descriptor_ones
    g = cfg.descriptor_gain
    codes = straight_through_codes if cfg.descriptor_forward == "hard" else soft_codes
    pts_s, pts_w, pts_t = (kp_s, warped, kp_t)
    if cfg.detach_descriptor_points:
        pts_s, pts_w, pts_t = kp_s.detach(), warped.detach(), kp_t.detach()
    raw_a = sample_map(out_s["descriptors"], pts_s, width, height)
    raw_p = sample_map(out_t["descriptors"], pts_w, width, height)
    raw_n = sample_map(out_t["descriptors"], pts_t, width, height)
    anchor, positive, negatives = codes(raw_a, k, g), codes(raw_p, k, g), codes(raw_n, k, g)
    scale2 = 1.0 / k
    d2_pos = ((anchor - positive) ** 2).sum(-1) * scale2
    d2_neg_all = _sq_dist(anchor, negatives) * scale2
    too_close = dist < cfg.negative_radius
    if cfg.descriptor_loss == "triplet":
        d_pos = (d2_pos + 1e-12).sqrt()
        d_neg_all = (d2_neg_all + 1e-12).sqrt()
        d_neg = d_neg_all.masked_fill(too_close, float("inf")).min(dim=2).values
        d_neg = torch.where(torch.isfinite(d_neg), d_neg, d_neg_all.max(dim=2).values)
        per_point = F.relu(d_pos - d_neg + cfg.margin)
    else:
        # the positive against every target point at least negative_radius away
        neg_logits = (-d2_neg_all / cfg.temperature).masked_fill(too_close, float("-inf"))
        logits = torch.cat([(-d2_pos / cfg.temperature).unsqueeze(-1), neg_logits], dim=-1)
        per_point = -torch.log_softmax(logits, dim=-1)[..., 0]
    desc_loss = (per_point * visible).sum() / n_vis

    extra = {}
    if cfg.repulsion_weight > 0:
        extra["repulsion"] = 0.5 * (repulsion_penalty(kp_s, sc_s, not_border.expand(b, -1), cfg.repulsion_radius)
                                    + repulsion_penalty(kp_t, sc_t, not_border.expand(b, -1), cfg.repulsion_radius))
    if cfg.suppression_weight > 0:
        extra["suppression"] = 0.5 * (
            suppression_penalty(kp_s, sc_s, not_border.expand(b, -1), cfg.suppression_radius)
            + suppression_penalty(kp_t, sc_t, not_border.expand(b, -1), cfg.suppression_radius))
    if cfg.saturation_weight > 0 and "offset_logits" in out_s:
        extra["saturation"] = 0.5 * (saturation_penalty(out_s["offset_logits"], cfg.saturation_bound)
                                     + saturation_penalty(out_t["offset_logits"], cfg.saturation_bound))
    total = (cfg.location_weight * loc_loss + cfg.descriptor_weight * desc_loss
             + cfg.score_weight * score_loss + cfg.consistency_weight * consistency)
    total = total + cfg.repulsion_weight * extra.get("repulsion", zero) + cfg.saturation_weight * extra.get("saturation", zero)
    total = total + cfg.suppression_weight * extra.get("suppression", zero)
    with torch.no_grad():
        hit = _hit_rate(d2_pos, d2_neg_all, too_close, visible)
        # what Hamming matching at inference meets: top-k codes of the same raw descriptors
        ha, hp, hn = hard_codes(raw_a, k), hard_codes(raw_p, k), hard_codes(raw_n, k)
        hamming_hit = _hit_rate(((ha - hp) ** 2).sum(-1), _sq_dist(ha, hn), too_close, visible)
    return {
        "total": total,
        "location": loc_loss.detach(),
        "descriptor": desc_loss.detach(),
        "score": score_loss.detach(),
        "consistency": consistency.detach(),
        "valid_fraction": valid.float().mean(),
        "mean_distance": (d_min * valid).sum().detach() / n_valid,
        "descriptor_hit_rate": hit,
        "hamming_hit_rate": hamming_hit,
        **{k: v.detach() for k, v in extra.items()},
    }


def _hit_rate(d2_pos: torch.Tensor, d2_neg_all: torch.Tensor, too_close: torch.Tensor, visible: torch.Tensor):
    """Share of visible anchors whose positive is strictly closer than every negative (ties are misses)."""
    d2_neg = d2_neg_all.masked_fill(too_close, float("inf")).min(dim=2).values
    return ((d2_pos < d2_neg) & visible).sum() / visible.sum().clamp_min(1)
