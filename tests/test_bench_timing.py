"""Timing statistics and the stage clock of ``zippypoint.bench.timing``."""

import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zippypoint.bench.timing import StageClock, fps, summarize_ms, time_call

times = st.lists(st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=1, max_size=60)


@given(times)
def test_summary_is_ordered_and_matches_numpy(samples):
    s = summarize_ms(samples)
    assert s["runs"] == len(samples)
    assert s["min_ms"] <= s["median_ms"] <= s["p90_ms"] <= s["max_ms"]
    assert s["median_ms"] == pytest.approx(float(np.median(samples)))
    assert s["p90_ms"] == pytest.approx(float(np.percentile(samples, 90)))


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [[1.0, 2.0]], [float("inf")]])
def test_summary_refuses_empty_and_non_finite(bad):
    with pytest.raises(ValueError):
        summarize_ms(bad)


def test_fps_is_the_inverse_of_the_median():
    assert fps(40.0) == pytest.approx(25.0)
    with pytest.raises(ValueError):
        fps(0.0)


def test_stage_clock_laps_add_up_to_the_total():
    clock = StageClock()
    time.sleep(0.002)
    clock.lap("pre")
    time.sleep(0.004)
    clock.lap("network")
    clock.lap("network")  # a second lap of the same stage adds to it
    assert list(clock.stages) == ["pre", "network"]
    assert clock.stages["pre"] >= 2.0 and clock.stages["network"] >= 4.0
    assert sum(clock.stages.values()) == pytest.approx(clock.total_ms)


def test_time_call_returns_the_result():
    result, ms = time_call(lambda: 42)
    assert result == 42 and ms >= 0
