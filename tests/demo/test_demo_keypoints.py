"""``maed demo`` with the shipped person and keypoint networks: the sample clip, keypoints-only runs, OKS tracking."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("av")

from maed.demo import track as trk  # noqa: E402
from maed.perception.detectors import Detections  # noqa: E402


def test_keypoint_similarity_is_one_for_the_same_pose_and_small_for_another():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(0, 100, (1, 17, 2)), np.ones((1, 17, 1))], -1)
    b = a.copy()
    b[..., :2] += rng.uniform(-40, 40, (1, 17, 2))
    unseen = a.copy()
    unseen[..., 2] = 0
    sim = trk.keypoint_similarity(a, np.concatenate([a, b, unseen]), np.full(3, 100.0 * 100.0))
    assert sim[0, 0] == pytest.approx(1.0) and sim[0, 1] < 0.5 and sim[0, 2] == 0.0


def test_linking_prefers_the_detection_with_the_tracks_pose_when_boxes_tie():
    """Two detections with the same box as the track: only keypoints tell them apart."""
    rng = np.random.default_rng(1)
    pose = np.concatenate([rng.uniform(10, 90, (17, 2)), np.ones((17, 1))], -1).astype(np.float32)
    other = pose.copy()
    other[:, :2] = 100 - other[:, :2]  # another pose in the same box
    box = np.array([[50.0, 50.0, 80.0, 100.0]])  # cx, cy, w, h
    det = Detections(
        "movenet", 2, np.array([0, 1, 1]), np.repeat(box, 3, 0), np.ones(3, np.float32), np.full(3, -1),
        keypoints=np.stack([pose, other, pose]),
    )  # fmt: skip
    ids = trk.link_detections(det)
    assert ids[2] == ids[0] and ids[1] != ids[0]  # with the IoU alone, the tie goes to the first row
    det.keypoints[:] = 0
    assert trk.link_detections(det)[1] == 0


@pytest.fixture(scope="module")
def sample_keypoints_run(tmp_path_factory):
    from maed.cli import main
    from maed.paths import sample_clip

    out = tmp_path_factory.mktemp("kp") / "out"
    rc = main(["demo", str(sample_clip()), "--keypoints-only", "--out", str(out), "--no-progress"])
    return rc, out, json.loads((out / "summary.json").read_text())


def test_the_sample_clip_gives_two_people_over_most_frames(sample_keypoints_run):
    rc, out, summary = sample_keypoints_run
    assert rc == 0 and summary["detector"]["tier"] == "movenet" and summary["model"] is None
    assert summary["num_people"] == 2
    for person in summary["people"]:  # one id each from start to end: no split tracks
        assert person["frames"] >= 0.9 * summary["frames"]
    with np.load(out / "tracks.npz", allow_pickle=False) as z:
        for pid in z["person_ids"]:
            T = len(z[f"person_{pid}/frame_ids"])
            coco, bp, world = (z[f"person_{pid}/{k}"] for k in ("keypoints_coco", "keypoints_blazepose",
                                                               "keypoints_blazepose_world"))  # fmt: skip
            assert coco.shape == (T, 17, 3) and bp.shape == (T, 33, 4) and world.shape == (T, 33, 3)
            boxes = z[f"person_{pid}/boxes"]
            # BlazePose's seen landmarks lie on the person: inside the (square, 1.1 x) box for most frames
            seen = bp[..., 3] > 0.5
            inside = np.abs(bp[..., :2] - boxes[:, None, :2]) <= 0.6 * boxes[:, None, 2:]
            assert inside.all(-1)[seen].mean() > 0.95
            assert np.median(np.linalg.norm(world[:, 11] - world[:, 12], axis=-1)) < 0.6  # shoulders, metres
    assert {"tracks.npz", "overlay.mp4", "summary.json"} <= set(summary["outputs"])
    assert not (out / "results.pkl").exists()  # no mesh model ran


def test_without_keypoint_weights_the_keypoint_stage_names_the_file_and_command(tmp_path, monkeypatch, capsys):
    from maed.cli import main
    from maed.paths import sample_clip

    monkeypatch.setenv("MAED_PERCEPTION_WEIGHTS", str(tmp_path))
    rc = main(["demo", str(sample_clip()), "--keypoints-only", "--detector", "movenet", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "movenet_multipose_lightning.onnx: no such file" in err[0] and "make_weights.sh" in err[0]


def test_the_demo_without_model_options_runs_the_shipped_model_and_writes_every_output(tmp_path):
    """`maed demo` alone: the sample clip, MoveNet, BlazePose and the shipped keypoint model on Anny."""
    from maed.cli import main

    out = tmp_path / "out"
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["checkpoint"].endswith("maed_kp_anny.pt") and summary["model"]["rig"] == "cmu_mb"
    assert summary["num_people"] == 2
    expected = {"overlay.mp4", "tracks.npz", "results.pkl", "summary.json", "index.html"}
    for person in summary["people"]:
        expected |= {f"person_{person['id']}.glb", f"person_{person['id']}.bvh"}
    assert expected <= {p.name for p in out.iterdir()}
    assert all((out / name).stat().st_size > 0 for name in expected)
    with np.load(out / "tracks.npz") as z:
        pid = summary["people"][0]["id"]
        joints, boxes = z[f"person_{pid}/joints2d"], z[f"person_{pid}/boxes"]
    # the mesh is on its person: the projected joints lie within the person's box in most frames
    inside = (np.abs(joints - boxes[:, None, :2]) <= boxes[:, None, 2:] * 0.75).all(-1).mean()
    assert inside > 0.9
