"""The KP2D HPatches protocol (docs/design.md §6), one function per metric, plus MMA and homography AUC.

Both images of a pair are resized to the same (W, H) ``size`` and ``H`` maps image-1 pixels to
image-2 pixels. Points are (x, y) float pixels; ``scores`` rank them. The conventions below are the
KP2D ones, kept as they are so that numbers compare with published tables:

- "inside" (repeatability, shared points): ``0 <= x < W and 0 <= y < H``;
- "visible" (matching score): ``0 <= x <= W - 1 and 0 <= y <= H - 1``;
- top-k keeps the k highest scores, after the visibility filter where there is one, listed in
  ascending score order (see ``top_k_indices``);
- repeatability counts nearest neighbours within ``<= 3`` px, the matching score reprojections
  ``< 3`` px, correctness a mean corner error ``<= eps``;
- matching is plain nearest neighbour: mutual for the homography, one-way for the matching score.

Beyond KP2D, the matches that miss at 3 px are split by cause (``wrong_matches``): "descriptor" where image 2
has another of its shared top-k points within 3 px of the warped first point (the right point was there and the
descriptor chose another), "detector" where it has none (no point to match). MMA@3 and the two shares sum to 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zippypoint.methods.matching import match_mutual, match_one_way

DISTANCE_THRESHOLD = 3.0  # px, repeatability and matching score
CORRECTNESS_THRESHOLDS = (1, 3, 5)  # px, mean corner error
MMA_THRESHOLDS = tuple(range(1, 11))  # px
AUC_THRESHOLDS = (3, 5, 10)  # px, mean corner error
WRONG_MATCH_CAUSES = ("descriptor", "detector")  # why a match misses at 3 px (see ``wrong_matches``)
RANSAC_THRESHOLD = 3.0  # px
RANSAC_ITERATIONS = 5000
# The protocol runs RANSAC once; on a handful of pairs that single run decides a pair by chance when its
# corner error sits near a threshold (one changed match reorders the samples). Correctness is also reported
# as the mean over several orders of the matches (the first is the protocol's own order): by default as many
# as a budget of RANSAC runs per method and resolution allows, at most RANSAC_ORDERS (256 on 6 pairs).
RANSAC_ORDERS = 256
RANSAC_ORDER_BUDGET = 1536


def default_ransac_orders(pairs: int) -> int:
    """Orders per pair for ``pairs`` pairs: RANSAC_ORDER_BUDGET runs in all, between 1 and RANSAC_ORDERS."""
    return max(1, min(RANSAC_ORDERS, RANSAC_ORDER_BUDGET // max(pairs, 1)))


def warp_points(points: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """Apply a 3x3 homography to (x, y) points: [N, 2] -> float64 [N, 2]."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ homography.T
    return homogeneous[:, :2] / homogeneous[:, 2:]


def inside(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Mask of points with ``0 <= x < W`` and ``0 <= y < H``: bool [N]."""
    w, h = size
    return (points[:, 0] >= 0) & (points[:, 0] < w) & (points[:, 1] >= 0) & (points[:, 1] < h)


def visible(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Mask of points with ``0 <= x <= W - 1`` and ``0 <= y <= H - 1``: bool [N]."""
    w, h = size
    return (points[:, 0] >= 0) & (points[:, 0] <= w - 1) & (points[:, 1] >= 0) & (points[:, 1] <= h - 1)


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, listed in ascending score order: int64 [min(k, N)].

    The order is KP2D's (sort ascending, keep the last k) and it matters: it decides which point
    wins a nearest-neighbour tie (the first listed) and the sequence that RANSAC samples from.
    Equal scores keep their input order (stable sort), so results do not depend on the machine.
    """
    order = np.argsort(np.asarray(scores, dtype=np.float64), kind="stable")
    return order[len(order) - min(k, len(order)) :].astype(np.int64)


def shared_indices(
    keypoints: np.ndarray, scores: np.ndarray, homography: np.ndarray, size: tuple[int, int], top_k: int
) -> np.ndarray:
    """Indices of the top-k points whose warp by ``homography`` is inside the other image."""
    candidates = np.flatnonzero(inside(warp_points(keypoints, homography), size))
    return candidates[top_k_indices(scores[candidates], top_k)]


@dataclass(frozen=True)
class Repeatability:
    repeatability: float  # (c1 + c2) / (n1 + n2); NaN without points
    localization_error: float  # mean distance of the counted neighbours, px; NaN if none counted
    n1: int  # image-1 points inside image 2 after top-k
    n2: int  # image-2 points inside image 1 after top-k


def repeatability(
    keypoints1: np.ndarray,
    scores1: np.ndarray,
    keypoints2: np.ndarray,
    scores2: np.ndarray,
    homography: np.ndarray,
    size: tuple[int, int],
    top_k: int,
    threshold: float = DISTANCE_THRESHOLD,
) -> Repeatability:
    """Repeatability and localisation error, measured in image 2.

    Points of image 1 are warped into image 2 and kept if inside; points of image 2 are kept if
    their inverse warp is inside image 1; then the top-k of each. A point counts when its nearest
    neighbour in the other set is within ``threshold``.
    """
    warped1 = warp_points(keypoints1, homography)
    keep1 = np.flatnonzero(inside(warped1, size))
    a = warped1[keep1[top_k_indices(scores1[keep1], top_k)]]
    keep2 = np.flatnonzero(inside(warp_points(keypoints2, np.linalg.inv(homography)), size))
    b = np.asarray(keypoints2, dtype=np.float64)[keep2[top_k_indices(scores2[keep2], top_k)]]
    if len(a) + len(b) == 0:
        return Repeatability(float("nan"), float("nan"), 0, 0)
    count, total_distance = 0, 0.0
    if len(a) and len(b):
        distances = point_distances(a, b)
        for nearest in (distances.min(axis=1), distances.min(axis=0)):
            counted = nearest <= threshold
            count += int(counted.sum())
            total_distance += float(nearest[counted].sum())
    rep = count / (len(a) + len(b))
    loc = total_distance / count if count else float("nan")
    return Repeatability(rep, loc, len(a), len(b))


def image_corners(size: tuple[int, int]) -> np.ndarray:
    """The four corner pixels (0,0), (0,H-1), (W-1,0), (W-1,H-1) as (x, y): float64 [4, 2]."""
    w, h = size
    return np.array([[0, 0], [0, h - 1], [w - 1, 0], [w - 1, h - 1]], dtype=np.float64)


def corner_error(true_homography: np.ndarray, estimated: np.ndarray | None, size: tuple[int, int]) -> float:
    """Mean distance between the image-1 corners mapped by the true and the estimated H; inf if none."""
    if estimated is None:
        return float("inf")
    corners = image_corners(size)
    error = np.linalg.norm(warp_points(corners, true_homography) - warp_points(corners, estimated), axis=1)
    return float(error.mean()) if np.isfinite(error).all() else float("inf")


def estimate_homography(points1: np.ndarray, points2: np.ndarray, seed: int = 0) -> np.ndarray | None:
    """RANSAC homography (3 px, 5000 iterations) from matched points [M, 2]; None if it fails or M < 4."""
    import cv2

    if len(points1) < 4:
        return None
    # OpenCV's RANSAC seeds a generator of its own, so the estimate is already repeatable; seeding
    # the global generator as well keeps it so in builds that would draw from that one.
    cv2.setRNGSeed(seed)
    estimated, _ = cv2.findHomography(
        np.asarray(points1, dtype=np.float64),
        np.asarray(points2, dtype=np.float64),
        cv2.RANSAC,
        RANSAC_THRESHOLD,
        maxIters=RANSAC_ITERATIONS,
    )
    if estimated is None or estimated.shape != (3, 3) or not np.isfinite(estimated).all():
        return None
    return estimated


@dataclass(frozen=True)
class HomographyResult:
    corner_error: float  # px; inf when no homography could be estimated
    matches: np.ndarray  # int64 (M, 2) indices into the full keypoint arrays of images 1 and 2
    match_errors: np.ndarray  # float64 [M]: ||H(p1) - p2|| of each match, px
    shared: tuple[int, int]  # number of shared points used in images 1 and 2
    order_errors: np.ndarray  # float64 [orders]: corner error with the matches given to RANSAC in other orders
    # bool [M]: image 2 has a shared top-k point within DISTANCE_THRESHOLD px of the match's warped first point
    correspondent: np.ndarray


def homography_estimation(
    features1: dict,
    features2: dict,
    homography: np.ndarray,
    size: tuple[int, int],
    top_k: int,
    kind: str,
    seed: int = 0,
    orders: int = 1,
) -> HomographyResult:
    """Shared points, top-k, mutual NN, RANSAC; the corner error of the estimate and the matches used.

    ``orders``: RANSAC also runs on that many seeded permutations of the matches (the first is the original
    order, whose error is ``corner_error``); their errors are ``order_errors``.
    """
    kp1, kp2 = features1["keypoints"], features2["keypoints"]
    idx1 = shared_indices(kp1, features1["scores"], homography, size, top_k)
    idx2 = shared_indices(kp2, features2["scores"], np.linalg.inv(homography), size, top_k)
    local = match_mutual(features1["descriptors"][idx1], features2["descriptors"][idx2], kind)
    matches = np.stack([idx1[local[:, 0]], idx2[local[:, 1]]], axis=1).reshape(-1, 2).astype(np.int64)
    p1 = np.asarray(kp1, dtype=np.float64)[matches[:, 0]]
    p2 = np.asarray(kp2, dtype=np.float64)[matches[:, 1]]
    warped = warp_points(p1, homography)
    errors = np.linalg.norm(warped - p2, axis=1)
    correspondent = nearest_distances(warped, np.asarray(kp2, dtype=np.float64)[idx2]) <= DISTANCE_THRESHOLD
    estimated = estimate_homography(p1, p2, seed) if len(matches) >= 4 else None
    error = corner_error(homography, estimated, size)
    order_errors = [error] * orders  # fewer than 4 matches: no estimate in any order
    if len(matches) >= 4:
        rng = np.random.default_rng(seed)
        for k in range(1, orders):
            order = rng.permutation(len(matches))
            order_errors[k] = corner_error(homography, estimate_homography(p1[order], p2[order], seed), size)
    return HomographyResult(error, matches, errors, (len(idx1), len(idx2)), np.asarray(order_errors, np.float64),
                            correspondent)


def point_distances(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Euclidean distances between point sets: (N, 2) x (M, 2) -> float64 [N, M], px."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    targets = np.asarray(targets, dtype=np.float64).reshape(-1, 2)
    return np.linalg.norm(points[:, None, :] - targets[None, :, :], axis=2)


def nearest_distances(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Distance from each of ``points`` (N, 2) to its nearest of ``targets`` (M, 2): float64 [N]; inf when M = 0."""
    distances = point_distances(points, targets)
    if distances.shape[1] == 0:
        return np.full(distances.shape[0], np.inf)
    return distances.min(axis=1)


def wrong_matches(result: HomographyResult, threshold: float = DISTANCE_THRESHOLD) -> dict[str, float]:
    """Shares of the matches that miss by more than ``threshold`` px, by cause: "descriptor" (image 2 had a shared
    point within 3 px of the right place, and the match took another) and "detector" (it had none); 0 without
    matches, as for MMA."""
    if len(result.match_errors) == 0:
        return dict.fromkeys(WRONG_MATCH_CAUSES, 0.0)
    wrong = result.match_errors > threshold
    shares = (float(np.mean(wrong & result.correspondent)), float(np.mean(wrong & ~result.correspondent)))
    return dict(zip(WRONG_MATCH_CAUSES, shares, strict=True))


def matching_score(
    features1: dict,
    features2: dict,
    homography: np.ndarray,
    size: tuple[int, int],
    top_k: int,
    kind: str,
    threshold: float = DISTANCE_THRESHOLD,
) -> float:
    """Fraction of correct one-way nearest-neighbour matches, averaged over both directions.

    Top-k is taken over all points (no visibility filter). A match is correct when the matched
    point, reprojected into the query image, lies within ``threshold`` of the query point; each
    direction divides by the number of matches whose reprojection is visible.
    """
    idx1 = top_k_indices(features1["scores"], top_k)
    idx2 = top_k_indices(features2["scores"], top_k)
    kp1 = np.asarray(features1["keypoints"], dtype=np.float64)[idx1]
    kp2 = np.asarray(features2["keypoints"], dtype=np.float64)[idx2]
    d1, d2 = features1["descriptors"][idx1], features2["descriptors"][idx2]

    def one_direction(query, matched, desc_query, desc_matched, matched_to_query):
        matches = match_one_way(desc_query, desc_matched, kind)
        reprojected = warp_points(matched[matches[:, 1]], matched_to_query)
        seen = visible(reprojected, size)
        correct = np.linalg.norm(reprojected - query[matches[:, 0]], axis=1) < threshold
        return float((correct & seen).sum()) / max(float(seen.sum()), 1.0)

    score1 = one_direction(kp1, kp2, d1, d2, np.linalg.inv(homography))
    score2 = one_direction(kp2, kp1, d2, d1, homography)
    return (score1 + score2) / 2


def mean_matching_accuracy(match_errors: np.ndarray, thresholds=MMA_THRESHOLDS) -> np.ndarray:
    """Fraction of matches with reprojection error ``<= t`` for each threshold; 0 without matches."""
    errors = np.asarray(match_errors, dtype=np.float64)
    if errors.size == 0:
        return np.zeros(len(thresholds))
    return np.array([(errors <= t).mean() for t in thresholds])


def homography_auc(corner_errors, thresholds=AUC_THRESHOLDS) -> dict[int, float]:
    """Area under the recall-vs-corner-error curve up to each threshold, divided by the threshold.

    The usual definition in feature-matching papers: with the n errors sorted, the curve passes
    through (0, 0) and (e_i, i / n), linear in between and flat after the last error below the
    threshold. Failed estimates (inf) count as errors above every threshold.
    """
    errors = np.sort(np.asarray(corner_errors, dtype=np.float64))
    if errors.size == 0:
        return {t: float("nan") for t in thresholds}
    recall = np.arange(1, errors.size + 1) / errors.size
    errors = np.concatenate([[0.0], errors])
    recall = np.concatenate([[0.0], recall])
    result = {}
    for t in thresholds:
        last = int(np.searchsorted(errors, t, side="right"))
        x = np.concatenate([errors[:last], [t]])
        y = np.concatenate([recall[:last], [recall[last - 1]]])
        result[t] = float(np.trapezoid(y, x) / t)
    return result


def evaluate_pair(
    features1: dict,
    features2: dict,
    homography: np.ndarray,
    size: tuple[int, int],
    top_k: int,
    kind: str,
    seed: int = 0,
    ransac_orders: int = 1,
) -> dict:
    """All per-pair values of the protocol, as plain Python numbers (see ``runner`` for the keys).

    ``ransac_orders``: correctness is also averaged over that many orders of the matches given to RANSAC
    (``correctness_<t>_orders``; with 1 it equals ``correctness_<t>``).
    """
    rep = repeatability(
        features1["keypoints"], features1["scores"], features2["keypoints"], features2["scores"],
        homography, size, top_k,
    )
    if ransac_orders < 1:
        raise ValueError(f"ransac_orders must be >= 1, got {ransac_orders}")
    hom = homography_estimation(features1, features2, homography, size, top_k, kind, seed, ransac_orders)
    return {
        "repeatability": rep.repeatability,
        "localization_error": rep.localization_error,
        "corner_error": hom.corner_error,
        **{f"correctness_{t}": float(hom.corner_error <= t) for t in CORRECTNESS_THRESHOLDS},
        **{f"correctness_{t}_orders": float(np.mean(hom.order_errors <= t)) for t in CORRECTNESS_THRESHOLDS},
        "matching_score": matching_score(features1, features2, homography, size, top_k, kind),
        "mma": mean_matching_accuracy(hom.match_errors).tolist(),
        "wrong_matches": wrong_matches(hom),
        "matches": int(len(hom.matches)),
        "shared": list(hom.shared),
        "visible_top_k": [rep.n1, rep.n2],
        "keypoints": [min(len(features1["scores"]), top_k), min(len(features2["scores"]), top_k)],
    }
