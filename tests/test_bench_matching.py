"""Matching throughput helpers: synthetic descriptor sets, the throughput table, its script."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zippypoint.bench.matching import OPENCV, as_pairs, make_pair, matching_throughput
from zippypoint.binary_desc.matcher import match_hamming

REPO = Path(__file__).resolve().parents[1]


def numpy_bruteforce(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Reference mutual NN: XOR + popcount on every pair, the first minimum in each row and column."""
    dist = np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(-1)
    fwd, bwd = dist.argmin(axis=1), dist.argmin(axis=0)
    rows = np.flatnonzero(bwd[fwd] == np.arange(len(a)))
    return np.stack([rows, fwd[rows]], axis=1)


def test_pairs_have_64_ones_and_true_matches():
    a, b = make_pair(200, overlap=0.5, swaps=4, seed=3)
    assert a.shape == b.shape == (200, 32) and a.dtype == np.uint8
    ones = lambda d: np.unpackbits(d, axis=1, bitorder="little").sum(1)  # noqa: E731
    assert (ones(a) == 64).all() and (ones(b) == 64).all()
    pairs = numpy_bruteforce(a, b)
    assert len(pairs) >= 100  # the perturbed copies are found


@pytest.mark.parametrize("n", [1, 7, 300])
def test_numpy_reference_equals_our_mutual_matcher(n):
    a, b = make_pair(n, seed=n)
    np.testing.assert_array_equal(numpy_bruteforce(a, b), match_hamming(a, b, ratio=None))


def test_as_pairs_sorts_opencv_matches():
    import cv2

    a, b = make_pair(64, seed=1)
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(a, b)
    pairs = as_pairs(list(reversed(matches)))
    assert pairs.dtype == np.int64 and (np.diff(pairs[:, 0]) > 0).all()


def test_make_pair_refuses_bad_arguments():
    with pytest.raises(ValueError):
        make_pair(0)
    with pytest.raises(ValueError):
        make_pair(10, overlap=1.5)


def test_matching_throughput_rows():
    rows = matching_throughput((64, 128), runs=2, warmup=1)
    assert [r["n"] for r in rows].count(64) == 3 and len(rows) == 6
    for r in rows:
        assert r["median_ms"] <= r["p90_ms"] and r["runs"] == 2
        assert r["matchings_per_s"] == pytest.approx(1000 / r["median_ms"])
        if r["same_pairs_as_opencv"] is not None:  # same mutual-NN semantics, same pairs
            assert r["same_pairs_as_opencv"], r["matcher"]
    assert all(r["speedup_vs_opencv"] == pytest.approx(1.0) for r in rows if r["matcher"] == OPENCV)


def test_bench_matcher_script_still_runs():
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_matcher.py"), "--sizes", "64",
                          "--repeats", "1"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "OpenCV BFMatcher crossCheck" in out.stdout and "NO" not in out.stdout.split("|")


@pytest.mark.slow
def test_gap_variants_script_runs(tmp_path, shared_data):
    """The architecture what-if benchmark exports and times two variants (tens of seconds)."""
    import json

    from zippypoint.methods.peer_weights import FETCH_COMMAND, weights_path

    if not weights_path("xfeat").is_file():  # the script times XFeat beside our variants
        pytest.skip(f"XFeat weights are not in the cache; fetch them with `{FETCH_COMMAND}` (.ci/run does)")

    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_gap_variants.py"), "--variants",
                          "base,desc-h8", "--sizes", "64x48", "--runs", "1", "--calibration-count", "2",
                          "--calibration-dir", str(shared_data / "train-images"),
                          "--out", str(tmp_path / "gap.json")], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads((tmp_path / "gap.json").read_text())
    assert set(results["latency"]["64x48"]) == {"base", "desc-h8"}
    # the network's cost at 640x480 (docs/design.md §1), and the SuperPoint-style descriptor head removes the H/4 convs
    assert results["variants"]["base"]["gmac_640x480"] == pytest.approx(40.7, abs=0.1)
    assert results["variants"]["desc-h8"]["gmac_640x480"] < 20
