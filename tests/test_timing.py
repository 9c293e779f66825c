"""Timing statistics, the stage clock and the interleaved loop of ``zippypoint.timing``."""

import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zippypoint.timing import StageClock, fps, interleaved_times, speedup_cell, summarize_ms, time_call

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


def test_interleaved_times_order_blocks_rotation_and_settling():
    log = []
    calls = {name: (lambda r, name=name: log.append(f"{name}{r}")) for name in ("a", "b")}
    times = interleaved_times(calls, 3, warmup=1, block=2, rotate=True, settle=True)
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    # warm-up; block 1: a then b, each settled by an untimed call (-1); block 2 rotated: b then a
    assert log == ["a0", "b0", "a-1", "a0", "a1", "b-1", "b0", "b1", "b-1", "b2", "a-1", "a2"]
    log.clear()
    interleaved_times(calls, 2)
    assert log == ["a0", "b0", "a1", "b1"]  # plain round robin


def test_interleaved_times_refuses_bad_counts():
    for kwargs in ({"runs": 0}, {"runs": 1, "warmup": -1}, {"runs": 1, "block": 0}):
        with pytest.raises(ValueError):
            interleaved_times({"a": lambda r: None}, **kwargs)


def test_speedup_cell_shows_the_median_and_the_base_over_it():
    assert speedup_cell(10.04, 25.1, " ms") == "10.0 ms (2.50x)"
    assert speedup_cell(10.04, None) == "10.0"  # no base: the median alone
