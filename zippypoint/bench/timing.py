"""Timing statistics and a clock for staged calls (numpy only).

All times are milliseconds from ``time.perf_counter``. The statistics are robust to the outliers a shared
machine produces: the median is the headline, p90 shows the spread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np


def summarize_ms(samples: Sequence[float]) -> dict[str, float | int]:
    """Median, p90, mean, min and max of ``samples`` (ms) plus their count; p90 uses linear interpolation."""
    values = np.asarray(samples, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"expected a non-empty 1-D sequence of times, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("times contain NaN or Inf")
    return {
        "median_ms": float(np.median(values)),
        "p90_ms": float(np.percentile(values, 90)),
        "mean_ms": float(values.mean()),
        "min_ms": float(values.min()),
        "max_ms": float(values.max()),
        "runs": int(values.size),
    }


def fps(median_ms: float) -> float:
    """Frames per second of a per-frame median time (ms)."""
    if not median_ms > 0:
        raise ValueError(f"median time must be positive, got {median_ms}")
    return 1000.0 / median_ms


class StageClock:
    """Times consecutive stages of one call: ``clock.lap("network")`` closes the stage that ran since the
    previous lap (or since construction). ``total_ms`` spans all laps."""

    def __init__(self) -> None:
        self._start = self._last = time.perf_counter()
        self.stages: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = self.stages.get(stage, 0.0) + (now - self._last) * 1e3
        self._last = now

    @property
    def total_ms(self) -> float:
        return (self._last - self._start) * 1e3


def time_call(fn: Callable[[], object]) -> tuple[object, float]:
    """Run ``fn()`` once; returns (its result, elapsed ms)."""
    t0 = time.perf_counter()
    result = fn()
    return result, (time.perf_counter() - t0) * 1e3
