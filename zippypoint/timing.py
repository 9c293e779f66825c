"""The one timing module (numpy only): interleaved timing of several calls, statistics, a clock for stages.

All times are milliseconds from ``time.perf_counter``. The statistics are robust to the outliers a shared
machine produces: the median is the headline, p90 shows the spread. ``interleaved_times`` is the loop every
benchmark uses (the speed benchmark, matching throughput, ONNX latency, the scripts in ``benchmarks/``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

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


def speedup_cell(median_ms: float, base_ms: float | None, unit: str = "") -> str:
    """A table cell ``"12.3<unit> (1.52x)"``: a median and how many times faster it is than ``base_ms``
    (the median alone where there is no base)."""
    cell = f"{median_ms:.1f}{unit}"
    return cell if base_ms is None else f"{cell} ({base_ms / median_ms:.2f}x)"


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


def interleaved_times(calls: Mapping[str, Callable[[int], object]], runs: int, *, warmup: int = 0, block: int = 1,
                      rotate: bool = False, settle: bool = False) -> dict[str, list[float]]:
    """Time ``runs`` calls of each named function (called with the run index) so that background load
    spreads over all of them alike; returns the milliseconds of every timed call, per name.

    ``warmup`` untimed calls of each come first (indices 0, 1, ...). Then ``block`` consecutive timed runs of
    one function before the next function's block; blocks of all functions alternate, and with ``rotate`` the
    order shifts by one function per block. ``settle``: one untimed call with index -1 before each block, for
    runtimes whose thread pools keep spinning after a call and would slow the next function's first call.
    """
    if runs < 1 or warmup < 0 or block < 1:
        raise ValueError(f"need runs >= 1, warmup >= 0 and block >= 1, got runs={runs}, warmup={warmup}, "
                         f"block={block}")
    names = list(calls)
    for i in range(warmup):
        for name in names:
            calls[name](i)
    times: dict[str, list[float]] = {name: [] for name in names}
    for b, start in enumerate(range(0, runs, block)):
        shift = b % len(names) if rotate and names else 0
        for name in names[shift:] + names[:shift]:
            fn = calls[name]
            if settle:
                fn(-1)
            for r in range(start, min(start + block, runs)):
                t0 = time.perf_counter()
                fn(r)
                times[name].append((time.perf_counter() - t0) * 1e3)
    return times
