"""ANA annealing: schedule windows, power-law values, refused layouts, state round trip, STE special case."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from zippypoint.quant.ana import ana_grid_quantize, ana_sign
from zippypoint.quant.annealing import (
    AnnealingConfig,
    AnnealingController,
    group_windows,
    power_law,
    ste_equivalent,
)


class DummySign(nn.Module):
    """Minimal sign quantiser following the ANA protocol."""

    def __init__(self) -> None:
        super().__init__()
        self.ana_noise, self.ana_strategy = "normal", "expectation"
        self.ana_mu, self.ana_scale, self.ana_enabled = 0.0, 0.0, False

    @property
    def ana_unit(self) -> float:
        return 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.ana_enabled:
            u = self.ana_unit
            return ana_sign(
                x,
                noise=self.ana_noise,
                strategy=self.ana_strategy,
                mu=self.ana_mu * u,
                scale=self.ana_scale * u,
            )
        return torch.where(x >= 0, 1.0, -1.0)


class DummyFakeQuant(DummySign):
    """Minimal 8-bit fake-quant following the ANA protocol."""

    step = 12.0 / 255

    @property
    def ana_unit(self) -> float:
        return self.step / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.ana_unit
        return ana_grid_quantize(
            x,
            self.step,
            -128,
            127,
            noise=self.ana_noise,
            strategy=self.ana_strategy,
            mu=self.ana_mu * u,
            scale=self.ana_scale * u,
        )


def _groups(n: int) -> list[list[nn.Module]]:
    return [[DummySign(), DummyFakeQuant()] for _ in range(n)]


# ---------------------------------------------------------------------------------------------------------------
# Windows and values


def test_windows_per_schedule():
    T, t0 = 8.0, 2.0
    expected = {
        "together": [(0, 8), (0, 8), (0, 8), (0, 8)],
        "sequential": [(0, 2), (2, 4), (4, 6), (6, 8)],
        "same_start": [(0, 2), (0, 4), (0, 6), (0, 8)],
        "same_end": [(0, 8), (2, 8), (4, 8), (6, 8)],
    }
    for schedule, windows in expected.items():
        cfg = AnnealingConfig(schedule=schedule, epochs=T, start_epoch=t0)
        ctrl = AnnealingController(_groups(4), cfg)
        assert ctrl.describe() == [(t0 + a, t0 + b) for a, b in windows], schedule
    # Output first reverses the positions; allowed where every group still ends no earlier than the ones before it.
    cfg = AnnealingConfig(schedule="same_end", order="output_first", epochs=T)
    assert AnnealingController(_groups(4), cfg).describe() == [(6, 8), (4, 8), (2, 8), (0, 8)]
    cfg = AnnealingConfig(schedule="together", order="output_first", epochs=T)
    assert AnnealingController(_groups(4), cfg).describe() == [(0, 8)] * 4


def test_power_law_values_at_chosen_epochs():
    cfg = AnnealingConfig(
        schedule="sequential", alpha=2.0, s0=2.0, mu0=1.0, s_end=0.0, mu_end=0.0, epochs=4.0, strategy="mode"
    )
    ctrl = AnnealingController(_groups(2), cfg)  # windows [0, 2], [2, 4]
    assert ctrl.values(0.0) == [(1.0, 2.0), (1.0, 2.0)]
    assert ctrl.values(1.0) == [(0.25, 0.5), (1.0, 2.0)]  # ((2 - 1) / 2)^2 = 1/4 of the start values
    assert ctrl.values(1.5) == [(0.0625, 0.125), (1.0, 2.0)]
    assert ctrl.values(2.0) == [(0.0, 0.0), (1.0, 2.0)]
    assert ctrl.values(3.0) == [(0.0, 0.0), (0.25, 0.5)]
    assert ctrl.values(10.0) == [(0.0, 0.0), (0.0, 0.0)]
    assert ctrl.values(math.inf) == [(0.0, 0.0), (0.0, 0.0)]
    assert ctrl.values(-math.inf) == [(1.0, 2.0), (1.0, 2.0)]
    # Non-zero end values and a fractional exponent.
    assert power_law(1.0, (0.0, 4.0), 3.0, 1.0, 0.5) == pytest.approx(1.0 + 2.0 * math.sqrt(0.75))
    assert power_law(0.0, (0.0, 0.0), 3.0, 1.0, 1.0) == 1.0  # an empty window has already ended


def test_step_sets_every_module():
    groups = _groups(3)
    cfg = AnnealingConfig(
        noise="logistic", strategy="mode", schedule="same_start", s0=1.5, mu0=0.5, epochs=3.0
    )
    ctrl = AnnealingController(groups, cfg)
    values = ctrl.step(1.0)
    assert values == ctrl.values(1.0)
    for group, (mu, s) in zip(groups, values, strict=True):
        for m in group:
            assert (m.ana_noise, m.ana_strategy, m.ana_enabled) == ("logistic", "mode", True)
            assert (m.ana_mu, m.ana_scale) == (mu, s)
    assert groups[0][0].ana_scale == 0.0 and groups[1][0].ana_scale == pytest.approx(0.75)
    assert ctrl.groups[2][1] is groups[2][1] and ctrl.epoch == 1.0


def test_annealed_network_goes_from_ste_to_hard():
    torch.manual_seed(0)
    sign = DummySign().train()
    ctrl = AnnealingController([[sign]], AnnealingConfig(s0=1.0, epochs=2.0, strategy="mode"))
    x = torch.linspace(-2, 2, 81, requires_grad=True)
    ctrl.step(0.0)  # uniform, s = 1, mode: the clipped STE
    (g,) = torch.autograd.grad(sign(x).sum(), x)
    assert torch.equal(g, (x.abs() <= 1).float())
    ctrl.step(1.0)  # s = 0.5: narrower gradient window, twice as tall
    (g,) = torch.autograd.grad(sign(x).sum(), x)
    assert torch.equal(g, 2 * (x.abs() <= 0.5).float())
    ctrl.step(2.0)  # s = 0: hard, no gradient
    (g,) = torch.autograd.grad(sign(x).sum(), x)
    assert not g.any()


# ---------------------------------------------------------------------------------------------------------------
# Refused layouts


@pytest.mark.parametrize("schedule", ["sequential", "same_start"])
def test_output_side_reaching_zero_first_is_refused(schedule):
    cfg = AnnealingConfig(schedule=schedule, order="output_first", epochs=6.0)
    with pytest.raises(ValueError, match="must not reach 0 before"):
        AnnealingController(_groups(3), cfg)
    # One group has nothing before it; noise that never reaches 0 blocks no gradient.
    AnnealingController(_groups(1), cfg)
    AnnealingController(
        _groups(3), AnnealingConfig(schedule=schedule, order="output_first", s_end=0.1, strategy="mode")
    )


@pytest.mark.parametrize("schedule", ["together", "same_end"])
@pytest.mark.parametrize("order", ["input_first", "output_first"])
def test_layouts_ending_together_are_allowed(schedule, order):
    ctrl = AnnealingController(_groups(5), AnnealingConfig(schedule=schedule, order=order, epochs=5.0))
    assert all(end == 5.0 for _, end in ctrl.describe())


def test_group_windows_of_no_groups():
    assert group_windows(AnnealingConfig(), 0) == []
    ctrl = AnnealingController([], AnnealingConfig())
    assert ctrl.describe() == [] and ctrl.step(3.0) == []


# ---------------------------------------------------------------------------------------------------------------
# Config and state


def test_config_from_dict_and_validation():
    cfg = AnnealingConfig.from_dict({"noise": "triangular", "schedule": "same_end", "epochs": 5, "alpha": 2})
    assert cfg.epochs == 5.0 and isinstance(cfg.epochs, float) and cfg.alpha == 2.0
    assert AnnealingConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown AnnealingConfig keys \['sigma'\]"):
        AnnealingConfig.from_dict({"sigma": 1.0})
    with pytest.raises(ValueError, match="noise must be one of"):
        AnnealingConfig(noise="cauchy")
    with pytest.raises(ValueError, match="schedule must be one of"):
        AnnealingConfig(schedule="staggered")
    with pytest.raises(TypeError, match="alpha must be a real number"):
        AnnealingConfig(alpha="1")
    with pytest.raises(ValueError, match="alpha must be > 0"):
        AnnealingConfig(alpha=0.0)
    with pytest.raises(ValueError, match="s0 must be >= 0"):
        AnnealingConfig(s0=-1.0)
    with pytest.raises(ValueError, match="epochs must be finite"):
        AnnealingConfig(epochs=math.inf)
    with pytest.raises(ValueError, match="needs noise that anneals to 0"):
        AnnealingConfig(strategy="expectation", s_end=0.5)


def test_state_dict_round_trip():
    cfg = AnnealingConfig(schedule="same_end", alpha=1.5, s0=2.0, mu0=0.3, epochs=4.0)
    a_groups, b_groups = _groups(3), _groups(3)
    a = AnnealingController(a_groups, cfg)
    a.step(2.7)
    state = a.state_dict()
    b = AnnealingController(b_groups, cfg)
    assert b.epoch is None
    b.load_state_dict(state)
    assert b.epoch == 2.7 and b.state_dict() == state
    for ga, gb in zip(a_groups, b_groups, strict=True):
        for ma, mb in zip(ga, gb, strict=True):
            assert (ma.ana_mu, ma.ana_scale, ma.ana_noise, ma.ana_strategy) == (
                mb.ana_mu,
                mb.ana_scale,
                mb.ana_noise,
                mb.ana_strategy,
            )
    fresh = AnnealingController(_groups(3), cfg)
    fresh.load_state_dict(AnnealingController(_groups(3), cfg).state_dict())  # never stepped
    assert fresh.epoch is None
    with pytest.raises(ValueError, match="differs from this one"):
        AnnealingController(_groups(3), AnnealingConfig(schedule="same_end", epochs=4.0)).load_state_dict(
            state
        )
    with pytest.raises(ValueError, match="3 groups, this controller 2"):
        AnnealingController(_groups(2), cfg).load_state_dict(state)
    with pytest.raises(ValueError, match="unexpected \\['extra'\\]"):
        b.load_state_dict({**state, "extra": 1})


def test_controller_argument_checks():
    with pytest.raises(TypeError, match="protocol: missing \\['ana_noise', 'ana_strategy'"):
        AnnealingController([[nn.Identity()]], AnnealingConfig())
    m = DummySign()
    with pytest.raises(ValueError, match="already in group 0"):
        AnnealingController([[m], [m]], AnnealingConfig())
    with pytest.raises(TypeError, match="AnnealingConfig"):
        AnnealingController([[m]], {"noise": "uniform"})
    ctrl = AnnealingController([[m]], AnnealingConfig())
    with pytest.raises(ValueError, match="NaN"):
        ctrl.step(math.nan)
    with pytest.raises(TypeError, match="epoch must be a real number"):
        ctrl.step("1")


def test_ste_equivalent_is_classic_ste():
    sign = ste_equivalent(DummySign().train())
    assert (sign.ana_noise, sign.ana_strategy, sign.ana_mu, sign.ana_scale, sign.ana_enabled) == (
        "uniform",
        "mode",
        0.0,
        1.0,
        True,
    )
    x = torch.tensor([-1.5, -1.0, -0.2, 0.0, 0.4, 1.0, 1.2], requires_grad=True)
    y = sign(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert y.tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0]
    assert g.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    fq = ste_equivalent(DummyFakeQuant())
    k = torch.arange(-130, 130, dtype=torch.float64)
    x = torch.cat([k * fq.step, (k + 0.3) * fq.step]).requires_grad_()
    (g,) = torch.autograd.grad(fq(x).sum(), x)
    assert torch.equal(g, ((x >= -128 * fq.step) & (x <= 127 * fq.step)).to(g.dtype))
