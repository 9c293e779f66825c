"""ANA stair quantisers: STE special cases, gradients against finite differences, fast grid path against the
general stair, hard limit, stochastic strategy, argument checks."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from zippypoint.quant import ana_grid
from zippypoint.quant.ana import STRATEGIES, ana_grid_quantize, ana_sign, ana_stair
from zippypoint.quant.noise import NOISES, get_noise

NOISE_NAMES = sorted(NOISES)
F64 = torch.float64


def _grad(fn, x: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Output of ``fn(x, *args, **kwargs)`` and d sum(output) / dx."""
    x = x.detach().clone().requires_grad_()
    y = fn(x, *args, **kwargs)
    (g,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), g


def _grid_levels(step: float, qmin: int, qmax: int):
    levels = torch.arange(qmin, qmax + 1, dtype=F64) * step
    thresholds = (torch.arange(qmin, qmax, dtype=F64) + 0.5) * step
    return levels, thresholds


# ---------------------------------------------------------------------------------------------------------------
# Classic STE variants as special cases


def test_sign_uniform_scale_one_is_clipped_ste():
    x = torch.tensor([-3.0, -1.0 - 1e-6, -1.0, -0.7, -1e-9, 0.0, 1e-9, 0.3, 1.0, 1.0 + 1e-6, 2.5], dtype=F64)
    x = torch.cat([x, torch.randn(200, dtype=F64) * 1.5])
    y, g = _grad(lambda t: ana_sign(t, noise="uniform", strategy="mode", mu=0.0, scale=1.0), x)
    assert torch.equal(g, (x.abs() <= 1).to(F64))  # including x = +-1, where clipped latent weights sit
    assert torch.equal(y, torch.where(x >= 0, 1.0, -1.0).to(F64))
    assert y[x == 0].item() == 1.0  # sign(0) = +1


def test_sign_triangular_is_approxsign():
    # ApproxSign (Bi-Real Net): forward 2x + x^2 on [-1, 0), 2x - x^2 on [0, 1), derivative 2 - 2|x| on |x| <= 1.
    # Our backward is delta * f = 2 * (1 - |x|), the same function; the expectation forward is its antiderivative.
    x = torch.linspace(-1.5, 1.5, 301, dtype=F64)
    y, g = _grad(lambda t: ana_sign(t, noise="triangular", strategy="expectation", mu=0.0, scale=1.0), x)
    approx_sign_grad = torch.where(x.abs() <= 1, 2 - 2 * x.abs(), torch.zeros_like(x))
    approx_sign = torch.where(x < 0, 2 * x + x * x, 2 * x - x * x)
    approx_sign = torch.where(x.abs() >= 1, x.sign(), approx_sign)
    torch.testing.assert_close(g, approx_sign_grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(y, approx_sign, rtol=0, atol=1e-12)


@pytest.mark.parametrize("s", [0.25, 1.0, 3.0])
def test_sign_logistic_is_tanh(s):
    # 2 F(x/s) - 1 = tanh(x / (2 s)) for the logistic CDF, so the gradient 2 f(x/s) / s is tanh's derivative.
    x = torch.linspace(-6, 6, 241, dtype=F64)
    y, g = _grad(lambda t: ana_sign(t, noise="logistic", strategy="expectation", mu=0.0, scale=s), x)
    ref_y, ref_g = _grad(lambda t: torch.tanh(t / (2 * s)), x)
    torch.testing.assert_close(y, ref_y, rtol=0, atol=1e-12)
    torch.testing.assert_close(g, ref_g, rtol=0, atol=1e-12)


def test_grid_uniform_half_step_is_identity_ste():
    step, qmin, qmax = 0.05, -128, 127
    k = torch.arange(qmin - 5, qmax + 6, dtype=F64)
    x = torch.cat([k * step, (k + 0.5) * step, torch.rand(500, dtype=F64) * 16 - 8])  # levels exactly, too
    inside = (x >= qmin * step) & (x <= qmax * step)
    for strategy in ("mode", "expectation"):
        y, g = _grad(
            lambda t, s=strategy: ana_grid_quantize(
                t, step, qmin, qmax, noise="uniform", strategy=s, mu=0.0, scale=step / 2
            ),
            x,
        )
        assert torch.equal(g, inside.to(F64)), strategy
    # The expectation with half-step uniform noise is the clipped identity: the full-precision forward.
    torch.testing.assert_close(y, x.clamp(qmin * step, qmax * step), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# Backward = derivative of the expectation forward


@pytest.mark.parametrize("noise", NOISE_NAMES)
def test_general_stair_gradient_matches_finite_differences(noise):
    levels = torch.tensor([-2.0, -0.5, 0.0, 1.5, 4.0], dtype=F64)  # unequal gaps
    thresholds = torch.tensor([-1.0, -0.2, 0.9, 2.0], dtype=F64)
    x = (torch.rand(64, dtype=F64, generator=torch.Generator().manual_seed(1)) * 6 - 3).requires_grad_()
    for mu, s in ((0.0, 0.7), (0.3, 1.6), (-0.2, 0.25)):
        assert torch.autograd.gradcheck(
            lambda t, mu=mu, s=s: ana_stair(
                t, levels, thresholds, noise=noise, strategy="expectation", mu=mu, scale=s
            ),
            (x,),
            eps=1e-6,
            atol=1e-6,
        )


@pytest.mark.parametrize("noise", NOISE_NAMES)
def test_sign_and_grid_gradients_match_finite_differences(noise):
    gen = torch.Generator().manual_seed(2)
    x = (torch.rand(64, dtype=F64, generator=gen) * 4 - 2).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda t: ana_sign(t, noise=noise, strategy="expectation", mu=0.1, scale=0.8),
        (x,),
        eps=1e-6,
        atol=1e-6,
    )
    step = 0.1
    xg = (torch.rand(128, dtype=F64, generator=gen) * 3 - 1.5).requires_grad_()
    for s in (0.3 * step, 1.7 * step, 6.0 * step):
        # Truncated normal/logistic tails: the backward drops well under 1e-6 of slope.
        assert torch.autograd.gradcheck(
            lambda t, s=s: ana_grid_quantize(
                t, step, -10, 10, noise=noise, strategy="expectation", mu=0.02, scale=s
            ),
            (xg,),
            eps=1e-6,
            atol=1e-5,
        )


@pytest.mark.parametrize("strategy", ["mode", "random"])
def test_backward_is_the_same_for_every_strategy(strategy):
    x = torch.randn(300, dtype=F64, generator=torch.Generator().manual_seed(3))
    for noise in NOISE_NAMES:
        _, g_ref = _grad(
            lambda t, n=noise: ana_sign(t, noise=n, strategy="expectation", mu=0.1, scale=0.5), x
        )
        _, g = _grad(lambda t, n=noise: ana_sign(t, noise=n, strategy=strategy, mu=0.1, scale=0.5), x)
        torch.testing.assert_close(g, g_ref, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------------
# Hard limit and strategies


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("noise", NOISE_NAMES)
def test_zero_scale_is_hard_stair_with_zero_gradient(noise, strategy):
    levels = torch.tensor([-1.0, 0.0, 2.0], dtype=F64)
    thresholds = torch.tensor([-0.5, 0.5], dtype=F64)
    x = torch.tensor([-1.0, -0.5, -0.2, 0.5, 0.7, 3.0], dtype=F64)
    kw = dict(noise=noise, strategy=strategy, scale=0.0)
    y, g = _grad(ana_stair, x, levels, thresholds, mu=0.2, **kw)
    # Thresholds compare with x - mu; H(0) = 1 (x - mu = -0.5 lands on the upper level).
    assert y.tolist() == [-1.0, -1.0, 0.0, 0.0, 0.0, 2.0]
    assert torch.equal(g, torch.zeros_like(x))
    y, g = _grad(ana_sign, x, mu=0.0, **kw)
    assert torch.equal(y, torch.where(x >= 0, 1.0, -1.0).to(F64)) and not g.any()
    y, g = _grad(ana_grid_quantize, x, 0.5, -2, 2, mu=0.0, **kw)
    assert y.tolist() == [-1.0, -0.5, 0.0, 0.5, 0.5, 1.0] and not g.any()  # 0.25 rounds half up


@pytest.mark.parametrize("noise", NOISE_NAMES)
def test_tensor_scale_with_zeros_mixes_hard_and_smooth(noise):
    x = torch.linspace(-2, 2, 41, dtype=F64)
    scale = torch.full((41,), 0.6, dtype=F64)
    scale[::2] = 0.0
    kw = dict(noise=noise, mu=0.0)
    y, g = _grad(ana_grid_quantize, x, 0.5, -4, 4, strategy="expectation", scale=scale, **kw)
    y_hard, _ = _grad(ana_grid_quantize, x, 0.5, -4, 4, strategy="mode", scale=0.0, **kw)
    y_soft, g_soft = _grad(ana_grid_quantize, x, 0.5, -4, 4, strategy="expectation", scale=0.6, **kw)
    zero = scale == 0
    assert torch.equal(y[zero], y_hard[zero]) and not g[zero].any()
    torch.testing.assert_close(y[~zero], y_soft[~zero], rtol=0, atol=1e-12)
    torch.testing.assert_close(g[~zero], g_soft[~zero], rtol=0, atol=1e-12)


def test_mode_is_hard_stair_at_x_minus_mu():
    x = torch.randn(500, dtype=F64, generator=torch.Generator().manual_seed(4)) * 2
    for noise in NOISE_NAMES:
        y = ana_grid_quantize(x, 0.25, -8, 8, noise=noise, strategy="mode", mu=0.1, scale=0.3)
        ref = ana_grid_quantize(x - 0.1, 0.25, -8, 8, noise=noise, strategy="mode", mu=0.0, scale=0.0)
        assert torch.equal(y, ref)


@pytest.mark.parametrize("noise", NOISE_NAMES)
def test_random_strategy_mean_approaches_expectation(noise):
    samples = 4000
    x = torch.linspace(-1.5, 1.5, 25, dtype=F64)
    levels = torch.tensor([-1.0, 0.0, 0.5, 2.0], dtype=F64)
    thresholds = torch.tensor([-0.6, 0.1, 0.8], dtype=F64)
    kw = dict(noise=noise, mu=0.15, scale=0.4)
    quantisers = {  # name -> (function of (input, strategy, generator), spread of its levels)
        "stair": (lambda t, s, g: ana_stair(t, levels, thresholds, strategy=s, generator=g, **kw), 3.0),
        "sign": (lambda t, s, g: ana_sign(t, strategy=s, generator=g, **kw), 2.0),
        "grid": (lambda t, s, g: ana_grid_quantize(t, 0.5, -2, 2, strategy=s, generator=g, **kw), 2.0),
    }
    for name, (fn, spread) in quantisers.items():
        expected = fn(x, "expectation", None)
        draws = fn(x.expand(samples, -1), "random", torch.Generator().manual_seed(5))
        # Five standard errors of the mean, with half the spread of the levels as the worst-case standard deviation.
        tolerance = 5 * (spread / 2) / math.sqrt(samples)
        assert (draws.mean(0) - expected).abs().max().item() < tolerance, name
        again = fn(x.expand(samples, -1), "random", torch.Generator().manual_seed(5))
        assert torch.equal(draws, again), name  # seeded draws are reproducible
    draws = quantisers["stair"][0](x.expand(samples, -1), "random", None)
    assert set(draws.unique().tolist()) <= set(levels.tolist())


# ---------------------------------------------------------------------------------------------------------------
# Fast grid path = general stair


@pytest.mark.parametrize("noise", NOISE_NAMES)
def test_grid_fast_path_equals_general_stair(noise):
    step, qmin, qmax = 0.04, -128, 127
    levels, thresholds = _grid_levels(step, qmin, qmax)
    gen = torch.Generator().manual_seed(7)
    x = torch.cat(
        [torch.rand(1500, dtype=F64, generator=gen) * 12 - 6, torch.randn(500, dtype=F64, generator=gen)]
    )
    bounded = get_noise(noise).bounded
    # Exact for bounded noise; unbounded noise drops tails below 2e-7 per threshold (and uses the Poisson shortcut).
    atol_y, atol_g = (1e-12, 1e-12) if bounded else (1e-6 * step, 1e-6)
    for s_steps in (0.3, 0.5, 0.95, 1.0, 2.5, 4.0, 9.0):
        for mu in (0.0, 0.013):
            kw = dict(noise=noise, strategy="expectation", mu=mu, scale=s_steps * step)
            y, g = _grad(lambda t, kw=kw: ana_grid_quantize(t, step, qmin, qmax, **kw), x)
            y_ref, g_ref = _grad(lambda t, kw=kw: ana_stair(t, levels, thresholds, **kw), x)
            torch.testing.assert_close(y, y_ref, rtol=0, atol=atol_y)
            torch.testing.assert_close(g, g_ref, rtol=0, atol=atol_g)


def test_grid_windowed_sums_without_shortcut_match_stair():
    # The Poisson shortcut off: the windowed sums alone must match too, at every scale.
    step, qmin, qmax = 0.1, -30, 30
    levels, thresholds = _grid_levels(step, qmin, qmax)
    x = torch.rand(800, dtype=F64, generator=torch.Generator().manual_seed(8)) * 8 - 4
    saved = dict(ana_grid.SMOOTH_SIGMA)
    try:
        ana_grid.SMOOTH_SIGMA.update({k: math.inf for k in saved})
        for noise in ("normal", "logistic"):
            for s_steps in (1.0, 3.0):
                kw = dict(noise=noise, strategy="expectation", mu=0.0, scale=s_steps * step)
                y, g = _grad(lambda t, kw=kw: ana_grid_quantize(t, step, qmin, qmax, **kw), x)
                y_ref, g_ref = _grad(lambda t, kw=kw: ana_stair(t, levels, thresholds, **kw), x)
                torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-6 * step)
                torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-6)
    finally:
        ana_grid.SMOOTH_SIGMA.update(saved)


def test_grid_per_channel_step_and_scale():
    gen = torch.Generator().manual_seed(9)
    w = torch.randn(4, 3, 3, 3, dtype=F64, generator=gen)
    step = w.abs().amax(dim=(1, 2, 3), keepdim=True) / 127  # per output channel
    for noise in NOISE_NAMES:
        kw = dict(noise=noise, strategy="expectation", mu=0.0)
        y, g = _grad(lambda t, kw=kw: ana_grid_quantize(t, step, -127, 127, scale=1.5 * step, **kw), w)
        for c in range(4):
            sc = float(step[c])
            y_c, g_c = _grad(
                lambda t, kw=kw, sc=sc: ana_grid_quantize(t, sc, -127, 127, scale=1.5 * sc, **kw), w[c]
            )
            torch.testing.assert_close(y[c], y_c, rtol=0, atol=1e-12)
            torch.testing.assert_close(g[c], g_c, rtol=0, atol=1e-12)


def test_window_width_is_capped():
    assert ana_grid.window_width("normal", 0.5, 255) == 7  # floor(2 * 6 * 0.5) + 1
    assert ana_grid.window_width("logistic", 1.0, 255) == 33
    assert ana_grid.window_width("normal", 1000.0, 255) == 255


@settings(max_examples=40, deadline=None)
@given(
    gaps=st.lists(st.floats(0.05, 3.0), min_size=1, max_size=5),
    spacing=st.lists(st.floats(0.05, 3.0), min_size=5, max_size=5),
    x=st.lists(st.floats(-10, 10), min_size=1, max_size=20),
    noise=st.sampled_from(NOISE_NAMES),
    s=st.floats(0.01, 5.0),
    mu=st.floats(-1.0, 1.0),
)
def test_expectation_is_monotone_and_bounded(gaps, spacing, x, noise, s, mu):
    levels = torch.tensor([0.0, *gaps], dtype=F64).cumsum(0) - 1.0
    thresholds = torch.tensor(spacing[: len(gaps)], dtype=F64).cumsum(0) - 2.0
    xs = torch.tensor(sorted(x), dtype=F64)
    y, g = _grad(
        lambda t: ana_stair(t, levels, thresholds, noise=noise, strategy="expectation", mu=mu, scale=s), xs
    )
    assert (y.diff() >= -1e-12).all()
    assert (y >= levels[0] - 1e-12).all() and (y <= levels[-1] + 1e-12).all()
    assert (g >= 0).all() and torch.isfinite(g).all()


# ---------------------------------------------------------------------------------------------------------------
# Noise distributions


@pytest.mark.parametrize("noise", NOISE_NAMES)
def test_noise_pdf_is_cdf_derivative_and_samples_follow_cdf(noise):
    dist = get_noise(noise)
    z = torch.linspace(-4, 4, 161, dtype=F64)
    z = z[(z.abs() - 1).abs() > 1e-3]  # away from the uniform's kinks
    z_req = z.clone().requires_grad_()
    (dF,) = torch.autograd.grad(dist.cdf(z_req).sum(), z_req)
    torch.testing.assert_close(dist.pdf(z), dF, rtol=0, atol=1e-12)
    samples = dist.sample((20000,), dtype=F64, generator=torch.Generator().manual_seed(10))
    grid = torch.linspace(-3, 3, 25, dtype=F64)
    empirical = (samples[:, None] <= grid).to(F64).mean(0)
    assert (empirical - dist.cdf(grid)).abs().max().item() < 0.015  # ~1.5 x the DKW bound at p = 0.01
    if dist.bounded:
        assert samples.abs().max().item() <= dist.radius
    assert dist.cdf(torch.tensor(-dist.radius, dtype=F64)).item() < 1e-6


# ---------------------------------------------------------------------------------------------------------------
# Arguments, dtypes, empty and non-finite inputs


def test_unknown_noise_or_strategy_is_value_error():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="noise must be one of"):
        ana_sign(x, noise="cauchy", strategy="mode", mu=0.0, scale=1.0)
    with pytest.raises(ValueError, match="strategy must be one of"):
        ana_grid_quantize(x, 0.1, -1, 1, noise="normal", strategy="median", mu=0.0, scale=1.0)
    with pytest.raises(ValueError, match="strategy must be one of"):
        ana_stair(x, [0.0, 1.0], [0.5], noise="normal", strategy="", mu=0.0, scale=1.0)


def test_argument_checks():
    x = torch.zeros(2, 3)
    kw = dict(noise="uniform", strategy="mode", mu=0.0)
    with pytest.raises(ValueError, match="scale must be >= 0"):
        ana_sign(x, scale=-1.0, **kw)
    with pytest.raises(ValueError, match="mu must be finite"):
        ana_sign(x, noise="uniform", strategy="mode", mu=math.nan, scale=1.0)
    with pytest.raises(TypeError, match="floating dtype"):
        ana_sign(torch.zeros(3, dtype=torch.int64), scale=1.0, **kw)
    with pytest.raises(TypeError, match="torch.Tensor"):
        ana_sign([0.0], scale=1.0, **kw)
    with pytest.raises(ValueError, match="qmin must be < qmax"):
        ana_grid_quantize(x, 0.1, 3, 3, scale=0.1, **kw)
    with pytest.raises(TypeError, match="qmax must be an int"):
        ana_grid_quantize(x, 0.1, -3, 3.0, scale=0.1, **kw)
    with pytest.raises(ValueError, match="step must be > 0"):
        ana_grid_quantize(x, 0.0, -3, 3, scale=0.1, **kw)
    with pytest.raises(ValueError, match=r"broadcastable to x's shape \(2, 3\), got shape \(4,\)"):
        ana_grid_quantize(x, 0.1, -3, 3, scale=torch.ones(4), **kw)
    with pytest.raises(ValueError, match="strictly increasing"):
        ana_stair(x, [0.0, 0.0], [0.5], scale=1.0, **kw)
    with pytest.raises(ValueError, match="strictly increasing"):
        ana_stair(x, [0.0, 1.0, 2.0], [0.5, 0.5], scale=1.0, **kw)
    with pytest.raises(ValueError, match="len\\(levels\\) - 1 = 2"):
        ana_stair(x, [0.0, 1.0, 2.0], [0.5], scale=1.0, **kw)
    with pytest.raises(ValueError, match="at least 2"):
        ana_stair(x, [0.0], [], scale=1.0, **kw)


def test_empty_input_and_dtypes():
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        empty = torch.zeros(0, 4, dtype=dtype, requires_grad=True)
        y = ana_grid_quantize(empty, 0.1, -8, 8, noise="normal", strategy="expectation", mu=0.0, scale=0.1)
        assert y.shape == (0, 4) and y.dtype == dtype
        y.sum().backward()
        assert empty.grad.shape == (0, 4)
        x = torch.linspace(-1, 1, 9, dtype=dtype)
        for out in (
            ana_sign(x, noise="logistic", strategy="expectation", mu=0.0, scale=0.5),
            ana_stair(x, [-1.0, 1.0], [0.0], noise="triangular", strategy="mode", mu=0.0, scale=0.5),
            ana_grid_quantize(x, 0.25, -4, 4, noise="uniform", strategy="expectation", mu=0.0, scale=0.2),
        ):
            assert out.dtype == dtype and out.shape == x.shape


def test_non_finite_inputs():
    x = torch.tensor([math.inf, -math.inf, math.nan, 1e30], requires_grad=True)
    for noise in NOISE_NAMES:
        for scale in (0.05, 5.0):
            y, g = _grad(
                lambda t, n=noise, s=scale: ana_grid_quantize(
                    t, 0.1, -20, 20, noise=n, strategy="expectation", mu=0.0, scale=s
                ),
                x,
            )
            assert y[0] == 2.0 and y[1] == -2.0 and math.isnan(y[2]) and y[3] == 2.0
            assert g[0] == 0 and g[1] == 0 and g[3] == 0


def test_no_grad_path_matches_autograd_path():
    x = torch.randn(100, generator=torch.Generator().manual_seed(11))
    for noise in NOISE_NAMES:
        kw = dict(noise=noise, strategy="expectation", mu=0.05, scale=0.3)
        with torch.no_grad():
            a = ana_grid_quantize(x, 0.1, -50, 50, **kw)
        b = ana_grid_quantize(x.clone().requires_grad_(), 0.1, -50, 50, **kw)
        assert torch.equal(a, b.detach())
