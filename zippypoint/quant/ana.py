"""Additive noise annealing (ANA): stair quantisers smoothed by input noise, with noise-shaped gradients.

A stair has increasing levels ``q_0 < ... < q_{N-1}`` and increasing thresholds ``theta_1 < ... < theta_{N-1}``::

    stair(x) = q_0 + sum_i delta_i H(x - theta_i),   delta_i = q_i - q_{i-1},   H(0) = 1, so sign(0) = +1.

ANA perturbs the input with noise of location ``mu`` and scale ``s`` (``n`` standardised, see
:mod:`zippypoint.quant.noise`), writing ``z_i = (x - theta_i - mu) / s``::

    forward "expectation"   q_0 + sum_i delta_i F(z_i)        = E_n[stair(x - mu - s n)]
    forward "mode"          stair(x - mu)                     the noise at its mode
    forward "random"        stair(x - mu - s n)               one fresh n per element
    backward (all three)    sum_i delta_i f(z_i) / s
    s == 0                  stair(x - mu), zero gradient

Sign convention: the sampled level is ``stair(x - mu - s n)``, the one whose mean is exactly the expectation formula
(``P(x - theta - mu - s n >= 0) = F(z)``); a positive ``mu`` raises every threshold by ``mu``. The noises here are
symmetric, so this is also ``stair(x + e)`` with ``e`` of location ``-mu`` and scale ``s``.

"mode" is the level reached when the noise takes its most likely value. With equal level gaps that is also the most
likely level, except near the ends of the range when ``s`` is large: an outer level owns an unbounded interval and
can collect more mass than the interval holding ``x - mu``.

"expectation" works with any noise, but its forward is not the quantised network until ``s`` reaches 0, so use it
only with a schedule that anneals the noise to 0 (validation always runs the hard stair).

Uniform noise has a CDF with kinks at ``z = +-1``; there the backward takes the larger one-sided derivative. Sign with
``s = 1`` is then exactly the clipped STE ``1[|x| <= 1]`` (latent binary weights clipped to +-1 keep their gradient),
and a grid with half-step noise is exactly the identity on ``[qmin, qmax] * step``, also at inputs lying on a level.

Parameters ``mu``, ``scale`` (and ``step`` of the grid) are Python numbers or tensors broadcastable to ``x``; they,
like the levels and thresholds, receive no gradient. Computation runs in float32 (float64 for float64 inputs) and returns ``x.dtype``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import torch

from zippypoint.quant.ana_grid import grid_sums
from zippypoint.quant.noise import NoiseDistribution, get_noise, uniform_pdf_one_sided

STRATEGIES = ("expectation", "mode", "random")

# Elements of the (chunk x thresholds) working set of the general stair: one value per element and threshold is
# never materialised for a whole tensor.
CHUNK_ELEMENTS = 1 << 16


def wants_grad(x: torch.Tensor) -> bool:
    """True when autograd will differentiate through ``x`` here (also used by ``zippypoint.quant.quantizers``)."""
    return isinstance(x, torch.Tensor) and torch.is_grad_enabled() and x.requires_grad


# ----------------------------------------------------------------------------------------------------------------
# Argument checks


def _check_strategy(strategy: str) -> str:
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    return strategy


def _check_input(x: torch.Tensor) -> torch.dtype:
    """The dtype to compute in for ``x``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must have a floating dtype, got {x.dtype}")
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _param(value, name: str, x: torch.Tensor, dtype: torch.dtype, *, positive: bool, nonnegative: bool):
    """A float, or a tensor of ``dtype`` on ``x.device`` broadcastable to ``x``; checked finite (and >0 / >=0)."""
    if isinstance(value, torch.Tensor):
        if value.numel() == 1:
            value = float(value.detach().reshape(()).item())
        else:
            try:
                shape = torch.broadcast_shapes(value.shape, x.shape)
            except RuntimeError:
                shape = None
            if shape != x.shape:
                raise ValueError(
                    f"{name} must be a number or broadcastable to x's shape {tuple(x.shape)}, "
                    f"got shape {tuple(value.shape)}"
                )
            value = value.detach().to(device=x.device, dtype=dtype)
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"{name} must be finite, got non-finite entries")
            if positive and not bool((value > 0).all()):
                raise ValueError(f"{name} must be > 0, got minimum {float(value.min())}")
            if nonnegative and not bool((value >= 0).all()):
                raise ValueError(f"{name} must be >= 0, got minimum {float(value.min())}")
            return value
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number or a tensor, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _flat(value, x: torch.Tensor):
    """``value`` broadcast to ``x`` and flattened; floats pass through."""
    if isinstance(value, torch.Tensor):
        return value.expand(x.shape).reshape(-1)
    return value


def _chunk(value, sl: slice):
    return value[sl] if isinstance(value, torch.Tensor) else value


def _column(value):
    return value[:, None] if isinstance(value, torch.Tensor) else value


def _is_zero(scale) -> bool:
    return not isinstance(scale, torch.Tensor) and scale == 0.0


def _safe_scale(scale):
    """Zero scales replaced by 1 (their results are overwritten by the hard stair) and a mask of where they were."""
    if isinstance(scale, torch.Tensor):
        zero = scale == 0
        if bool(zero.any()):
            return torch.where(zero, torch.ones_like(scale), scale), zero
    return scale, None


def _hard_at_zero_scale(zero, hard, v, y, grad):
    """Where the scale was zero (``zero`` from :func:`_safe_scale`): the hard stair ``hard(v)`` and no gradient."""
    if zero is None:
        return y, grad
    y = torch.where(zero, hard(v), y)
    if grad is not None:
        grad = torch.where(zero, torch.zeros_like(grad), grad)
    return y, grad


def _pdf_sum(noise: NoiseDistribution, z: torch.Tensor, weights=None) -> torch.Tensor:
    """``sum_i w_i f(z_i)`` over the last axis; the larger one-sided derivative for uniform noise."""
    if noise.name == "uniform":
        left, right = uniform_pdf_one_sided(z)
        if weights is not None:
            left, right = left * weights, right * weights
        return torch.maximum(left.sum(-1), right.sum(-1))
    f = noise.pdf(z)
    return (f if weights is None else f * weights).sum(-1)


def _cdf_sum(noise: NoiseDistribution, z: torch.Tensor, weights=None) -> torch.Tensor:
    F = noise.cdf(z)
    return (F if weights is None else F * weights).sum(-1)


# ----------------------------------------------------------------------------------------------------------------
# General stair


class _Ana(torch.autograd.Function):
    """Autograd of every ANA quantiser: ``compute(x, *args, need_grad)`` gives the forward value and the
    elementwise derivative; ``x`` gets ``grad_out * derivative``, the parameters get no gradient."""

    @staticmethod
    def forward(ctx, compute, x, *args):
        y, grad = compute(x, *args, True)
        ctx.save_for_backward(grad)
        ctx.num_args = len(args)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        return (None, grad_out * grad, *(None,) * ctx.num_args)


def _run(compute, x: torch.Tensor, *args) -> torch.Tensor:
    """``compute``'s value, through :class:`_Ana` when ``x`` needs a gradient."""
    if wants_grad(x):
        return _Ana.apply(compute, x, *args)
    return compute(x, *args, False)[0]


def _stair_compute(x, levels, thresholds, noise, strategy, mu, scale, generator, need_grad):
    dtype = _check_input(x)
    noise_dist = get_noise(noise)
    _check_strategy(strategy)
    mu = _param(mu, "mu", x, dtype, positive=False, nonnegative=False)
    scale = _param(scale, "scale", x, dtype, positive=False, nonnegative=True)
    levels = _vector(levels, "levels", x, dtype)
    thresholds = _vector(thresholds, "thresholds", x, dtype)
    if levels.numel() < 2:
        raise ValueError(f"levels must hold at least 2 values, got {levels.numel()}")
    if thresholds.numel() != levels.numel() - 1:
        raise ValueError(
            f"thresholds must hold len(levels) - 1 = {levels.numel() - 1} values, got {thresholds.numel()}"
        )
    if not bool((levels.diff() > 0).all()):
        raise ValueError("levels must be strictly increasing")
    if thresholds.numel() > 1 and not bool((thresholds.diff() > 0).all()):
        raise ValueError("thresholds must be strictly increasing")

    v = (x.to(dtype) - mu).reshape(-1)  # the thresholds are compared with x - mu

    def hard(w):
        out = levels[torch.searchsorted(thresholds, w.contiguous(), right=True)]  # count of theta_i <= w
        return torch.where(torch.isnan(w), w, out)

    if _is_zero(scale):
        y = hard(v)
        return y.reshape(x.shape).to(x.dtype), (torch.zeros_like(x) if need_grad else None)

    s = _flat(scale, x)
    s, zero = _safe_scale(s)
    deltas = levels.diff()
    y = None
    if strategy == "mode":
        y = hard(v)
    elif strategy == "random":
        n = noise_dist.sample(v.shape, dtype=dtype, device=v.device, generator=generator)
        y = hard(v - s * n)

    need_value = strategy == "expectation"
    value = torch.empty_like(v) if need_value else None
    grad = torch.empty_like(v) if need_grad else None
    step = max(1, CHUNK_ELEMENTS // thresholds.numel())
    for start in range(0, v.numel(), step):
        sl = slice(start, start + step)
        sc = _chunk(s, sl)
        z = (v[sl, None] - thresholds) / _column(sc)
        if need_value:
            value[sl] = _cdf_sum(noise_dist, z, deltas)
        if need_grad:
            grad[sl] = _pdf_sum(noise_dist, z, deltas) / sc
    if need_value:
        y = value + levels[0]
    y, grad = _hard_at_zero_scale(zero, hard, v, y, grad)
    y = y.reshape(x.shape).to(x.dtype)
    return y, (grad.reshape(x.shape).to(x.dtype) if need_grad else None)


def _vector(values, name: str, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        t = values.detach().to(device=x.device, dtype=dtype)
    elif isinstance(values, Sequence) and not isinstance(values, str):
        t = torch.tensor([float(v) for v in values], dtype=dtype, device=x.device)
    else:
        raise TypeError(f"{name} must be a 1-D tensor or a sequence of numbers, got {type(values).__name__}")
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite")
    return t


def ana_stair(
    x: torch.Tensor,
    levels: torch.Tensor | Sequence[float],
    thresholds: torch.Tensor | Sequence[float],
    *,
    noise: str,
    strategy: str,
    mu: float | torch.Tensor,
    scale: float | torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """ANA on a general stair; see the module docstring for the forward and backward formulas.

    Args:
        x: any-shape floating tensor.
        levels: ``[N]`` strictly increasing output levels, ``N >= 2``.
        thresholds: ``[N-1]`` strictly increasing thresholds; ``x - mu >= thresholds[i]`` reaches ``levels[i+1]``.
        noise: ``"uniform" | "triangular" | "normal" | "logistic"``.
        strategy: ``"expectation" | "mode" | "random"``.
        mu, scale: noise location and scale (>= 0) in input units; numbers or tensors broadcastable to ``x``.
        generator: random source of the ``"random"`` strategy.

    Returns:
        Tensor shaped and typed like ``x``. Memory stays O(x.numel()): thresholds are visited in chunks.
    """
    return _run(_stair_compute, x, levels, thresholds, noise, strategy, mu, scale, generator)


# ----------------------------------------------------------------------------------------------------------------
# Sign: levels {-1, +1}, threshold 0


def _sign_compute(x, noise, strategy, mu, scale, generator, need_grad):
    dtype = _check_input(x)
    noise_dist = get_noise(noise)
    _check_strategy(strategy)
    mu = _param(mu, "mu", x, dtype, positive=False, nonnegative=False)
    scale = _param(scale, "scale", x, dtype, positive=False, nonnegative=True)
    v = x.to(dtype) - mu

    def hard(w):
        return torch.where(torch.isnan(w), w, torch.where(w >= 0, 1.0, -1.0).to(dtype))

    if _is_zero(scale):
        return hard(v).to(x.dtype), (torch.zeros_like(x) if need_grad else None)
    s, zero = _safe_scale(scale)
    z = v / s
    if strategy == "expectation":
        y = 2.0 * noise_dist.cdf(z) - 1.0
    elif strategy == "mode":
        y = hard(v)
    else:
        n = noise_dist.sample(v.shape, dtype=dtype, device=v.device, generator=generator)
        y = hard(v - s * n)
    # One threshold: the closed-support uniform pdf is already the larger one-sided derivative.
    grad = 2.0 * noise_dist.pdf(z) / s if need_grad else None
    y, grad = _hard_at_zero_scale(zero, hard, v, y, grad)
    return y.to(x.dtype), (grad.to(x.dtype) if need_grad else None)


def ana_sign(
    x: torch.Tensor,
    *,
    noise: str,
    strategy: str,
    mu: float | torch.Tensor,
    scale: float | torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """ANA sign: levels ``{-1, +1}``, threshold 0, ``sign(0) = +1``; ``x`` any shape, returned shaped like ``x``.

    With uniform noise and ``scale = 1`` the backward is the clipped STE ``1[|x - mu| <= 1]``; triangular noise gives
    ApproxSign's ``2 - 2|x|``; logistic noise gives the derivative of ``tanh(x / (2 s))``.
    """
    return _run(_sign_compute, x, noise, strategy, mu, scale, generator)


# ----------------------------------------------------------------------------------------------------------------
# Uniform grid: levels k * step for integer k in [qmin, qmax], thresholds (k + 0.5) * step


def _grid_compute(x, step, qmin, qmax, noise, strategy, mu, scale, generator, need_grad):
    dtype = _check_input(x)
    noise_dist = get_noise(noise)
    _check_strategy(strategy)
    for name, q in (("qmin", qmin), ("qmax", qmax)):
        if isinstance(q, bool) or not isinstance(q, int):
            raise TypeError(f"{name} must be an int, got {type(q).__name__}")
    if qmin >= qmax:
        raise ValueError(f"qmin must be < qmax, got qmin={qmin}, qmax={qmax}")
    step = _param(step, "step", x, dtype, positive=True, nonnegative=True)
    mu = _param(mu, "mu", x, dtype, positive=False, nonnegative=False)
    scale = _param(scale, "scale", x, dtype, positive=False, nonnegative=True)

    u = ((x.to(dtype) - mu) / step).reshape(-1)  # input in steps; threshold k sits at k + 0.5

    def hard(w):
        return (torch.floor(w - 0.5) + 1.0).clamp(qmin, qmax)  # qmin + thresholds <= w, robust near k + 0.5

    def finish(index):
        return (index.reshape(x.shape) * step).to(x.dtype)

    if _is_zero(scale):
        return finish(hard(u)), (torch.zeros_like(x) if need_grad else None)

    sigma = scale / step
    sigma = _flat(sigma, x) if isinstance(sigma, torch.Tensor) else sigma
    sigma, zero = _safe_scale(sigma)
    value, slope = grid_sums(
        u, sigma, qmin, qmax, noise, need_value=strategy == "expectation", need_grad=need_grad
    )
    if strategy == "expectation":
        index = value
    elif strategy == "mode":
        index = hard(u)
    else:
        index = hard(
            u - sigma * noise_dist.sample(u.shape, dtype=dtype, device=u.device, generator=generator)
        )
    index, slope = _hard_at_zero_scale(zero, hard, u, index, slope)
    return finish(index), (slope.reshape(x.shape).to(x.dtype) if need_grad else None)


def ana_grid_quantize(
    x: torch.Tensor,
    step: float | torch.Tensor,
    qmin: int,
    qmax: int,
    *,
    noise: str,
    strategy: str,
    mu: float | torch.Tensor,
    scale: float | torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """ANA on the uniform grid: levels ``k * step`` for integer ``k`` in ``[qmin, qmax]``, thresholds ``(k + 0.5) * step``.

    Equal to :func:`ana_stair` with those levels, without materialising ``qmax - qmin`` thresholds per element
    (see :mod:`zippypoint.quant.ana_grid`): uniform and triangular noise use exact closed forms, O(1) per element for
    any scale; normal and logistic noise sum a window of thresholds around each input and drop the tails beyond 6 / 16
    scales (mass < 2e-7 per side).

    Args:
        x: any-shape floating tensor, e.g. activations ``[B, C, H, W]``.
        step: level spacing (> 0), a number or a tensor broadcastable to ``x`` (per-channel weights: ``[C, 1, 1, 1]``).
        qmin, qmax: integer level range, ``qmin < qmax`` (e.g. -128, 127).
        noise, strategy, mu, scale, generator: as in :func:`ana_stair`; ``mu`` and ``scale`` in input units.

    Returns:
        Tensor shaped and typed like ``x``.
    """
    return _run(_grid_compute, x, step, qmin, qmax, noise, strategy, mu, scale, generator)
