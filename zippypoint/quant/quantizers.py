"""Quantiser modules used inside the network: sign (binary) and 8-bit fake-quant.

Every quantiser follows one protocol so the ANA annealing controller can drive it without
knowing the network (see ``zippypoint.quant.annealing``):

- ``ana_enabled``: False -> classic straight-through estimator (hard forward, clipped gradient);
- ``ana_noise``, ``ana_strategy``: noise family and forward strategy of ANA;
- ``ana_mu``, ``ana_scale``: noise location and scale in units of ``ana_unit``;
- ``ana_unit``: half the level spacing in input units (1 for sign, step/2 for fake-quant),
  so ``uniform`` noise with scale 1 reproduces the classic STE.

``enabled=False`` turns a quantiser into the identity: that is how the full-precision presets share
the exact topology (and state-dict keys) of the mixed-precision ones.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zippypoint.quant.ana import ana_grid_quantize, ana_sign, wants_grad


class _QuantizerBase(nn.Module):
    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled
        self.ana_enabled = False
        self.ana_noise = "uniform"
        self.ana_strategy = "mode"
        self.ana_mu = 0.0
        self.ana_scale = 1.0

    @property
    def ana_unit(self) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    def _use_ana(self) -> bool:
        return self.training and self.ana_enabled

    def extra_repr(self) -> str:
        ana = f", ana={self.ana_noise}/{self.ana_strategy} mu={self.ana_mu:.3g} s={self.ana_scale:.3g}" if self.ana_enabled else ""
        return f"enabled={self.enabled}{ana}"


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """sign with sign(0) = +1; gradient is the clipped STE 1[|x| <= 1]."""
    clipped = x.clamp(-1.0, 1.0)
    hard = torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))
    return clipped + (hard - clipped).detach()


class SignQuantizer(_QuantizerBase):
    """Binarise to {-1, +1} (sign(0) = +1). Used on binary-conv inputs and latent weights."""

    @property
    def ana_unit(self) -> float:
        return 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if self._use_ana():
            return ana_sign(
                x,
                noise=self.ana_noise,
                strategy=self.ana_strategy,
                mu=self.ana_mu * self.ana_unit,
                scale=self.ana_scale * self.ana_unit,
            )
        return sign_ste(x)


def fake_quant_ste(x: torch.Tensor, step: float | torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """Round to ``k*step`` with ``k`` in [qmin, qmax]; gradient passes inside the range only."""
    lo, hi = qmin * step, qmax * step
    clipped = torch.clamp(x, lo, hi) if not torch.is_tensor(step) else torch.maximum(torch.minimum(x, hi), lo)
    hard = torch.round(clipped / step) * step
    if not wants_grad(x):
        return hard  # exactly the levels (the STE sum below can be an ulp off them)
    return clipped + (hard - clipped).detach()


class ActivationQuantizer(_QuantizerBase):
    """8-bit symmetric fake-quant with a fixed range ``±qmax`` (docs/design.md §1: scale = 2*qmax/255).

    Levels are ``k*scale`` for integer ``k`` in [-128, 127] so that zero is exact and the
    integer codes are int8 (this is what ONNX QuantizeLinear with zero point 0 represents).
    """

    def __init__(self, qmax: float, bits: int = 8, enabled: bool = True) -> None:
        super().__init__(enabled)
        if qmax <= 0:
            raise ValueError(f"qmax must be positive, got {qmax}")
        self.qmax = float(qmax)
        self.bits = bits
        self.step = 2.0 * self.qmax / (2**bits - 1)
        self.qmin_int = -(2 ** (bits - 1))
        self.qmax_int = 2 ** (bits - 1) - 1

    @property
    def ana_unit(self) -> float:
        return self.step / 2.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if self._use_ana():
            return ana_grid_quantize(
                x,
                self.step,
                self.qmin_int,
                self.qmax_int,
                noise=self.ana_noise,
                strategy=self.ana_strategy,
                mu=self.ana_mu * self.ana_unit,
                scale=self.ana_scale * self.ana_unit,
            )
        return fake_quant_ste(x, self.step, self.qmin_int, self.qmax_int)

    def extra_repr(self) -> str:
        return f"qmax={self.qmax}, bits={self.bits}, " + super().extra_repr()


def hardswish_input_max(out_max: float) -> float:
    """Smallest r with hardswish(r) >= out_max (hardswish(x) = x for x >= 3)."""
    return out_max if out_max >= 3.0 else (-3.0 + math.sqrt(9.0 + 24.0 * out_max)) / 2.0


class HardSwishInputQuantizer(ActivationQuantizer):
    """8-bit fake-quant of a conv output that feeds hard-swish, on the grid an integer runtime uses there.

    An int8 conv writes uint8 codes; hard-swish then runs on those codes. The grid covers ``[-3, r]``
    (hard-swish is 0 below -3; ``hardswish(r)`` is the top of the following ``±qmax`` range) with 256 levels
    ``k*step``, ``k`` in ``[-z, 255 - z]``, ``step = 3/z``, so -3 and 0 are levels (uint8 zero point ``z``).
    Training with it makes the mixed-precision network compute what the int8 model computes.
    For ``qmax = 6``: ``z = 85``, ``step = 3/85``, range ``[-3, 6]``.
    """

    def __init__(self, qmax: float, enabled: bool = True) -> None:
        super().__init__(qmax, 8, enabled)
        top = hardswish_input_max(qmax * 127 / 127.5)  # the output grid's top level, 127 * 2*qmax/255
        zero_point = round(3.0 * 255 / (top + 3.0))
        self.step = 3.0 / zero_point
        self.qmin_int = -zero_point
        self.qmax_int = 255 - zero_point

    @property
    def zero_point(self) -> int:
        """The uint8 code of 0."""
        return -self.qmin_int

    def extra_repr(self) -> str:
        return f"range=[{self.qmin_int * self.step:.4g}, {self.qmax_int * self.step:.4g}], " + super().extra_repr()


class WeightQuantizer(_QuantizerBase):
    """Per-output-channel symmetric int8 fake-quant of conv weights (scale = max|w| / 127).

    The scale is recomputed from the current weights on every call (no state to drift), and is
    treated as a constant for the gradient (STE inside the range, which is the whole range).
    ANA is not applied to weights of int8 layers: their rounding error is tiny next to the
    activations', and annealing it would only slow training.
    """

    def __init__(self, bits: int = 8, enabled: bool = True) -> None:
        super().__init__(enabled)
        self.bits = bits
        self.qmax_int = 2 ** (bits - 1) - 1

    @property
    def ana_unit(self) -> float:
        return 0.5

    def scale(self, weight: torch.Tensor) -> torch.Tensor:
        flat = weight.detach().abs().reshape(weight.shape[0], -1)
        amax = flat.amax(dim=1).clamp_min(1e-12)
        return (amax / self.qmax_int).reshape(-1, *([1] * (weight.dim() - 1)))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return weight
        step = self.scale(weight)
        return fake_quant_ste(weight, step, -self.qmax_int, self.qmax_int)
