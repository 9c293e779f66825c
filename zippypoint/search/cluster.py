"""C-BRED-style reduction: similar graphs cost and learn alike, so the candidates are clustered on their graph
features (log MACs per precision, params, depth, descriptor map size) and one representative per cluster (the
member nearest the centre) goes on to the expensive measurements."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FEATURES = ("params", "gmac_binary", "gmac_int8", "gmac_float", "convs", "desc_map_mfloats")


def feature_matrix(features: Sequence[dict[str, float]]) -> np.ndarray:
    """(N, F) standardised log features (columns with no spread are left at 0)."""
    x = np.log1p(np.array([[f[k] for k in FEATURES] for f in features], np.float64))
    spread = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


def kmeans(x: np.ndarray, k: int, *, iters: int = 100, seed: int = 0) -> np.ndarray:
    """Cluster labels (N,) by Lloyd's k-means with k-means++ seeding (deterministic for a seed)."""
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min([((x - c) ** 2).sum(1) for c in centres], axis=0)
        centres.append(x[rng.choice(n, p=d2 / d2.sum())] if d2.sum() > 0 else x[rng.integers(n)])
    c = np.array(centres)
    labels = np.zeros(n, np.int64)
    for _ in range(iters):
        labels = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
        new = np.array([x[labels == j].mean(0) if (labels == j).any() else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return labels


def representatives(x: np.ndarray, labels: np.ndarray, must: Sequence[int] = ()) -> list[int]:
    """One index per cluster: the member nearest its centre, or an index of ``must`` that lies in it."""
    reps = []
    for j in np.unique(labels):
        members = np.flatnonzero(labels == j)
        forced = [i for i in must if i in members]
        if forced:
            reps.append(int(forced[0]))
            continue
        centre = x[members].mean(0)
        reps.append(int(members[((x[members] - centre) ** 2).sum(1).argmin()]))
    return sorted(reps)


def pareto_front(latency: Sequence[float], accuracy: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both (lower latency, higher accuracy), by latency."""
    order = np.argsort(np.asarray(latency), kind="stable")
    front, best = [], -np.inf
    for i in order:
        if accuracy[i] > best:
            front.append(int(i))
            best = accuracy[i]
    return front
