"""``maed demo`` end to end on a generated video file, the stage cache, and every bad input of issue 9."""

from __future__ import annotations

import json

import cv2
import joblib
import numpy as np
import pytest

from maed.cli import main

PERSON_KEYS = {
    "frame_ids", "boxes", "detected", "cam_crop", "cam_full", "trans", "pose", "rotmat", "betas", "joints3d",
    "joints2d", "keypoints_coco", "keypoints_blazepose", "keypoints_blazepose_world",
}  # fmt: skip
VIBE_KEYS = {"pred_cam", "orig_cam", "verts", "pose", "betas", "joints3d", "joints2d", "bboxes", "frame_ids"}


def _demo(*args):
    return main(["demo", *map(str, args), "--no-progress", "--device", "cpu"])


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, person_clip, tiny_checkpoint):
    out = tmp_path_factory.mktemp("demo_cli") / "out"
    rc = _demo(person_clip.path, "--out", out, "--checkpoint", tiny_checkpoint, "--min-track-length", 10)
    return rc, out, json.loads((out / "summary.json").read_text())


def test_one_person_is_found_and_tracked(first_run, person_clip):
    rc, out, summary = first_run
    assert rc == 0
    assert summary["detector"]["tier"] == "movenet" and summary["num_people"] == 1 and summary["frames"] == 24
    assert summary["input"]["kind"] == "video" and (summary["input"]["width"], summary["input"]["height"]) == (256, 192)
    with np.load(out / "tracks.npz", allow_pickle=False) as z:
        pid = int(z["person_ids"][0])
        frames, boxes = z[f"person_{pid}/frame_ids"], z[f"person_{pid}/boxes"]
    assert len(frames) >= 20 and np.all(np.diff(frames) == 1)  # gaps of the detector are bridged
    truth = person_clip.boxes[frames]
    centre = (truth[:, :2] + truth[:, 2:]) / 2
    assert np.all(np.abs(boxes[:, :2] - centre) < 0.15 * boxes[:, 2:])  # the crop box is on the person
    height = truth[:, 3] - truth[:, 1]
    assert np.all((boxes[:, 2] > height) & (boxes[:, 2] < 1.4 * height))  # square, 1.1 x the person


def test_every_output_exists_and_loads(first_run, smpl_body):
    rc, out, summary = first_run
    with np.load(out / "tracks.npz", allow_pickle=False) as z:
        ids = z["person_ids"].tolist()
        assert z["image_size"].tolist() == [256, 192] and float(z["fps"]) == 25.0 and int(z["num_frames"]) == 24
        assert {k.split("/", 1)[1] for k in z.files if "/" in k} == PERSON_KEYS  # no vertices without --save-verts
        T = len(z[f"person_{ids[0]}/frame_ids"])
        shapes = {k.split("/", 1)[1]: z[k].shape for k in z.files if k.startswith(f"person_{ids[0]}/")}
    assert shapes["joints3d"] == (T, 49, 3) and shapes["joints2d"] == (T, 49, 2) and shapes["pose"] == (T, 72)
    assert shapes["rotmat"] == (T, 24, 3, 3) and shapes["cam_full"] == (T, 4) and shapes["trans"] == (T, 3)
    results = joblib.load(out / "results.pkl")
    assert list(results) == ids and VIBE_KEYS <= set(results[ids[0]])
    assert results[ids[0]]["verts"].shape == (T, smpl_body.num_vertices, 3)
    assert results[ids[0]]["joints2d"] is None  # VIBE: no 2D keypoints were tracked
    stages = summary["stages"]
    for name in ("decode", "detect", "track", "infer", "post"):
        assert stages[name]["seconds"] >= 0 and not stages[name]["cached"], name
    # decoded four times (detection, landmarks, crops, overlay), each input frame counted once
    assert stages["decode"]["frames"] == 24 and stages["decode"]["passes"] == 4
    assert summary["model"]["body_model"] == "smpl" and summary["model"]["checkpoint"].endswith("tiny.pt")
    assert summary["model"]["joints"] == 49 and summary["model"]["kinematic_joints"] == 24  # as tracks.npz holds
    assert summary["model"]["body_model_dir"] is not None  # SMPL's files were read from there
    assert summary["model"]["precision"].startswith("fp32 (")  # the demo's default, on any machine
    assert set(summary["outputs"]) >= {"tracks.npz", "results.pkl", "summary.json"}
    assert all((out / name).is_file() for name in summary["outputs"])


def test_rerun_with_other_output_options_reuses_the_cached_stages(first_run, tiny_checkpoint, person_clip, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(first_run[1], out)  # the other tests read the first run's outputs
    with np.load(out / "tracks.npz") as z:
        raw_pose = z[f"person_{z['person_ids'][0]}/pose"]
    assert _demo(person_clip.path, "--out", out, "--checkpoint", tiny_checkpoint, "--min-track-length", 10,
                 "--smooth", "--no-render", "--no-export", "--save-verts") == 0  # fmt: skip
    second = json.loads((out / "summary.json").read_text())
    assert all(second["stages"][s]["cached"] for s in ("detect", "track", "infer"))
    assert "decode" not in second["stages"] and "load_model" in second["stages"]  # the body model only
    with np.load(out / "tracks.npz") as z:
        pid = z["person_ids"][0]
        smoothed, verts = z[f"person_{pid}/pose"], z[f"person_{pid}/verts"]
        assert verts.shape[0] == raw_pose.shape[0] and z["faces"].shape[1] == 3
    assert not np.allclose(smoothed, raw_pose, atol=1e-4)  # --smooth changed the poses, without inference


# ------------------------------------------------------------------------------------------ bad input
def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert err.startswith("maed demo: error: ") and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


def _background_video(path, frames=12):
    import av
    from demo_fixtures import textured_background

    image = textured_background(128, 96, seed=3)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for _ in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_input_errors_are_one_line_with_exit_code_2(tmp_path, capsys, tiny_checkpoint):
    ck = ("--checkpoint", tiny_checkpoint)
    (tmp_path / "notes.mp4").write_text("not a video")
    assert _demo(tmp_path / "notes.mp4", "--out", tmp_path / "o", *ck) == 2
    _one_line_error(capsys, str(tmp_path / "notes.mp4"), "not a video file that can be decoded", "expected a video")
    (tmp_path / "empty").mkdir()
    assert _demo(tmp_path / "empty", "--out", tmp_path / "o", *ck) == 2
    _one_line_error(capsys, "the folder holds no image files")
    (tmp_path / "results").write_text("keep me")
    assert _demo(tmp_path / "notes.mp4", "--out", tmp_path / "results", *ck) == 2
    _one_line_error(capsys, "--out", "exists and is not a directory")
    assert (tmp_path / "results").read_text() == "keep me"
    for option, value in [
        ("--batch-size", "0"),
        ("--detect-every", "0"),
        ("--fine-pass-every", "0"),
        ("--iou-threshold", "1.5"),
    ]:
        assert _demo(tmp_path / "notes.mp4", "--out", tmp_path / "o", *ck, option, value) == 2
        _one_line_error(capsys, f"{option} {value}: expected")
    assert not (tmp_path / "o").exists()  # nothing written for a failed start


def test_zero_frame_video_and_missing_default_model(tmp_path, capsys, monkeypatch):
    import av

    path = tmp_path / "zero.avi"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    assert _demo(path, "--out", tmp_path / "o") == 2
    _one_line_error(capsys, "the video has no frames")
    clip = _background_video(tmp_path / "bg.mp4", frames=2)
    monkeypatch.setattr("maed.paths.project_root", lambda: tmp_path / "installation")  # one without the model
    assert _demo(clip, "--out", tmp_path / "o") == 2  # no --checkpoint, and no shipped model
    _one_line_error(capsys, "no default model", "--checkpoint")


def test_wrong_boxes_schema_names_the_field(tmp_path, capsys, tiny_checkpoint):
    clip = _background_video(tmp_path / "bg.mp4")
    (tmp_path / "boxes.json").write_text(
        json.dumps({"box_format": "xyxy", "frames": [{"frame": 0, "boxes": [[1, 2]]}]})
    )
    assert (
        _demo(clip, "--out", tmp_path / "o", "--boxes", tmp_path / "boxes.json", "--checkpoint", tiny_checkpoint) == 2
    )
    _one_line_error(capsys, "frames[0].boxes[0]: expected 4 finite numbers (x1, y1, x2, y2)")
    (tmp_path / "boxes.json").write_text(json.dumps({"box_format": "xyxy", "frames": [{"frame": 12, "boxes": []}]}))
    assert (
        _demo(clip, "--out", tmp_path / "o", "--boxes", tmp_path / "boxes.json", "--checkpoint", tiny_checkpoint) == 2
    )
    _one_line_error(capsys, "frames[0].frame", "below 12")


def test_no_person_found_writes_empty_outputs_and_exits_0(tmp_path, capsys, tiny_checkpoint):
    clip = _background_video(tmp_path / "bg.mp4")
    out = tmp_path / "out"
    assert _demo(clip, "--out", out, "--checkpoint", tiny_checkpoint, "--no-render") == 0
    err = capsys.readouterr().err
    assert "no person found" in err and "--detector full-frame" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_people"] == 0 and summary["frames"] == 12 and "no person found" in summary["messages"][0]
    with np.load(out / "tracks.npz", allow_pickle=False) as z:
        assert z["person_ids"].shape == (0,) and int(z["num_frames"]) == 12
    assert joblib.load(out / "results.pkl") == {}


def test_a_run_that_finds_nobody_says_nothing_was_rendered(tmp_path, capsys, tiny_checkpoint):
    clip = _background_video(tmp_path / "bg.mp4")
    out = tmp_path / "out"
    assert _demo(clip, "--out", out, "--checkpoint", tiny_checkpoint) == 0
    printed = capsys.readouterr().out
    assert "renderer: nothing drawn (no person to draw)" in printed and "renderer: None" not in printed
    summary = json.loads((out / "summary.json").read_text())
    render = summary["stages"]["render"]
    assert render["frames"] == 0 and render["fps"] is None  # no frame rate for work not done
    assert summary["stages"]["encode"]["frames"] == 12 and (out / "overlay.mp4").is_file()  # the input, as is


def test_the_default_output_folder_is_ignored_by_git():
    import subprocess
    from pathlib import Path

    from maed.demo.options import DemoOptions

    root = Path(__file__).resolve().parents[2]
    default = str(DemoOptions().out)
    assert f"/{default}/" in (root / ".gitignore").read_text().split()
    if (root / ".git").exists():  # a checkout: ask git itself
        probe = subprocess.run(["git", "check-ignore", "-q", f"{default}/summary.json"], cwd=root, check=False)
        assert probe.returncode == 0


def test_tracks_shorter_than_the_minimum_and_a_bad_frame(tmp_path, capsys, tiny_checkpoint):
    folder = tmp_path / "frames"
    folder.mkdir()
    from demo_fixtures import textured_background

    for i in range(12):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), textured_background(64, 48, seed=i)[..., ::-1])
    (folder / "005.jpg").write_bytes(b"\xff\xd8 truncated")
    boxes = {"box_format": "xyxy", "frames": [{"frame": f, "boxes": [[10, 5, 40, 45]], "track_ids": [3]}
                                              for f in range(8)]}  # fmt: skip
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "out"
    args = ["--out", out, "--boxes", tmp_path / "boxes.json", "--checkpoint", tiny_checkpoint, "--no-render"]
    assert _demo(folder, *args, "--min-track-length", 9) == 0
    assert "every track (1) is shorter than 9 frames (--min-track-length)" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_people"] == 0 and summary["dropped_tracks"] == 1 and summary["frames"] == 12
    with np.load(out / "tracks.npz", allow_pickle=False) as z:
        assert z["person_ids"].shape == (0,)
    assert _demo(folder, *args, "--min-track-length", 8) == 0  # the same input, a track long enough
    err = capsys.readouterr().err
    assert "frame 5" in err and "005.jpg" in err  # a warning when inference reads the broken frame
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_people"] == 1 and summary["people"][0]["id"] == 3 and summary["stages"]["detect"]["cached"]
    assert summary["input"]["replaced_frames"] == [5] and "005.jpg" in summary["messages"][0]


def test_the_documented_example_runs_on_the_outputs(first_run, person_clip, tmp_path, monkeypatch):
    """docs/OUTPUTS.md's example (load tracks.npz, draw one person's 2D joints on a frame) works as written."""
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "OUTPUTS.md").read_text()
    start = doc.index("### Example: draw one person's 2D joints on a frame")
    code = doc[doc.index("```python", start) + len("```python") : doc.index("```", doc.index("```python", start) + 9)]
    rc, out, _ = first_run
    code = code.replace('"output/tracks.npz"', repr(str(out / "tracks.npz")))
    code = code.replace('"input.mp4"', repr(str(person_clip.path)))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "OUTPUTS.md example", "exec"), namespace)
    drawn = cv2.imread(str(tmp_path / "joints.png"))
    assert drawn.shape == (192, 256, 3)
    green = (drawn[..., 1] > 200) & (drawn[..., 0] < 60) & (drawn[..., 2] < 60)
    assert green.sum() > 20  # the joints were drawn


def test_overlay_has_every_input_frame_at_the_input_size_and_rate(first_run, person_clip):
    from maed.demo.source import open_source

    rc, out, summary = first_run
    overlay = open_source(out / "overlay.mp4")
    assert (overlay.info.width, overlay.info.height, overlay.info.fps) == (256, 192, 25.0)
    frames = [f for _, f in overlay.frames()]
    assert len(frames) == 24 == overlay.count_frames()
    assert summary["renderer"]["backend"] in ("gl", "opencv") and "overlay.mp4" in summary["outputs"]
    assert summary["stages"]["render"]["frames"] == summary["stages"]["encode"]["frames"] == 24


def test_animation_files_hold_every_tracked_frame_and_the_body_models_joints(first_run, smpl_body):
    import bvhio
    import pygltflib

    from maed.export.rig import CAMERA_TO_FILE, rig_from_body_model

    rc, out, summary = first_run
    pid = summary["people"][0]["id"]
    with np.load(out / "tracks.npz") as z:
        T = len(z[f"person_{pid}/frame_ids"])
        trans, betas = z[f"person_{pid}/trans"], z[f"person_{pid}/betas"]
    gltf = pygltflib.GLTF2().load(str(out / f"person_{pid}.glb"))
    assert len(gltf.skins) == 1 and len(gltf.skins[0].joints) == smpl_body.num_joints == 24
    (animation,) = gltf.animations
    times = {gltf.accessors[s.input].count for s in animation.samplers}
    assert times == {T}  # one key per tracked frame
    assert gltf.accessors[animation.samplers[0].input].max[0] == pytest.approx((T - 1) / 25.0, rel=1e-5)
    bvh = bvhio.readAsBvh(str(out / f"person_{pid}.bvh"))
    assert bvh.FrameCount == T and bvh.FrameTime == pytest.approx(1 / 25.0)
    assert len(list(bvh.Root.layout())) == 24
    # the root moves by the camera-frame translation, turned y up, in centimetres
    rig = rig_from_body_model(smpl_body, betas.mean(axis=0))
    root = np.array([list(k.Position) for k in bvh.Root.Keyframes])
    expected = (rig.joint_offsets()[0] + trans) @ CAMERA_TO_FILE.T * 100.0
    np.testing.assert_allclose(root, expected, rtol=1e-4, atol=1e-2)


def test_a_single_image_with_the_full_frame_tier(tmp_path, person_clip, tiny_checkpoint):
    from maed.demo.source import open_source

    _, frame = next(open_source(person_clip.path).frames())
    image = tmp_path / "person.png"
    cv2.imwrite(str(image), frame[..., ::-1])
    out = tmp_path / "out"
    assert _demo(image, "--out", out, "--checkpoint", tiny_checkpoint, "--detector", "full-frame", "--no-export") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input"]["kind"] == "image" and summary["frames"] == 1
    assert summary["detector"]["tier"] == "full-frame" and summary["num_people"] == 1  # min length capped at 1
    with np.load(out / "tracks.npz") as z:
        np.testing.assert_allclose(z["person_1/boxes"][0], [128, 96, 192, 192])  # the centred square
    assert len(list(open_source(out / "overlay.mp4").frames())) == 1
    # and the overlay as a lossless picture: the input with the mesh drawn over the person, nowhere else
    still = cv2.imread(str(out / "overlay.png"))[..., ::-1]
    assert still.shape == frame.shape and "overlay.png" in summary["outputs"]
    changed = np.abs(still.astype(int) - frame.astype(int)).max(-1) > 30
    assert changed[48:144, 80:176].mean() > 10 * changed[:, :40].mean() and changed.any()


def test_command_line_defaults_are_the_options_defaults():
    """maed demo's parser takes every default from DemoOptions: parsing no option gives DemoOptions()."""
    from maed.cli import build_parser
    from maed.demo.cli import options_from_args
    from maed.demo.options import DemoOptions

    args = build_parser().parse_args(["demo", "in.mp4", "--out", "o"])
    assert options_from_args(args) == DemoOptions(out="o")


def test_without_input_the_demo_runs_on_the_sample_clip(tmp_path, tiny_checkpoint, capsys):
    """`maed demo --checkpoint CK`: the committed sample clip (two Anny people), detected by the default tier
    (OpenCV HOG) and tracked over its 120 frames. HOG finds the nearer person in nearly every frame and the
    farther, smaller one in about a third, too seldom for a track: one track, which follows the nearer
    person's ground-truth box."""
    from maed.paths import sample_clip

    out = tmp_path / "out"
    assert _demo("--checkpoint", tiny_checkpoint, "--out", out, "--no-render", "--no-export") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["input"]["path"] == str(sample_clip()) and summary["detector"]["tier"] == "movenet"
    assert summary["num_people"] >= 1
    with np.load(sample_clip().with_name("two_people_gt.npz"), allow_pickle=False) as gt:
        truth = gt["bbox"][..., :2]  # (2 people, 120 frames, centre)
    with np.load(out / "tracks.npz", allow_pickle=False) as z:
        for i in z["person_ids"]:
            frames, centres = z[f"person_{i}/frame_ids"], z[f"person_{i}/boxes"][:, :2]
            assert len(frames) >= 90
            distance = np.linalg.norm(truth[:, frames] - centres[None], axis=-1).mean(axis=1)  # px, per person
            assert distance.min() < 25, distance
