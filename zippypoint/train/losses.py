"""Self-supervised losses of SPEC §4 (KP2D), with binary descriptors through the LML projection.

All functions take the dense outputs of the network for the source (warped) and target (original)
images and the normalised source->target homographies (B,3,3).
"""

from __future__ import annotations

import math
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

    # descriptors: LML outputs (soft 64-of-256 codes); distances in unit-vector units
    k = cfg.descriptor_ones
    g = cfg.descriptor_gain
    anchor = soft_codes(sample_map(out_s["descriptors"], kp_s, width, height), k, g)
    positive = soft_codes(sample_map(out_t["descriptors"], warped, width, height), k, g)
    negatives = soft_codes(sample_map(out_t["descriptors"], kp_t, width, height), k, g)
    scale = 1.0 / math.sqrt(k)
    d_pos = (anchor - positive).norm(dim=-1) * scale
    d_neg_all = torch.cdist(anchor, negatives) * scale
    too_close = dist < cfg.negative_radius
    d_neg = d_neg_all.masked_fill(too_close, float("inf")).min(dim=2).values
    d_neg = torch.where(torch.isfinite(d_neg), d_neg, d_neg_all.max(dim=2).values)
    if cfg.descriptor_loss == "triplet":
        per_point = F.relu(d_pos - d_neg + cfg.margin)
    else:
        # the positive against every target point at least negative_radius away
        neg_logits = (-(d_neg_all**2) / cfg.temperature).masked_fill(too_close, float("-inf"))
        logits = torch.cat([(-(d_pos**2) / cfg.temperature).unsqueeze(-1), neg_logits], dim=-1)
        per_point = -torch.log_softmax(logits, dim=-1)[..., 0]
    desc_loss = (per_point * visible).sum() / n_vis

    total = (cfg.location_weight * loc_loss + cfg.descriptor_weight * desc_loss
             + cfg.score_weight * score_loss + cfg.consistency_weight * consistency)
    with torch.no_grad():
        hit = ((d_pos < d_neg) & visible).sum() / n_vis
    return {
        "total": total,
        "location": loc_loss.detach(),
        "descriptor": desc_loss.detach(),
        "score": score_loss.detach(),
        "consistency": consistency.detach(),
        "valid_fraction": valid.float().mean(),
        "mean_distance": (d_min * valid).sum().detach() / n_valid,
        "descriptor_hit_rate": hit,
    }
