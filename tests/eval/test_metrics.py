"""Metrics against hand-computed cases (ORIGINAL.md §7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maed.eval.metrics import (
    accel_error_per_frame,
    accel_per_frame,
    align_joints,
    compute_metrics,
    compute_metrics_per_frame,
    compute_metrics_strict,
    triple_mask,
)


def _rotation(axis, angle):
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


@pytest.fixture
def joints():
    return np.random.default_rng(0).normal(scale=0.3, size=(6, 14, 3))


def test_similarity_copy_has_zero_pa_mpjpe_and_positive_mpjpe(joints):
    rng = np.random.default_rng(1)
    pred = np.stack(
        [1.3 * joints[i] @ _rotation(rng.normal(size=3), 0.4 + 0.1 * i).T + rng.normal(size=3) for i in range(6)]
    )
    m = compute_metrics(pred, joints)
    assert m["pa-mpjpe"] == pytest.approx(0.0, abs=1e-6)
    assert m["mpjpe"] > 50.0  # a 30 % scale and a 0.4 rad turn on a 0.3 m skeleton: tens of mm at least


def test_constant_offset_is_removed_by_pelvis_alignment(joints):
    m = compute_metrics(joints + np.array([0.5, -0.2, 3.0]), joints)
    assert m["mpjpe"] == pytest.approx(0.0, abs=1e-9)
    assert m["pa-mpjpe"] == pytest.approx(0.0, abs=1e-6)
    assert m["accel_err"] == pytest.approx(0.0, abs=1e-9)


def test_single_joint_offset_known_mpjpe(joints):
    # moving joint 0 (not a hip) by 14 mm leaves the pelvis alone: MPJPE = 14 / 14 = 1 mm
    pred = joints.copy()
    pred[:, 0, 1] += 0.014
    assert compute_metrics(pred, joints)["mpjpe"] == pytest.approx(1.0, abs=1e-9)


def test_pelvis_is_mean_of_joints_2_and_3(joints):
    pred, gt = align_joints(joints, joints)
    np.testing.assert_allclose(pred[:, 2] + pred[:, 3], 0.0, atol=1e-12)
    np.testing.assert_allclose(gt, pred)


def test_visibility_column_multiplies_both_sets(joints):
    gt4 = np.concatenate([joints, np.ones((6, 14, 1))], axis=-1)
    gt4[:, 5, 3] = 0.0
    pred = joints.copy()
    pred[:, 5] += 1.0  # a huge error on an invisible joint is zeroed by the visibility multiply
    assert compute_metrics(pred, gt4)["mpjpe"] == pytest.approx(0.0, abs=1e-9)
    assert compute_metrics(pred, joints)["mpjpe"] > 10.0


def test_pve_without_alignment(joints):
    verts = np.random.default_rng(3).normal(size=(6, 50, 3))
    m = compute_metrics(joints, joints, verts + np.array([0.0, 0.003, 0.004]), verts)
    assert m["pve"] == pytest.approx(5.0, abs=1e-9)  # a 3-4-5 mm shift is not aligned away
    assert np.isnan(compute_metrics(joints, joints)["pve"])


def test_quadratic_trajectory_has_known_acceleration():
    # x(t) = a t^2 / 2 per joint: second difference = a exactly
    t = np.arange(10, dtype=np.float64)
    a = np.array([0.002, -0.001, 0.0005])
    base = np.random.default_rng(4).normal(size=(14, 3))
    base[2] = base[3] = 0.0  # hips fixed at the origin so the pelvis does not move
    moving = np.ones(14, dtype=bool)
    moving[[2, 3]] = False
    traj = np.repeat(base[None], 10, axis=0)
    traj[:, moving] += 0.5 * t[:, None, None] ** 2 * a
    expected_mm = np.linalg.norm(a) * 12 / 14 * 1000  # 12 of 14 joints accelerate
    acc = accel_per_frame(traj)
    assert acc.shape == (8,)
    np.testing.assert_allclose(acc * 1000, expected_mm, rtol=1e-9)
    m = compute_metrics(traj, np.repeat(base[None], 10, axis=0))
    assert m["accel"] == pytest.approx(expected_mm, rel=1e-9)
    assert m["accel_err"] == pytest.approx(expected_mm, rel=1e-9)  # ground truth is static
    assert compute_metrics(traj, traj)["accel_err"] == pytest.approx(0.0, abs=1e-9)


def test_strict_accel_excludes_sequence_boundary():
    # two static sequences at different places: the jump between them is a huge fake acceleration
    seq_a = np.zeros((5, 14, 3))
    seq_b = np.zeros((5, 14, 3))
    seq_b[:, 0] = 1.0  # joint 0 one metre away in the second sequence
    pred = np.concatenate([seq_a, seq_b])
    gt = np.zeros_like(pred)
    ids = ["a"] * 5 + ["b"] * 5
    original = compute_metrics(pred, gt)
    strict = compute_metrics_strict(pred, gt, ids)
    assert original["accel"] > 10.0 and original["accel_err"] > 10.0
    assert strict["accel"] == pytest.approx(0.0, abs=1e-12)
    assert strict["accel_err"] == pytest.approx(0.0, abs=1e-12)
    # per-frame errors do not depend on the protocol
    assert strict["mpjpe"] == pytest.approx(original["mpjpe"])
    assert triple_mask(ids, 10).tolist() == [True, True, True, False, False, True, True, True]
    assert len(accel_error_per_frame(pred, gt, ids)) == 6


def test_torch_and_numpy_inputs_agree(joints):
    pred = joints + np.random.default_rng(5).normal(scale=0.01, size=joints.shape)
    a = compute_metrics(pred, joints)
    b = compute_metrics(torch.from_numpy(pred).float(), torch.from_numpy(joints).float())
    for k in ("mpjpe", "pa-mpjpe", "accel", "accel_err"):
        assert a[k] == pytest.approx(b[k], abs=1e-3)


def test_per_frame_means_equal_summary(joints):
    pred = joints + np.random.default_rng(6).normal(scale=0.02, size=joints.shape)
    per = compute_metrics_per_frame(pred, joints)
    m = compute_metrics(pred, joints)
    assert per["mpjpe"].shape == (6,) and per["accel_err"].shape == (4,)
    assert np.mean(per["mpjpe"]) == pytest.approx(m["mpjpe"])
    assert np.mean(per["pa-mpjpe"]) == pytest.approx(m["pa-mpjpe"])
    assert np.mean(per["accel_err"]) == pytest.approx(m["accel_err"])
    assert np.all(per["pa-mpjpe"] <= per["mpjpe"] + 1e-9)
