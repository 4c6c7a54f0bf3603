"""The overlay end to end: with the true pose and camera, the drawn mesh covers the person in the video."""

from __future__ import annotations

import json

import numpy as np
import pytest


def _silhouette(overlay: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Pixels the overlay changed (the drawn mesh), compression noise removed."""
    import cv2

    changed = (np.abs(overlay.astype(np.int16) - frame.astype(np.int16)).sum(axis=-1) > 45).astype(np.uint8)
    return cv2.morphologyEx(changed, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory, person_clip, anny_body):
    from demo_fixtures import OraclePredictor

    from maed.demo.pipeline import DemoOptions, run_demo

    out = tmp_path_factory.mktemp("overlay") / "out"
    options = DemoOptions(out=out, min_track_length=10, export=False, side_view=True, progress=False)
    summary = run_demo(person_clip.path, options, predictor=OraclePredictor(person_clip, anny_body), log=lambda m: 0)
    return out, summary


def _frames(path):
    from maed.demo.source import open_source

    return [f for _, f in open_source(path).frames()]


def test_mesh_from_the_true_pose_and_camera_covers_the_true_silhouette(oracle_run, person_clip):
    """Checks the crop camera -> full image conversion (the 1.3 crop scale, the box) and the renderer end to end:
    the crop cameras come from the clip's pinhole projection alone (demo_fixtures.crop_cameras_from_truth)."""
    out, summary = oracle_run
    assert summary["num_people"] == 1
    person = summary["people"][0]
    video, overlay = _frames(person_clip.path), _frames(out / "overlay.mp4")
    assert len(overlay) == len(video) and overlay[0].shape == video[0].shape
    ious = []
    for t in range(len(video)):
        drawn = _silhouette(overlay[t], video[t])
        if person["first_frame"] <= t <= person["last_frame"]:
            ious.append(_iou(drawn, person_clip.masks[t]))
        else:  # no person tracked there: the frame is left as it was
            assert drawn.sum() < 20
    assert len(ious) >= 20 and np.mean(ious) > 0.7 and min(ious) > 0.6, np.round(ious, 2)
    # a person-sized mesh shifted by a tenth of the frame overlaps far less: the test can tell
    shifted = np.roll(person_clip.masks[12], 26, axis=1)
    assert _iou(shifted, person_clip.masks[12]) < 0.4


def test_side_view_and_another_renderer_from_the_cache(oracle_run, person_clip, anny_body):
    from demo_fixtures import OraclePredictor

    from maed.demo.pipeline import DemoOptions, run_demo
    from maed.render.overlay import SIDE_BACKGROUND

    out, first = oracle_run
    side = _frames(out / "overlay_side.mp4")
    assert len(side) == len(person_clip.masks)
    person = first["people"][0]
    drawn = [(np.abs(f.astype(int) - np.array(SIDE_BACKGROUND)).sum(axis=-1) > 30).sum() for f in side]
    front = _silhouette(_frames(out / "overlay.mp4")[12], _frames(person_clip.path)[12]).sum()
    for t, n in enumerate(drawn):  # a person-sized mesh over the plain background, where a person is tracked
        tracked = person["first_frame"] <= t <= person["last_frame"]
        assert (0.4 * front < n < 2.5 * front) if tracked else n < 20, (t, n, front)
    options = DemoOptions(out=out, min_track_length=10, export=False, renderer="opencv", progress=False)
    second = run_demo(person_clip.path, options, predictor=OraclePredictor(person_clip, anny_body), log=lambda m: 0)
    assert second["renderer"]["backend"] == "opencv"
    assert all(second["stages"][s]["cached"] for s in ("detect", "track", "infer"))
    overlay, video = _frames(out / "overlay.mp4"), _frames(person_clip.path)
    t = 12
    assert _iou(_silhouette(overlay[t], video[t]), person_clip.masks[t]) > 0.6
    assert json.loads((out / "summary.json").read_text())["renderer"]["backend"] == "opencv"
