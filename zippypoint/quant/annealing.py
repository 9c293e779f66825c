"""ANA annealing: per-group windows and power-law decay of the noise location ``mu`` and scale ``s``.

A group is a layer's weight quantiser and the activation quantiser(s) after it; groups are ordered from input to
output. Each group anneals within its window ``[t_start, t_end]`` (in epochs)::

    v(t) = v0                                                            t <  t_start
         = v_end + (v0 - v_end) * ((t_end - t) / (t_end - t_start)) ** alpha    t_start <= t < t_end
         = v_end                                                         t >= t_end

Windows for ``G`` groups over ``T = epochs`` (all shifted by ``start_epoch``), where the position ``p`` of group ``g``
is ``g`` for ``order="input_first"`` and ``G - 1 - g`` for ``"output_first"``:

    together     [0, T]                  every group anneals at once
    sequential   [T p / G, T (p+1) / G]  one after another
    same_start   [0, T (p+1) / G]        all start together, the first position sharpens first
    same_end     [T p / G, T]            staggered starts, all reach the end together

Refused layouts: once an activation's noise is 0 no gradient passes it, so an output-side group must never reach zero
noise strictly before an input-side group. With ``s_end = 0`` (and ``s0 > 0``) that rules out ``"output_first"`` with
``"sequential"`` or ``"same_start"`` whenever there are 2 groups or more; ``"together"`` and ``"same_end"`` end every
group at ``T`` and are allowed in both orders. With ``s_end > 0`` the noise never reaches 0 and all layouts are
allowed. The check runs on the computed windows, so it also covers any layout added later.

Quantiser modules follow the ANA protocol (attributes ``ana_noise``, ``ana_strategy``, ``ana_mu``, ``ana_scale``,
``ana_unit``, ``ana_enabled``); ``mu`` and ``s`` are set in units of the module's ``ana_unit`` (half the level
spacing). Call :meth:`AnnealingController.step` once per epoch with the 0-based epoch about to run (fractional
epochs work for per-iteration updates): with ``epochs`` equal to the training length, the last epoch still trains
with a little noise, and validation always runs the hard quantisers anyway.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from numbers import Real
from typing import Any

from zippypoint.quant.ana import STRATEGIES
from zippypoint.quant.noise import NOISES

SCHEDULES = ("together", "sequential", "same_start", "same_end")
ORDERS = ("input_first", "output_first")

# What the controller writes on every quantiser module (ana_unit is read by the module itself).
PROTOCOL_ATTRIBUTES = ("ana_noise", "ana_strategy", "ana_mu", "ana_scale", "ana_enabled")


@dataclass(frozen=True)
class AnnealingConfig:
    """How ANA noise is shaped and annealed; ``mu``/``s`` values are in units of each module's ``ana_unit``."""

    noise: str = "uniform"  # noise shape: uniform | triangular | normal | logistic
    strategy: str = "expectation"  # training forward: expectation | mode | random
    schedule: str = "together"  # window layout: together | sequential | same_start | same_end
    order: str = (
        "input_first"  # which end of the network comes first in the layout: input_first | output_first
    )
    alpha: float = 1.0  # power-law exponent of the decay: 1 linear, > 1 drops early, < 1 drops late
    mu0: float = 0.0  # noise location before a group's window opens
    s0: float = 1.0  # noise scale before a group's window opens (uniform noise with 1.0 = the classic STE)
    mu_end: float = 0.0  # noise location once a group's window has closed
    s_end: float = 0.0  # noise scale once a group's window has closed (0: hard quantiser, no gradient)
    epochs: float = 50.0  # length T of the annealing, in epochs
    start_epoch: float = 0.0  # epoch at which the layout starts (noise stays at mu0, s0 before)

    def __post_init__(self) -> None:
        for name, allowed in (
            ("noise", tuple(NOISES)),
            ("strategy", STRATEGIES),
            ("schedule", SCHEDULES),
            ("order", ORDERS),
        ):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, got {type(value).__name__}")
            if value not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
        for name in ("alpha", "mu0", "s0", "mu_end", "s_end", "epochs", "start_epoch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real):
                raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value}")
            object.__setattr__(self, name, float(value))
        for name in ("s0", "s_end", "epochs", "start_epoch"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if self.strategy == "expectation" and self.s_end > 0:
            raise ValueError(
                "strategy 'expectation' needs noise that anneals to 0 (s_end = 0): its forward is the quantised "
                f"network only at s = 0, and validation runs the hard quantisers; got s_end = {self.s_end}"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> AnnealingConfig:
        """Build from a mapping (e.g. parsed JSON); unknown keys are a ``ValueError``."""
        if not isinstance(values, Mapping):
            raise TypeError(f"values must be a mapping, got {type(values).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown AnnealingConfig keys {unknown}; expected a subset of {known}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def group_windows(config: AnnealingConfig, num_groups: int) -> list[tuple[float, float]]:
    """``[(t_start, t_end)]`` in epochs for each of ``num_groups`` groups ordered input -> output."""
    if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 0:
        raise ValueError(f"num_groups must be a non-negative int, got {num_groups!r}")
    T, t0, G = config.epochs, config.start_epoch, num_groups
    windows = []
    for g in range(G):
        p = g if config.order == "input_first" else G - 1 - g
        start, end = {
            "together": (0.0, T),
            "sequential": (T * p / G, T * (p + 1) / G),
            "same_start": (0.0, T * (p + 1) / G),
            "same_end": (T * p / G, T),
        }[config.schedule]
        windows.append((t0 + start, t0 + end))
    return windows


def _check_zero_noise_order(config: AnnealingConfig, windows: list[tuple[float, float]]) -> None:
    if config.s_end > 0 or config.s0 == 0:
        return  # the noise never reaches 0, or is 0 everywhere from the start
    latest_end, latest_group = -math.inf, None
    for g, (_, end) in enumerate(windows):
        if end < latest_end:
            raise ValueError(
                f"schedule {config.schedule!r} with order {config.order!r} anneals group {g} to zero noise at epoch "
                f"{end:g}, before group {latest_group} (nearer the input) at epoch {latest_end:g}; once an "
                "activation's noise is 0 no gradient passes it, so output-side groups must not reach 0 before the "
                "groups feeding them. Use order 'input_first', a 'together' or 'same_end' schedule, or s_end > 0."
            )
        if end > latest_end:
            latest_end, latest_group = end, g


def power_law(t: float, window: tuple[float, float], v0: float, v_end: float, alpha: float) -> float:
    """``v0`` before the window, ``v_end`` from its end on, ``v_end + (v0 - v_end) r**alpha`` inside it."""
    start, end = window
    if t < start:
        return v0
    if t >= end:
        return v_end
    return v_end + (v0 - v_end) * ((end - t) / (end - start)) ** alpha


def _check_module(module: Any, where: str) -> None:
    missing = [name for name in PROTOCOL_ATTRIBUTES if not hasattr(module, name)]
    if missing:
        raise TypeError(
            f"{where} ({type(module).__name__}) does not follow the ANA quantiser protocol: missing {missing}"
        )


class AnnealingController:
    """Drives the ANA noise of groups of quantiser modules through the layout of an :class:`AnnealingConfig`.

    Args:
        groups: quantiser modules grouped per layer, ordered from input to output; each module appears once.
        config: the annealing configuration.
    """

    def __init__(self, groups: Sequence[Sequence[Any]], config: AnnealingConfig) -> None:
        if not isinstance(config, AnnealingConfig):
            raise TypeError(f"config must be an AnnealingConfig, got {type(config).__name__}")
        if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence):
            raise TypeError(f"groups must be a sequence of sequences of modules, got {type(groups).__name__}")
        seen: dict[int, int] = {}
        checked = []
        for g, group in enumerate(groups):
            if isinstance(group, (str, bytes)) or not isinstance(group, Sequence):
                raise TypeError(f"groups[{g}] must be a sequence of modules, got {type(group).__name__}")
            for m, module in enumerate(group):
                _check_module(module, f"groups[{g}][{m}]")
                if id(module) in seen:
                    raise ValueError(
                        f"groups[{g}][{m}] is already in group {seen[id(module)]}; a module anneals once"
                    )
                seen[id(module)] = g
            checked.append(tuple(group))
        self.config = config
        self._groups = tuple(checked)
        self._windows = group_windows(config, len(checked))
        _check_zero_noise_order(config, self._windows)
        self.epoch: float | None = None  # last epoch passed to step()

    @property
    def groups(self) -> tuple[tuple[Any, ...], ...]:
        """The quantiser modules per group, input side first."""
        return self._groups

    @property
    def num_groups(self) -> int:
        return len(self._groups)

    def describe(self) -> list[tuple[float, float]]:
        """``[(t_start, t_end)]`` per group, in epochs, input side first."""
        return list(self._windows)

    def values(self, epoch: float) -> list[tuple[float, float]]:
        """``[(mu, s)]`` per group at ``epoch`` (``inf``: after every window), in units of ``ana_unit``; changes nothing."""
        epoch = _check_epoch(epoch)
        c = self.config
        return [
            (power_law(epoch, w, c.mu0, c.mu_end, c.alpha), power_law(epoch, w, c.s0, c.s_end, c.alpha))
            for w in self._windows
        ]

    def step(self, epoch: float) -> list[tuple[float, float]]:
        """Set every module's noise for ``epoch`` (and its noise shape and strategy); returns :meth:`values`."""
        values = self.values(epoch)
        for group, (mu, s) in zip(self._groups, values, strict=True):
            for module in group:
                module.ana_noise = self.config.noise
                module.ana_strategy = self.config.strategy
                module.ana_mu = mu
                module.ana_scale = s
                module.ana_enabled = True
        self.epoch = float(epoch)
        return values

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs: the last epoch and the configuration it must match."""
        return {"epoch": self.epoch, "num_groups": self.num_groups, "config": self.config.to_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`, re-applying the saved epoch; a different config or layout is refused."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping, got {type(state).__name__}")
        expected = {"epoch", "num_groups", "config"}
        if set(state) != expected:
            raise ValueError(
                f"annealing state must have keys {sorted(expected)}; missing {sorted(expected - set(state))}, "
                f"unexpected {sorted(set(state) - expected)}"
            )
        if state["num_groups"] != self.num_groups:
            raise ValueError(
                f"saved state has {state['num_groups']} groups, this controller {self.num_groups}"
            )
        saved = AnnealingConfig.from_dict(state["config"])
        if saved != self.config:
            diff = {
                k: (v, getattr(self.config, k))
                for k, v in saved.to_dict().items()
                if getattr(self.config, k) != v
            }
            raise ValueError(f"saved annealing config differs from this one (saved, current): {diff}")
        if state["epoch"] is None:
            self.epoch = None
        else:
            self.step(state["epoch"])


def _check_epoch(epoch: float) -> float:
    """A real epoch; +-inf are allowed (before / after every window), NaN is not."""
    if isinstance(epoch, bool) or not isinstance(epoch, Real):
        raise TypeError(f"epoch must be a real number, got {type(epoch).__name__}")
    if math.isnan(epoch):
        raise ValueError("epoch must not be NaN")
    return float(epoch)


def ste_equivalent(module: Any) -> Any:
    """Set ``module`` to the classic STE as an ANA special case and return it.

    Uniform noise of scale 1 ``ana_unit`` and ``mu = 0`` with the "mode" forward: the forward is the hard quantiser
    and the backward is the clipped STE ``1[|x| <= 1]`` for sign and the identity inside ``[qmin, qmax] * step`` for
    a fake-quant grid (noise half a step wide).
    """
    _check_module(module, "module")
    module.ana_noise = "uniform"
    module.ana_strategy = "mode"
    module.ana_mu = 0.0
    module.ana_scale = 1.0
    module.ana_enabled = True
    return module
