"""ANA sums on the uniform grid, without one term per threshold and element.

Inputs are in steps: ``u = (x - mu) / step``, noise scale ``sigma = s / step``, level index ``k`` in ``[qmin, qmax]``
and threshold ``k + 0.5`` for ``k`` in ``[qmin, qmax - 1]``. Each kernel returns, per element,

    value = qmin + sum_k F((u - k - 0.5) / sigma)     the expected level index ("expectation" forward)
    slope = sum_k f((u - k - 0.5) / sigma) / sigma    d value / du, which is also d y / d x

- uniform and triangular noise: closed forms (sums of arithmetic progressions over the thresholds inside the support),
  exact and O(1) per element for any ``sigma``; the uniform slope takes the larger one-sided derivative at kinks.
- normal and logistic noise: a window of ``window_width`` thresholds starting at the first one at or above
  ``u - radius * sigma``; those below it count fully, those above not at all, so the tails beyond ``radius`` scales
  (mass < 2e-7 per side, see :mod:`zippypoint.quant.noise`) are dropped. The window is capped at all thresholds.
  From ``SMOOTH_SIGMA`` (about one step) on, inputs out of the noise's reach of both range ends skip the window:
  the sums over a uniform grid are then ``u`` and 1 to within 3e-7 (Poisson summation), and only inputs near the
  ends of the range pay for a window.

All work happens in chunks of the flattened input so the working set stays bounded: small chunks on CPU, where
they stay in cache, and large ones on accelerators, where every chunk costs kernel launches.
"""

from __future__ import annotations

import math

import torch

from zippypoint.quant.noise import get_noise

CHUNK_ELEMENTS = 1 << 16  # elements of the (chunk x window) working set of the windowed sums, on CPU
CLOSED_FORM_CHUNK = 1 << 17  # elements per chunk of the closed forms (about 15 temporaries each), on CPU
ACCELERATOR_CHUNK_FACTOR = 1 << 8  # both budgets grow by this factor off the CPU

# Noise scale (in steps) from which the unbounded-grid identities value = u, slope = 1 hold to 3e-7 (grid_sums).
SMOOTH_SIGMA = {"normal": 0.9, "logistic": 1.0}

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def window_width(noise: str, sigma: float, n_thresholds: int) -> int:
    """Thresholds a window visits for noise of scale ``sigma`` steps: ``floor(2 * radius * sigma) + 1``, capped.

    The window starts at the first threshold at or above ``u - radius * sigma``; the threshold after its end is then
    more than ``radius * sigma`` above ``u``, so every threshold within reach of the noise is inside.
    """
    width = math.floor(2.0 * get_noise(noise).radius * sigma) + 1
    return max(1, min(width, n_thresholds))


def _count_le(v: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """Level index of the hard stair at ``v``: ``qmin`` plus the thresholds ``<= v``."""
    return (torch.floor(v - 0.5) + 1.0).clamp_(qmin, qmax)


def _count_lt(v: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """``qmin`` plus the thresholds ``< v``."""
    return torch.ceil(v - 0.5).clamp_(qmin, qmax)


def _uniform(u, sigma, qmin, qmax, need_value, need_grad):
    # Thresholds in (a, b] are passed by the noise support [a, b] = [u - sigma, u + sigma]; each adds
    # F = (b - t) / (2 sigma) and f / sigma = 1 / (2 sigma).
    a, b = u - sigma, u + sigma
    ca, cb = _count_le(a, qmin, qmax), _count_le(b, qmin, qmax)
    n = cb - ca
    value = slope = None
    if need_value:
        # sum_{j<n} (b - ca - 0.5 - j), with b - ca written from u to stay local and precise.
        first = (u - ca) + sigma - 0.5
        value = ca + (n * first - 0.5 * n * (n - 1.0)) / (2.0 * sigma)
    if need_grad:
        n_left = _count_lt(b, qmin, qmax) - _count_lt(a, qmin, qmax)  # thresholds in [a, b)
        slope = torch.maximum(n, n_left) / (2.0 * sigma)
    return value, slope


def _progression_square_sum(d, n):
    """``sum_{j<n} (d + j)^2``."""
    return n * d * d + d * n * (n - 1.0) + n * (n - 1.0) * (2.0 * n - 1.0) / 6.0


def _triangular(u, sigma, qmin, qmax, need_value, need_grad):
    # Below u (t in (a, u]): F = 1 - (t - a)^2 / (2 sigma^2), f / sigma = (t - a) / sigma^2.
    # Above u (t in (u, b]): F = (b - t)^2 / (2 sigma^2),     f / sigma = (b - t) / sigma^2.
    a, b = u - sigma, u + sigma
    ca, cu, cb = _count_le(a, qmin, qmax), _count_le(u, qmin, qmax), _count_le(b, qmin, qmax)
    n1, n2 = cu - ca, cb - cu
    d1 = (ca - u) + sigma + 0.5  # t - a of the first threshold below u, growing by 1
    e2 = (u - cu) + sigma - 0.5  # b - t of the first threshold above u, shrinking by 1
    value = slope = None
    inv2 = 1.0 / (sigma * sigma)
    if need_value:
        below = n1 - 0.5 * inv2 * _progression_square_sum(d1, n1)
        above = 0.5 * inv2 * _progression_square_sum(e2 - (n2 - 1.0), n2)
        value = ca + below + above
    if need_grad:
        slope = inv2 * (n1 * d1 + 0.5 * n1 * (n1 - 1.0) + n2 * e2 - 0.5 * n2 * (n2 - 1.0))
    return value, slope


def _windowed(u, sigma, qmin, qmax, noise, need_value, need_grad):
    dist = get_noise(noise)
    n_thr = qmax - qmin
    sigma_max = float(sigma.max()) if isinstance(sigma, torch.Tensor) else sigma
    width = window_width(noise, sigma_max, n_thr)
    offsets = torch.arange(width, dtype=u.dtype, device=u.device)
    if width == n_thr:
        first = torch.full_like(u, float(qmin))
    else:
        first = torch.ceil(u - dist.radius * sigma - 0.5).clamp_(qmin, qmax - width)
    col = sigma[:, None] if isinstance(sigma, torch.Tensor) else sigma
    z = (u - first - 0.5)[:, None] - offsets  # (u - t) for each window threshold t, in steps
    value = slope = None
    if noise == "normal":
        z.mul_(_INV_SQRT2 / col)  # z / (sigma sqrt 2)
        if need_value:
            value = first + 0.5 * width + 0.5 * torch.erf(z).sum(-1)
        if need_grad:
            slope = torch.exp_(z.square_().neg_()).sum(-1) * (_INV_SQRT_2PI / sigma)
    elif noise == "logistic":
        p = torch.sigmoid_(z.div_(col))
        if need_value:
            value = first + p.sum(-1)
        if need_grad:
            slope = (p * (1.0 - p)).sum(-1) / sigma
    else:
        raise ValueError(f"no windowed sum for noise {noise!r}")
    return value, slope


def _chunk_factor(u: torch.Tensor) -> int:
    return 1 if u.device.type == "cpu" else ACCELERATOR_CHUNK_FACTOR


def _chunked(kernel, u, sigma, chunk, need_value, need_grad):
    """Run ``kernel(u_chunk, sigma_chunk)`` over chunks of flat ``u``; returns full ``(value, slope)``."""
    value = torch.empty_like(u) if need_value else None
    slope = torch.empty_like(u) if need_grad else None
    for start in range(0, u.numel(), chunk):
        sl = slice(start, start + chunk)
        v, g = kernel(u[sl], sigma[sl] if isinstance(sigma, torch.Tensor) else sigma)
        if need_value:
            value[sl] = v
        if need_grad:
            slope[sl] = g
    return value, slope


def grid_sums(
    u: torch.Tensor,
    sigma: float | torch.Tensor,
    qmin: int,
    qmax: int,
    noise: str,
    *,
    need_value: bool,
    need_grad: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Expected level index and its slope for flat ``u`` ``[M]``; ``sigma`` > 0, a float or ``[M]``.

    Returns ``(value, slope)``, each ``[M]`` or ``None`` when not asked for.
    """
    if noise in ("uniform", "triangular"):
        # Beyond the support's reach of the range every threshold is passed or not at all; clamping there changes
        # nothing and keeps infinities out of the closed forms (0 * inf). NaN stays NaN.
        u = torch.clamp(u, qmin - sigma - 1.0, qmax + sigma + 1.0)
        closed_form = _uniform if noise == "uniform" else _triangular

        def kernel(uc, sc):
            return closed_form(uc, sc, qmin, qmax, need_value, need_grad)

        return _chunked(kernel, u, sigma, CLOSED_FORM_CHUNK * _chunk_factor(u), need_value, need_grad)

    dist = get_noise(noise)
    sigma_max = float(sigma.max()) if isinstance(sigma, torch.Tensor) else sigma
    chunk = max(1, CHUNK_ELEMENTS * _chunk_factor(u) // window_width(noise, sigma_max, qmax - qmin))

    def kernel(uc, sc):
        return _windowed(uc, sc, qmin, qmax, noise, need_value, need_grad)

    # Poisson summation: over an unbounded grid, sum_k f((u - k - 0.5) / sigma) / sigma = 1 + 2 sum_{m >= 1}
    # phi(2 pi m sigma) cos(2 pi m (u - 0.5)), phi the noise's characteristic function, and the expected index is u
    # up to phi(2 pi sigma) / pi. Once sigma >= SMOOTH_SIGMA those terms are below 3e-7, so inputs farther than the
    # truncation radius from both ends of the range get value u and slope 1 without visiting any threshold.
    far = (
        (u - qmin >= dist.radius * sigma) & (qmax - u >= dist.radius * sigma) & (sigma >= SMOOTH_SIGMA[noise])
    )
    if not isinstance(far, torch.Tensor) or not bool(far.any()):
        return _chunked(kernel, u, sigma, chunk, need_value, need_grad)
    near = (~far).nonzero().squeeze(1)
    sigma_near = sigma[near] if isinstance(sigma, torch.Tensor) else sigma
    v_near, g_near = _chunked(kernel, u[near], sigma_near, chunk, need_value, need_grad)
    value = slope = None
    if need_value:
        value = u.clone()
        value[near] = v_near
    if need_grad:
        slope = torch.ones_like(u)
        slope[near] = g_near
    return value, slope
