"""Standardised noise distributions for additive noise annealing (ANA).

Every distribution here is symmetric and unimodal, centred at 0 with unit scale; ANA uses it as ``mu + s * n``.
What the scale ``s`` means per distribution:

- ``uniform``: half-width (support ``[-s, s]``);
- ``triangular``: half-width of the support (``[-s, s]``, peak at 0);
- ``normal``: standard deviation;
- ``logistic``: the logistic scale (standard deviation ``s * pi / sqrt(3)``).

``radius`` is where the distribution ends for the windowed sums in :mod:`zippypoint.quant.ana`: the support for
bounded noise, and for unbounded noise the truncation point beyond which the tail mass on each side is below
``TAIL_MASS`` (normal: 5.0 scales, 2.9e-7; logistic: 14.0 scales, 8.3e-7), far below what float32 resolves in a
quantiser output.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

TAIL_MASS = 2e-7  # the most probability mass a truncated tail may drop, per side

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class NoiseDistribution:
    """A standardised (location 0, scale 1) symmetric noise: CDF, PDF, sampler and window radius."""

    name: str  # registry key
    bounded: bool  # True when the support is exactly [-radius, radius]
    radius: float  # support half-width (bounded) or truncation point in scales (unbounded)
    cdf: Callable[[torch.Tensor], torch.Tensor]  # F(z), elementwise
    pdf: Callable[[torch.Tensor], torch.Tensor]  # f(z) = F'(z), elementwise
    draw: Callable[..., torch.Tensor]  # (shape, dtype, device, generator) -> standardised samples

    def sample(
        self,
        shape: torch.Size | tuple[int, ...],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw ``shape`` independent standardised samples (reproducible with ``generator``)."""
        return self.draw(tuple(shape), dtype, device, generator)


def _open_unit(shape, dtype, device, generator) -> torch.Tensor:
    """U(0, 1) draws, strictly inside the interval so that inverse CDFs stay finite."""
    u = torch.rand(shape, dtype=dtype, device=device, generator=generator)
    eps = torch.finfo(dtype).eps
    return u.clamp(eps, 1.0 - eps)


def _uniform_cdf(z: torch.Tensor) -> torch.Tensor:
    return ((z + 1.0) * 0.5).clamp(0.0, 1.0)


def _uniform_pdf(z: torch.Tensor) -> torch.Tensor:
    # Closed support: f(+-1) = 1/2, so sign with s = 1 gives the clipped STE 1[|x| <= 1] including x = +-1 (latent
    # binary weights sit exactly there after clipping). Stairs with several thresholds use the one-sided rule in
    # ``uniform_pdf_one_sided`` instead, see zippypoint.quant.ana.
    return (z.abs() <= 1.0).to(z.dtype) * 0.5


def uniform_pdf_one_sided(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left and right derivatives of the uniform CDF at ``z``: ``(1/2 on (-1, 1], 1/2 on [-1, 1))``."""
    left = ((z > -1.0) & (z <= 1.0)).to(z.dtype) * 0.5
    right = ((z >= -1.0) & (z < 1.0)).to(z.dtype) * 0.5
    return left, right


def _uniform_draw(shape, dtype, device, generator) -> torch.Tensor:
    return torch.rand(shape, dtype=dtype, device=device, generator=generator) * 2.0 - 1.0


def _triangular_cdf(z: torch.Tensor) -> torch.Tensor:
    a = z.clamp(-1.0, 1.0)
    return torch.where(a < 0, 0.5 * (1.0 + a) ** 2, 1.0 - 0.5 * (1.0 - a) ** 2)


def _triangular_pdf(z: torch.Tensor) -> torch.Tensor:
    return (1.0 - z.abs()).clamp_min(0.0)


def _triangular_draw(shape, dtype, device, generator) -> torch.Tensor:
    # The sum of two independent U[0, 1) is triangular on [0, 2].
    u1 = torch.rand(shape, dtype=dtype, device=device, generator=generator)
    u2 = torch.rand(shape, dtype=dtype, device=device, generator=generator)
    return u1 + u2 - 1.0


def _normal_cdf(z: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(z * _SQRT_HALF))


def _normal_pdf(z: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * z * z) * _INV_SQRT_2PI


def _normal_draw(shape, dtype, device, generator) -> torch.Tensor:
    return torch.randn(shape, dtype=dtype, device=device, generator=generator)


def _logistic_pdf(z: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(z)
    return p * (1.0 - p)


def _logistic_draw(shape, dtype, device, generator) -> torch.Tensor:
    return torch.logit(_open_unit(shape, dtype, device, generator))


NOISES: dict[str, NoiseDistribution] = {
    "uniform": NoiseDistribution("uniform", True, 1.0, _uniform_cdf, _uniform_pdf, _uniform_draw),
    "triangular": NoiseDistribution(
        "triangular", True, 1.0, _triangular_cdf, _triangular_pdf, _triangular_draw
    ),
    "normal": NoiseDistribution("normal", False, 6.0, _normal_cdf, _normal_pdf, _normal_draw),
    "logistic": NoiseDistribution("logistic", False, 16.0, torch.sigmoid, _logistic_pdf, _logistic_draw),
}


def get_noise(name: str) -> NoiseDistribution:
    """The registered noise called ``name``; ``ValueError`` listing the known names otherwise."""
    if not isinstance(name, str) or name not in NOISES:
        raise ValueError(f"noise must be one of {sorted(NOISES)}, got {name!r}")
    return NOISES[name]
