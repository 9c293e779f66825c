"""Least-squares refits of convolutions, used where a preset is cut from a wider one (scripts/prune_head.py,
scripts/shrink_stage4.py): the narrow network's new convs are fitted to reproduce the wide network's signals on
photos, so distillation starts close to the wide model instead of from noise."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ridge_conv_fit(feat: torch.Tensor, target: torch.Tensor, kernel: int, ridge: float = 1e-3
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (O, C, k, k) and biases (O,) of the stride-1, same-padded ``kernel`` x ``kernel`` conv that maps
    ``feat`` (N, C, h, w) closest to ``target`` (N, O, h, w) in least squares, with a ridge of ``ridge`` times
    the mean diagonal of the normal matrix (in float64)."""
    if feat.dim() != 4 or target.dim() != 4 or feat.shape[0] != target.shape[0] or feat.shape[2:] != target.shape[2:]:
        raise ValueError(f"feat (N, C, h, w) and target (N, O, h, w) must share N, h, w; got {tuple(feat.shape)} "
                         f"and {tuple(target.shape)}")
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be odd and >= 1, got {kernel}")
    x = F.unfold(feat.double(), kernel, padding=kernel // 2)  # (N, C*k*k, L)
    x = x.transpose(1, 2).reshape(-1, x.shape[1])
    x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], 1)
    y = target.double().flatten(2).transpose(1, 2).reshape(-1, target.shape[1])
    gram = x.T @ x
    gram += ridge * gram.diagonal().mean() * torch.eye(gram.shape[0], dtype=gram.dtype)
    sol = torch.linalg.solve(gram, x.T @ y)  # (C*k*k + 1, O)
    weight = sol[:-1].T.reshape(target.shape[1], feat.shape[1], kernel, kernel).float()
    return weight.contiguous(), sol[-1].float().contiguous()


def relative_error(approx: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-channel mean squared error of ``approx`` over the variance of ``target`` (both (N, C, h, w))."""
    return (approx - target).pow(2).mean(dim=(0, 2, 3)) / target.var(dim=(0, 2, 3)).clamp_min(1e-12)
