"""The KP2D HPatches protocol on constructed point sets with known answers."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zippypoint.eval.hpatches import scale_homography
from zippypoint.eval.protocol import (
    corner_error,
    default_ransac_orders,
    evaluate_pair,
    homography_auc,
    homography_estimation,
    mean_matching_accuracy,
    repeatability,
    shared_indices,
    top_k_indices,
    warp_points,
)

SIZE = (320, 240)


def mild_homography() -> np.ndarray:
    """Rotation by 5 degrees and scale 0.95 about the image centre, plus a little perspective."""
    a, s = np.deg2rad(5.0), 0.95
    centre = np.array([[1, 0, -160], [0, 1, -120], [0, 0, 1.0]])
    rotate = np.array([[s * np.cos(a), -s * np.sin(a), 0], [s * np.sin(a), s * np.cos(a), 0], [0, 0, 1]])
    perspective = np.array([[1, 0, 0], [0, 1, 0], [1e-4, -5e-5, 1]])
    return perspective @ np.linalg.inv(centre) @ rotate @ centre


def grid_points(rng, spacing: float = 12.0, margin: float = 30.0) -> np.ndarray:
    """Points on a jittered grid: neighbours are far apart, so nearest neighbours are unambiguous."""
    xs = np.arange(margin, SIZE[0] - margin, spacing)
    ys = np.arange(margin, SIZE[1] - margin, spacing)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    return grid + rng.uniform(-2, 2, grid.shape)


def ground_truth_pair(kind: str, offset=(0.0, 0.0), seed: int = 0):
    """Image-2 points are exactly H(image-1 points) + offset, with identical descriptors."""
    rng = np.random.default_rng(seed)
    homography = mild_homography()
    kp1 = grid_points(rng)
    kp2 = warp_points(kp1, homography) + np.asarray(offset)
    n = len(kp1)
    if kind == "binary":
        desc = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    else:
        desc = rng.normal(size=(n, 64)).astype(np.float32)
    scores = rng.uniform(0.1, 1.0, n).astype(np.float32)
    f1 = {"keypoints": kp1.astype(np.float32), "scores": scores, "descriptors": desc}
    perm = rng.permutation(n)  # image 2 lists its points in another order
    f2 = {"keypoints": kp2[perm].astype(np.float32), "scores": scores[perm], "descriptors": desc[perm]}
    assert np.all((kp2 > 1) & (kp2 < np.array(SIZE) - 2)), "construction: all points visible in image 2"
    return f1, f2, homography


@pytest.mark.parametrize("kind", ["binary", "float"])
def test_ground_truth_points_give_repeatability_and_correctness_one(kind):
    f1, f2, homography = ground_truth_pair(kind)
    result = evaluate_pair(f1, f2, homography, SIZE, top_k=1000, kind=kind)
    assert result["repeatability"] == 1.0
    assert result["localization_error"] < 1e-3
    assert result["corner_error"] < 1e-2
    assert result["correctness_1"] == result["correctness_3"] == result["correctness_5"] == 1.0
    assert result["matching_score"] == 1.0
    assert result["mma"] == [1.0] * 10
    assert result["matches"] == len(f1["scores"])


@pytest.mark.parametrize("kind", ["binary", "float"])
def test_offset_of_1p5_px_counts_at_3_px_not_at_1_px(kind):
    f1, f2, homography = ground_truth_pair(kind, offset=(0.9, 1.2))  # |offset| = 1.5
    result = evaluate_pair(f1, f2, homography, SIZE, top_k=1000, kind=kind)
    assert result["repeatability"] == 1.0
    assert result["localization_error"] == pytest.approx(1.5, abs=1e-3)
    # Every match is off by the same translation, so RANSAC finds T(1.5 px) @ H: all corners move 1.5 px.
    assert result["corner_error"] == pytest.approx(1.5, abs=1e-2)
    assert (result["correctness_1"], result["correctness_3"], result["correctness_5"]) == (0.0, 1.0, 1.0)
    assert result["mma"][0] == 0.0 and result["mma"][1:] == [1.0] * 9
    assert result["matching_score"] == 1.0


def test_offset_beyond_3_px_is_neither_repeatable_nor_matched():
    f1, f2, homography = ground_truth_pair("float", offset=(3.2, 0.0))
    result = evaluate_pair(f1, f2, homography, SIZE, top_k=1000, kind="float")
    assert result["repeatability"] == 0.0
    assert math.isnan(result["localization_error"])
    assert result["matching_score"] == 0.0
    assert result["correctness_3"] == 0.0 and result["correctness_5"] == 1.0


def test_wrong_descriptors_halve_the_matching_score():
    f1, f2, homography = ground_truth_pair("float")
    # Swap the descriptors of half of image 2's points in pairs: those matches land on far points.
    n = len(f2["scores"])
    swapped = f2["descriptors"].copy()
    half = np.arange(n // 2 // 2 * 2)
    swapped[half] = swapped[half.reshape(-1, 2)[:, ::-1].reshape(-1)]
    f2 = {**f2, "descriptors": swapped}
    result = evaluate_pair(f1, f2, homography, SIZE, top_k=1000, kind="float")
    assert result["matching_score"] == pytest.approx((n - len(half)) / n, abs=1e-9)
    assert result["repeatability"] == 1.0  # detection is untouched


def test_wrong_matches_are_split_into_descriptor_and_detector_misses():
    f1, f2, homography = ground_truth_pair("float")
    clean = evaluate_pair(f1, f2, homography, SIZE, top_k=1000, kind="float")
    assert clean["wrong_matches"] == {"descriptor": 0.0, "detector": 0.0}
    # swapped descriptors: those matches land on far points although the right point is there
    n = len(f2["scores"])
    swapped = f2["descriptors"].copy()
    half = np.arange(n // 2 // 2 * 2)
    swapped[half] = swapped[half.reshape(-1, 2)[:, ::-1].reshape(-1)]
    result = evaluate_pair(f1, {**f2, "descriptors": swapped}, homography, SIZE, top_k=1000, kind="float")
    assert result["wrong_matches"]["descriptor"] == pytest.approx(len(half) / result["matches"])
    assert result["wrong_matches"]["detector"] == 0.0
    assert result["mma"][2] + sum(result["wrong_matches"].values()) == pytest.approx(1.0)
    # every point of image 2 detected 3.2 px off: nothing to match within 3 px, so all misses are the detector's
    shifted = evaluate_pair(*ground_truth_pair("float", offset=(3.2, 0.0)), SIZE, top_k=1000, kind="float")
    assert shifted["mma"][2] == 0.0
    assert shifted["wrong_matches"] == {"descriptor": 0.0, "detector": 1.0}


def test_fewer_than_four_matches_is_a_wrong_homography():
    f1, f2, homography = ground_truth_pair("float")
    f1 = {k: v[:3] for k, v in f1.items()}
    result = evaluate_pair(f1, f2, homography, SIZE, top_k=1000, kind="float")
    assert result["matches"] == 3
    assert result["corner_error"] == math.inf
    assert result["correctness_5"] == 0.0


def test_ransac_orders_average_the_correctness():
    """The first order is the protocol's single run; clean matches are correct in every order; noisy ones
    give a fraction, and the same inputs give the same fraction."""
    f1, f2, homography = ground_truth_pair("float")
    clean = homography_estimation(f1, f2, homography, SIZE, 1000, "float", orders=8)
    assert clean.order_errors.shape == (8,) and clean.order_errors[0] == clean.corner_error
    assert (clean.order_errors < 1e-3).all()
    result = evaluate_pair(f1, f2, homography, SIZE, top_k=1000, kind="float", ransac_orders=8)
    assert result["correctness_3_orders"] == 1.0 == result["correctness_3"]
    rng = np.random.default_rng(0)
    noisy = {**f2, "keypoints": f2["keypoints"] + rng.normal(0, 4.0, f2["keypoints"].shape).astype(np.float32)}
    a = evaluate_pair(f1, noisy, homography, SIZE, top_k=1000, kind="float", ransac_orders=16)
    b = evaluate_pair(f1, noisy, homography, SIZE, top_k=1000, kind="float", ransac_orders=16)
    assert 0.0 <= a["correctness_1_orders"] <= a["correctness_3_orders"] <= a["correctness_5_orders"] <= 1.0
    assert a == b
    single = evaluate_pair(f1, noisy, homography, SIZE, top_k=1000, kind="float")
    assert single["correctness_3_orders"] == single["correctness_3"]
    assert default_ransac_orders(6) == 256 and default_ransac_orders(580) == 2 and default_ransac_orders(10**5) == 1
    with pytest.raises(ValueError, match="ransac_orders"):
        evaluate_pair(f1, noisy, homography, SIZE, top_k=1000, kind="float", ransac_orders=0)


def test_empty_features_give_defined_values():
    empty = {"keypoints": np.zeros((0, 2), np.float32), "scores": np.zeros(0, np.float32),
             "descriptors": np.zeros((0, 32), np.uint8)}
    result = evaluate_pair(empty, empty, np.eye(3), SIZE, top_k=300, kind="binary")
    assert math.isnan(result["repeatability"]) and math.isnan(result["localization_error"])
    assert result["corner_error"] == math.inf and result["matching_score"] == 0.0
    assert result["mma"] == [0.0] * 10 and result["matches"] == 0
    assert result["wrong_matches"] == {"descriptor": 0.0, "detector": 0.0}


def test_visibility_filter_comes_before_top_k():
    homography = np.array([[1.0, 0, 100], [0, 1, 0], [0, 0, 1]])  # shift right by 100 px
    keypoints = np.array([[250.0, 50], [10, 50], [20, 60], [30, 70]])  # the first leaves the image
    scores = np.array([0.9, 0.1, 0.2, 0.3])
    kept = shared_indices(keypoints, scores, homography, SIZE, top_k=3)
    assert sorted(kept.tolist()) == [1, 2, 3]


def test_top_k_lists_the_best_in_ascending_order_and_is_stable():
    assert top_k_indices(np.array([0.1, 0.5, 0.3, 0.9]), 2).tolist() == [1, 3]
    assert top_k_indices(np.array([0.5, 0.5, 0.5]), 2).tolist() == [1, 2]
    assert top_k_indices(np.array([0.2]), 5).tolist() == [0]
    assert top_k_indices(np.zeros(0), 5).tolist() == []


def test_repeatability_uses_the_top_k_of_each_image():
    kp = np.array([[10.0, 10], [50, 50], [90, 90]])
    result = repeatability(kp, np.array([3.0, 2, 1]), kp[:1], np.array([1.0]), np.eye(3), SIZE, top_k=1)
    assert (result.n1, result.n2, result.repeatability) == (1, 1, 1.0)
    result = repeatability(kp, np.array([1.0, 2, 3]), kp[:1], np.array([1.0]), np.eye(3), SIZE, top_k=1)
    assert result.repeatability == 0.0  # image 1's best point (90, 90) has no partner


def test_corner_error_uses_the_four_corners_at_the_resized_size():
    shift = np.array([[1.0, 0, 2], [0, 1, 0], [0, 0, 1]])
    assert corner_error(np.eye(3), shift, SIZE) == pytest.approx(2.0)
    assert corner_error(np.eye(3), None, SIZE) == math.inf
    scale = np.diag([1.01, 1.0, 1.0])  # error grows with x: corners at x = 0 and x = 319
    assert corner_error(np.eye(3), scale, SIZE) == pytest.approx((0 + 0 + 3.19 + 3.19) / 4)


def test_homography_rescaling_maps_resized_pixels():
    homography = mild_homography()
    size1, size2, new = (800, 600), (1000, 700), (320, 240)
    scaled = scale_homography(homography, size1, size2, new)
    p = np.array([[100.0, 200], [640, 480]])
    s1 = np.array(new) / np.array(size1)
    s2 = np.array(new) / np.array(size2)
    np.testing.assert_allclose(warp_points(p * s1, scaled), warp_points(p, homography) * s2, rtol=1e-9)


def test_mma_counts_errors_up_to_and_including_the_threshold():
    np.testing.assert_allclose(mean_matching_accuracy([0.5, 1.0, 2.5, 20.0], (1, 3)), [0.5, 0.75])
    assert mean_matching_accuracy([], (1, 3)).tolist() == [0.0, 0.0]


def test_auc_known_values():
    assert homography_auc([0.0, 0.0]) == {3: 1.0, 5: 1.0, 10: 1.0}
    assert homography_auc([math.inf, math.inf]) == {3: 0.0, 5: 0.0, 10: 0.0}
    # Curve through (0, 0), (1.5, 0.5), then flat: area 0.375 + 0.5 * (t - 1.5).
    assert homography_auc([1.5, math.inf]) == pytest.approx({3: 0.375, 5: 0.425, 10: 0.4625})
    assert math.isnan(homography_auc([])[3])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.01, 30), unique=True, max_size=15), st.integers(0, 5))
def test_auc_matches_a_numerical_integral_of_the_recall_curve(finite, failures):
    errors = finite + [math.inf] * failures
    if not errors:
        return
    xp = np.concatenate([[0.0], np.sort(finite)])
    fp = np.arange(len(xp)) / len(errors)  # recall i / n at the i-th smallest error
    previous = 0.0
    for t, value in homography_auc(errors).items():
        grid = np.linspace(0.0, t, 100001)
        below = xp <= t  # flat after the last error within the threshold
        expected = np.trapezoid(np.interp(grid, xp[below], fp[below]), grid) / t
        assert value == pytest.approx(expected, abs=1e-4)
        assert previous - 1e-12 <= value <= 1.0  # the mean of a non-decreasing curve grows with t
        previous = value


def test_evaluation_is_deterministic():
    rng = np.random.default_rng(3)
    f1, f2, homography = ground_truth_pair("binary", seed=3)
    # Noisy positions and some outliers make RANSAC do real work.
    f2 = {**f2, "keypoints": (f2["keypoints"] + rng.normal(0, 1.0, f2["keypoints"].shape)).astype(np.float32)}
    first = evaluate_pair(f1, f2, homography, SIZE, top_k=100, kind="binary", seed=0)
    second = evaluate_pair(f1, f2, homography, SIZE, top_k=100, kind="binary", seed=0)
    assert first == second
