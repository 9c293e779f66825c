"""Limited Multi-Label (LML) projection: the training-time relaxation of "keep the top k bits".

``y = sigmoid(x + nu)`` with one scalar ``nu`` per row chosen so that ``sum(y) = k``
(Amos, Koltun, Kolter 2019). ``nu`` is found by bisection on a bracket derived from the k-th and
(k+1)-th largest values, finished by safeguarded Newton steps; the backward pass differentiates the
constraint implicitly, so no bisection step is kept in the autograd graph.
"""

from __future__ import annotations

import math

import torch

# Bisection narrows every bracket below this width, so nu starts within 5e-3 of the root. A
# Newton step then maps an error e to at most 0.5 * exp(e) * e**2 (for a sum of sigmoids
# |f''| <= f' and f' changes by at most a factor exp(e) over e): 5e-3 -> 1.3e-5 -> 8e-11 -> 3e-21,
# so three steps reach float64 precision.
_BRACKET_TOL = 1e-2
_NEWTON_STEPS = 3
_MAX_BISECTIONS = 128


def _solve_nu(x: torch.Tensor, k: int) -> torch.Tensor:
    """Per-row ``nu`` [R, 1] with ``sum(sigmoid(x + nu)) = k`` for float64 ``x`` [R, D]."""
    d = x.shape[-1]
    top = torch.topk(x, k + 1, dim=-1, sorted=False).values
    kth_and_next = torch.topk(top, 2, dim=-1, largest=False).values  # (k+1)-th, k-th largest
    # At nu = lo at most k - 1 values exceed sigmoid(-log(d - k)) = 1 / (d - k + 1), so sum <= k;
    # at nu = hi the k + 1 largest are each >= sigmoid(log k) = k / (k + 1), so sum >= k.
    lo = -kth_and_next[:, 1:2] - math.log(d - k)
    hi = -kth_and_next[:, 0:1] + math.log(k)
    # Every row takes the step count of the batch's widest bracket; after the Newton steps a
    # row's result does not depend on the rest of the batch beyond float64 rounding.
    width = float((hi - lo).max())
    steps = min(_MAX_BISECTIONS, max(0, math.ceil(math.log2(max(width, _BRACKET_TOL) / _BRACKET_TOL))))
    buf = torch.empty_like(x)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        below = torch.add(x, mid, out=buf).sigmoid_().sum(-1, keepdim=True) < k
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    nu = 0.5 * (lo + hi)
    for _ in range(_NEWTON_STEPS):
        y = torch.add(x, nu, out=buf).sigmoid_()
        excess = y.sum(-1, keepdim=True) - k
        slope = (y * (1 - y)).sum(-1, keepdim=True)
        newton = nu - excess / slope
        # Nearly saturated rows (slope ~ 0) jump far out of the bracket: bisect those instead.
        # Others are clamped, since a root at a bracket end can round to just outside it.
        sane = (slope > 0) & ((newton - nu).abs() <= hi - lo)
        below = excess < 0
        lo = torch.where(below, nu, lo)
        hi = torch.where(below, hi, nu)
        nu = torch.where(sane, torch.minimum(torch.maximum(newton, lo), hi), 0.5 * (lo + hi))
    return nu


class _LMLFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, k: int) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1]).to(torch.float64)
        nu = _solve_nu(rows, k)
        y = torch.sigmoid(rows + nu).reshape(x.shape).to(x.dtype)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: torch.Tensor):
        (y,) = ctx.saved_tensors
        h = y * (1 - y)
        # Implicit differentiation of sum(y) = k: the gradient is projected onto sum(dy) = 0.
        h_sum = h.sum(-1, keepdim=True)
        g = (h * grad_y).sum(-1, keepdim=True) / h_sum.clamp_min(torch.finfo(h.dtype).tiny)
        return h * (grad_y - g), None


def lml_projection(x: torch.Tensor, k: int = 64) -> torch.Tensor:
    """Project each row of ``x`` [..., D] onto {y in (0, 1)^D : sum(y) = k} via y = sigmoid(x + nu).

    Args:
        x: floating tensor [..., D]; every value must be finite.
        k: number of ones the relaxation targets, 0 < k < D.

    Returns:
        Tensor like ``x`` whose rows sum to ``k``; differentiable (implicit backward).
        Rows whose values are separated by huge gaps saturate to exact 0/1 (zero gradient).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x: expected a floating dtype, got {x.dtype}")
    if x.ndim == 0:
        raise ValueError("x: expected shape [..., D], got a scalar")
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k: expected int, got {type(k).__name__}")
    d = x.shape[-1]
    if not 0 < k < d:
        raise ValueError(f"k: expected 0 < k < D = {d}, got {k}")
    if x.numel() == 0:
        return x * 0  # keeps the graph so an empty batch still backpropagates (zeros)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x: expected finite values, got NaN or Inf")
    return _LMLFunction.apply(x, k)
