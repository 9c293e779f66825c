"""Matching throughput of 256-bit descriptors: ours (``match_hamming``) against OpenCV's brute-force matcher,
on synthetic descriptor sets with true matches.

Each set has exactly 64 of 256 bits set per descriptor (as ours); a share of the second set are perturbed
copies of the first. Repeats are interleaved across matchers (``zippypoint.timing.interleaved_times``) so that
background load spreads evenly. Matchers with the same mutual-NN semantics must return OpenCV's pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from zippypoint.timing import interleaved_times, summarize_ms

OPENCV = "OpenCV BFMatcher crossCheck"


def random_codes(rng: np.random.Generator, n: int, n_bits: int = 256, ones: int = 64) -> np.ndarray:
    """Bool bits [n, n_bits] with exactly ``ones`` set per row."""
    bits = np.zeros((n, n_bits), bool)
    np.put_along_axis(bits, np.argsort(rng.random((n, n_bits)), axis=1)[:, :ones], True, axis=1)
    return bits


def perturb(rng: np.random.Generator, bits: np.ndarray, swaps: int) -> np.ndarray:
    """Move ``swaps`` of each row's ones to zero positions (the count of ones is kept)."""
    out = bits.copy()
    for row in out:
        on, off = np.flatnonzero(row), np.flatnonzero(~row)
        row[rng.choice(on, swaps, replace=False)] = False
        row[rng.choice(off, swaps, replace=False)] = True
    return out


def make_pair(n: int, overlap: float = 0.5, swaps: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two packed uint8 [n, 32] sets; ``overlap`` of the second are the first's rows with ``swaps`` ones moved."""
    if n < 1 or not 0 <= overlap <= 1:
        raise ValueError(f"need n >= 1 and 0 <= overlap <= 1, got n={n}, overlap={overlap}")
    rng = np.random.default_rng(seed)
    bits1 = random_codes(rng, n)
    bits2 = random_codes(rng, n)
    shared = rng.choice(n, int(overlap * n), replace=False)
    bits2[rng.permutation(shared)] = perturb(rng, bits1[shared], swaps)
    return np.packbits(bits1, axis=1, bitorder="little"), np.packbits(bits2, axis=1, bitorder="little")


def opencv_crosscheck() -> Callable[[np.ndarray, np.ndarray], list]:
    import cv2

    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    return lambda a, b: matcher.match(a, b)


def as_pairs(result) -> np.ndarray:
    """Matcher output (int64 [M, 2] or a list of cv2.DMatch) as pairs sorted by the first index."""
    if isinstance(result, np.ndarray):
        return result
    pairs = np.array([(m.queryIdx, m.trainIdx) for m in result], np.int64).reshape(-1, 2)
    return pairs[np.argsort(pairs[:, 0], kind="stable")]


def default_matchers(backends: tuple[str, ...] = ("auto",)) -> dict[str, Callable]:
    """Ours with the matching of ``zippypoint match`` (mutual + ratio 0.95) and mutual only, on each of
    ``backends`` of ``match_hamming``, then OpenCV."""
    from zippypoint.binary_desc.matcher import match_hamming

    table: dict[str, Callable] = {}
    for backend in backends:
        label = "" if backend == "auto" else f" {backend}"
        table[f"ours{label} (match_hamming), mutual + ratio 0.95"] = (
            lambda a, b, be=backend: match_hamming(a, b, ratio=0.95, backend=be))
        table[f"ours{label} (match_hamming), mutual"] = lambda a, b, be=backend: match_hamming(a, b, ratio=None,
                                                                                            backend=be)
    table[OPENCV] = opencv_crosscheck()
    return table


def time_matchers(matchers: dict[str, Callable], a: np.ndarray, b: np.ndarray, runs: int,
                  warmup: int = 1) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Interleaved timing of every matcher on (a, b); ``warmup`` untimed rounds first (the first also gives
    the pairs). Returns (ms per matcher, pairs per matcher)."""
    if warmup < 0:
        raise ValueError(f"need warmup >= 0, got {warmup}")
    pairs = {name: as_pairs(fn(a, b)) for name, fn in matchers.items()}  # also the first warm-up round
    times = interleaved_times({name: (lambda r, fn=fn: fn(a, b)) for name, fn in matchers.items()}, runs,
                              warmup=max(warmup - 1, 0))
    return times, pairs


def matching_throughput(sizes: Sequence[int] = (1024, 2048, 4096), runs: int = 20, warmup: int = 1,
                        seed: int = 0, progress: Callable[[], None] | None = None,
                        matchers: Callable[[], dict[str, Callable]] = default_matchers, overlap: float = 0.5,
                        swaps: int = 8) -> list[dict]:
    """One row per (n, matcher): median/p90 ms for n x n descriptors (``make_pair(n, overlap, swaps, seed)``),
    pairs per second, speed-up over OpenCV, matches found, and whether the pairs equal OpenCV's (matchers with
    the same mutual-NN semantics). ``matchers`` builds the table of matchers (must include OPENCV)."""
    rows = []
    for n in sizes:
        a, b = make_pair(n, overlap, swaps, seed)
        table = matchers()
        times, pairs = time_matchers(table, a, b, runs, warmup)
        reference = pairs[OPENCV]
        opencv_median = float(np.median(times[OPENCV]))
        for name in table:
            stats = summarize_ms(times[name])
            rows.append({
                "n": n, "matcher": name, **stats,
                "matchings_per_s": 1000.0 / stats["median_ms"],
                "speedup_vs_opencv": opencv_median / stats["median_ms"],
                "matches": int(len(pairs[name])),
                "same_pairs_as_opencv": None if "ratio" in name else bool(np.array_equal(pairs[name], reference)),
            })
        if progress is not None:
            progress()
    return rows
