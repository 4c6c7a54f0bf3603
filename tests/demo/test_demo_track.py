"""Tracking (IoU + Hungarian with an age buffer), gap filling, square crop boxes, box and pose smoothing."""

from __future__ import annotations

import numpy as np
import pytest

from maed.demo.smooth import one_euro, smooth_rotations
from maed.demo.track import build_tracks, link_detections, square_boxes
from maed.perception.detectors import Detections


def _detections(rows, num_frames, track_ids=None, box_scale=1.1):
    from maed.perception.detectors import cxcywh_from_xyxy

    frame = np.array([r[0] for r in rows], dtype=np.int64)
    boxes = cxcywh_from_xyxy(np.array([r[1] for r in rows], dtype=np.float64))
    ids = np.full(len(rows), -1) if track_ids is None else np.asarray(track_ids)
    return Detections("hog", num_frames, frame, boxes, np.ones(len(rows), np.float32), ids, box_scale)


def _walker(x0, vx, frames, w=20, h=60, y=30):
    return [(f, [x0 + vx * f, y, x0 + vx * f + w, y + h]) for f in frames]


def test_two_crossing_people_keep_their_ids_through_a_gap():
    """A walks right, B walks left; they overlap in the middle, and A is missed for 5 frames."""
    a = _walker(0, 6, [f for f in range(30) if not 12 <= f < 17])
    b = _walker(174, -6, range(30))
    rows = sorted(a + b, key=lambda r: r[0])
    det = _detections(rows, 30)
    ids = link_detections(det, iou_threshold=0.3, max_age=10)
    x1 = det.xyxy[:, 0]
    starts_left = {i for i in np.unique(ids) if x1[ids == i][0] < 50}
    assert len(np.unique(ids)) == 2 and len(starts_left) == 1  # no swap, no new id after the gap
    ida = starts_left.pop()
    assert np.all(np.diff(x1[ids == ida]) > 0)  # the left-starting track keeps walking right
    tracks, dropped = build_tracks(det, ids, min_length=10, smooth=False)
    assert [t.track_id for t in tracks] == [1, 2] and not dropped
    t = next(t for t in tracks if t.boxes[0, 0] < 50)
    assert t.frames.tolist() == list(range(30)) and t.detected.sum() == 25
    assert not t.detected[12:17].any()
    cx = t.boxes[:, 0]
    np.testing.assert_allclose(np.diff(cx), 6.0, atol=1e-9)  # the gap filled on the line
    np.testing.assert_allclose(t.boxes[:, 2], 1.1 * 60)  # side = 1.1 x the longer side
    np.testing.assert_allclose(t.boxes[:, 2], t.boxes[:, 3])


def test_an_old_track_is_not_revived_after_max_age():
    rows = _walker(0, 0, range(5)) + _walker(0, 0, range(20, 25))
    det = _detections(rows, 25)
    assert len(np.unique(link_detections(det, max_age=10))) == 2
    assert len(np.unique(link_detections(det, max_age=20))) == 1


def test_min_track_length_is_capped_at_the_input_length_and_ids_have_no_holes():
    rows = sorted(_walker(0, 1, range(3)) + _walker(100, 0, range(8)), key=lambda r: r[0])
    det = _detections(rows, 8)
    ids = link_detections(det)
    kept, dropped = build_tracks(det, ids, min_length=25)  # capped at 8 frames
    assert [len(t) for t in kept] == [8] and [len(t) for t in dropped] == [3]
    assert kept[0].track_id == 1


def test_user_track_ids_and_boxes_are_kept_unchanged():
    rows = [(0, [10, 10, 30, 50]), (3, [16, 10, 36, 50]), (1, [0, 0, 10, 10])]
    det = _detections(rows, 4, track_ids=[5, 5, 9], box_scale=1.0)
    tracks, _ = build_tracks(det, det.track_ids, min_length=1, smooth=True)
    by_id = {t.track_id: t for t in tracks}
    assert set(by_id) == {5, 9}
    np.testing.assert_allclose(by_id[5].boxes[:, 0], [20, 22, 24, 26])  # gap interpolated, never smoothed
    np.testing.assert_allclose(by_id[5].boxes[:, 2], 40)


def test_square_rule_and_smoothing_remove_jitter():
    np.testing.assert_allclose(square_boxes([[10, 30, 20, 60]], 1.1), [[10, 30, 66, 66]])
    rng = np.random.default_rng(0)
    rows = [(f, [2 * f + rng.normal(0, 2), 20, 2 * f + 30 + rng.normal(0, 2), 100]) for f in range(40)]
    det = _detections(rows, 40)
    ids = link_detections(det)
    raw, _ = build_tracks(det, ids, smooth=False)
    smooth, _ = build_tracks(det, ids, smooth=True)
    truth = 2 * np.arange(40) + 15
    err_raw = np.abs(raw[0].boxes[5:-5, 0] - truth[5:-5]).mean()
    err_smooth = np.abs(smooth[0].boxes[5:-5, 0] - truth[5:-5]).mean()
    assert err_smooth < 0.7 * err_raw


@pytest.mark.parametrize(
    "signal, gain",
    [
        (lambda t: 0 * t, 0.5),  # still: most jitter removed
        (lambda t: 1.25 * t, 0.8),  # a steady turn: no lag (the two passes cancel it)
        (lambda t: np.sin(2 * np.pi * 0.3 * t), 0.8),
        (lambda t: 0.3 * np.sin(2 * np.pi * 2.0 * t), 0.9),  # fast: followed, not flattened
    ],
)
def test_one_euro_defaults_remove_jitter_and_follow_motion(signal, gain):
    fps = 30.0
    t = np.arange(300) / fps
    truth = signal(t)
    noisy = truth + np.random.default_rng(0).normal(0, 0.03, size=t.shape)
    err = lambda x: np.abs(x - truth)[30:-30].mean()  # noqa: E731
    assert err(one_euro(noisy, fps=fps)) < gain * err(noisy)


def test_one_euro_constant_and_causal_lag():
    np.testing.assert_allclose(one_euro(np.full(10, 3.0), fps=30.0), 3.0)  # a constant passes unchanged
    ramp = np.arange(90) / 30.0
    causal = one_euro(ramp, fps=30.0, beta=0.0, bidirectional=False)
    assert ramp[60] - causal[60] == pytest.approx(1 / (2 * np.pi), rel=0.15)  # trails by 1 / (2 pi cutoff) s
    assert abs(one_euro(ramp, fps=30.0, beta=0.0)[45] - ramp[45]) < 1e-3


def test_rotation_smoothing_returns_rotations_and_reduces_jitter():
    import torch

    from maed.body.geometry import axis_angle_to_rotmat

    T = 60
    angle = np.linspace(0, 2.5, T)  # crosses no discontinuity in 6D even past pi in axis-angle terms
    aa = np.zeros((T, 2, 3))
    aa[:, 0, 2] = angle
    aa[:, 1, 0] = 0.3
    noisy_aa = aa + np.random.default_rng(1).normal(0, 0.03, size=aa.shape)
    R = axis_angle_to_rotmat(torch.from_numpy(noisy_aa)).numpy()
    truth = axis_angle_to_rotmat(torch.from_numpy(aa)).numpy()
    S = smooth_rotations(R, fps=30.0)
    assert S.shape == R.shape and S.dtype == np.float32
    np.testing.assert_allclose(S @ np.swapaxes(S, -1, -2), np.broadcast_to(np.eye(3), S.shape), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(S), 1.0, atol=1e-5)
    err = lambda X: np.linalg.norm(X - truth, axis=(-2, -1))[10:].mean()  # noqa: E731
    assert err(S) < 0.8 * err(R)


@pytest.mark.parametrize("fps", [25.0, 60.0])
def test_one_euro_cutoff_is_in_hertz(fps):
    """The same signal in seconds is filtered alike at any frame rate."""
    t = np.arange(int(2 * fps)) / fps
    x = (t > 0.5).astype(float)
    y = one_euro(x, fps=fps, min_cutoff=1.0, beta=0.0, bidirectional=False)
    assert y[int(1.0 * fps)] == pytest.approx(1 - np.exp(-2 * np.pi * 0.5), abs=0.06)
