"""Geometry of zippypoint.sfm against synthetic scenes with known poses."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zippypoint.sfm.geometry import (
    read_intrinsics,
    relative_pose,
    relative_pose_error,
    rotation_angle_deg,
    to_homogeneous,
    umeyama,
)
from zippypoint.sfm.pose_eval import pose_auc, unrotate_keypoints
from zippypoint.sfm.trajectory import (
    absolute_trajectory_error,
    quaternion_to_rotation,
    relative_pose_errors,
    rotation_to_quaternion,
)

K = np.array([[240.0, 0, 208], [0, 245.0, 64], [0, 0, 1]])


def rotation(axis, degrees):
    import cv2

    axis = np.asarray(axis, np.float64)
    return cv2.Rodrigues(axis / np.linalg.norm(axis) * np.radians(degrees))[0]


def project(points_cam, K):
    uv = points_cam @ K.T
    return uv[:, :2] / uv[:, 2:]


def scene(rng, R, t, n=200, noise=0.0):
    """Random points in front of camera 0, seen by camera 1 at x1 = R x0 + t; pixels of both (+ noise)."""
    pts0 = np.column_stack([rng.uniform(-4, 4, n), rng.uniform(-2, 2, n), rng.uniform(4, 20, n)])
    pts1 = pts0 @ R.T + t
    keep = pts1[:, 2] > 0.5
    p0, p1 = project(pts0[keep], K), project(pts1[keep], K)
    return p0 + rng.normal(0, noise, p0.shape), p1 + rng.normal(0, noise, p1.shape)


@pytest.mark.parametrize("solver", ["opencv", "poselib"])
def test_essential_matrix_recovers_a_known_pose(solver):
    rng = np.random.default_rng(0)
    R = rotation([0.1, 1.0, 0.05], 4.0)
    t = np.array([0.3, -0.05, -1.0])
    p0, p1 = scene(rng, R, t, noise=0.3)
    # a fifth of the matches are wrong
    bad = rng.choice(len(p1), len(p1) // 5, replace=False)
    p1[bad] = rng.uniform([0, 0], [416, 128], (len(bad), 2))
    R_est, t_est, inliers = relative_pose(p0, p1, K, K, threshold_px=1.0, solver=solver)
    err_R, err_t = relative_pose_error(to_homogeneous(R, t), R_est, t_est)
    assert err_R < 0.5 and err_t < 3.0
    assert np.isclose(np.linalg.norm(t_est), 1.0)
    assert inliers[bad].mean() < 0.2 and np.delete(inliers, bad).mean() > 0.8


def test_relative_pose_too_few_matches_is_none():
    p = np.zeros((4, 2))
    assert relative_pose(p, p, K, K) is None
    assert relative_pose(np.zeros((0, 2)), np.zeros((0, 2)), K, K) is None
    with pytest.raises(ValueError, match="same length"):
        relative_pose(np.zeros((10, 2)), np.zeros((9, 2)), K, K)
    with pytest.raises(ValueError, match="solver"):
        relative_pose(p, p, K, K, solver="magic")


def test_pose_error_ignores_translation_sign_and_measures_rotation():
    R = rotation([0, 1, 0], 10)
    T = to_homogeneous(R, [0, 0, 1])
    assert relative_pose_error(T, R, np.array([0, 0, -1.0])) == pytest.approx((0.0, 0.0), abs=1e-6)
    err_R, err_t = relative_pose_error(T, np.eye(3), np.array([1.0, 0, 1.0]))
    assert err_R == pytest.approx(10.0, abs=1e-6) and err_t == pytest.approx(45.0, abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.2, 5.0), st.floats(-180, 180), st.integers(0, 2**16))
def test_umeyama_recovers_a_similarity(scale, angle, seed):
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(30, 3))
    R = rotation(rng.normal(size=3) + 1e-3, angle)
    t = rng.normal(size=3) * 5
    s, R_est, t_est = umeyama(src, scale * src @ R.T + t)
    assert s == pytest.approx(scale, rel=1e-6)
    np.testing.assert_allclose(R_est, R, atol=1e-6)
    np.testing.assert_allclose(t_est, t, atol=1e-6)


def test_umeyama_bad_input():
    with pytest.raises(ValueError, match="at least 3"):
        umeyama(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="same shape"):
        umeyama(np.zeros((5, 3)), np.zeros((4, 3)))


def circle_trajectory(n=40):
    poses = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        a = 2 * np.pi * i / n
        poses[i, :3, :3] = rotation([0, 1, 0], np.degrees(a) + 1e-9)
        poses[i, :3, 3] = [10 * np.sin(a), 0.1 * i, 10 * np.cos(a)]
    return poses


def test_ate_rpe_zero_for_a_similar_copy_and_known_for_a_shift():
    gt = circle_trajectory()
    S = to_homogeneous(rotation([1, 2, 3], 33), [5, -2, 7])
    est = gt.copy()
    est[:, :3, 3] *= 0.25  # scale and a rigid motion: Sim(3) alignment removes both
    est = np.einsum("ij,njk->nik", S, est)
    ate = absolute_trajectory_error(est, gt)
    assert ate["ate_rmse"] < 1e-6 and ate["sim3_scale"] == pytest.approx(4.0)
    rpe = relative_pose_errors(est, gt)
    assert rpe["rpe_trans_rmse"] < 1e-6 and rpe["rpe_rot_mean_deg"] < 1e-4
    # one pose moved by 1 m along x: RPE sees it in the two steps around it
    moved = gt.copy()
    moved[20, 0, 3] += 1.0
    rpe = relative_pose_errors(moved, gt)
    assert rpe["rpe_trans_rmse"] == pytest.approx(np.sqrt(2 / 39), rel=0.05)


def test_quaternion_round_trip():
    rng = np.random.default_rng(4)
    for _ in range(20):
        R = rotation(rng.normal(size=3), rng.uniform(0, 179))
        np.testing.assert_allclose(quaternion_to_rotation(rotation_to_quaternion(R)), R, atol=1e-9)
    assert rotation_angle_deg(rotation([0, 0, 1], 30)) == pytest.approx(30)


def test_pose_auc_on_known_errors():
    # uniform errors on [0, 20): recall(e) = e / 20, so AUC@t = t / 40 for t <= 20
    errors = np.linspace(0, 20, 2001)[:-1]
    auc = pose_auc(errors)
    assert auc["auc@5"] == pytest.approx(5 / 40, abs=1e-3)
    assert auc["auc@20"] == pytest.approx(0.5, abs=1e-3)
    assert pose_auc([0.0, 0.0])["auc@5"] == pytest.approx(1.0)
    assert pose_auc([np.inf, np.inf])["auc@10"] == 0.0
    half = pose_auc([0.0, np.inf])
    assert half["auc@5"] == pytest.approx(0.5)


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_unrotate_keypoints_matches_np_rot90(turns):
    image = np.zeros((5, 7), np.uint8)
    image[1, 4] = 255  # (x, y) = (4, 1)
    rotated = np.rot90(image, turns)
    y, x = np.argwhere(rotated == 255)[0]
    back = unrotate_keypoints(np.array([[x, y]], np.float32), turns, (7, 5))
    np.testing.assert_array_equal(back, [[4, 1]])


def test_read_intrinsics(tmp_path):
    (tmp_path / "k9.txt").write_text("240 0 208\n0 245 64\n0 0 1\n")
    (tmp_path / "k4.txt").write_text("240 245 208 64")
    (tmp_path / "bad.txt").write_text("1 2 3")
    np.testing.assert_array_equal(read_intrinsics(tmp_path / "k9.txt"), K)
    np.testing.assert_array_equal(read_intrinsics(tmp_path / "k4.txt"), K)
    with pytest.raises(ValueError, match="9 numbers"):
        read_intrinsics(tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError, match="intrinsics"):
        read_intrinsics(tmp_path / "missing.txt")
