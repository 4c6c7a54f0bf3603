"""``maed render --viewer``: a page per video of evaluation predictions, with GLBs written for its people."""

from __future__ import annotations

import json
import zipfile

import cv2
import numpy as np
import pytest

from maed.cli import main
from tests.viewer.test_viewer_browser import errors, open_page
from tests.viewer.test_viewer_page import read_data

FRAMES, WIDTH, HEIGHT, FPS = 6, 160, 120, 10.0
#: who is predicted in which frame: walker_1 is missing from frame 3 (the evaluation skipped it there)
PRESENT = {"walker_0": range(0, 6), "walker_1": [1, 2, 4]}
BOXES = {"walker_0": (50.0, 60.0, 80.0, 80.0), "walker_1": (112.0, 60.0, 80.0, 80.0)}


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    """A one-video evaluation directory of two Anny people (the default 104-bone rig) and its frames."""
    from maed.body import build_body_model

    J, S = build_body_model("anny").num_joints, 6
    root = tmp_path_factory.mktemp("render_viewer")
    (root / "images" / "seq").mkdir(parents=True)
    for i in range(FRAMES):
        image = np.full((HEIGHT, WIDTH, 3), 40 + 30 * i, np.uint8)
        cv2.imwrite(str(root / "images" / "seq" / f"{i:06d}.png"), image)
    rows = []
    for name, frames in PRESENT.items():
        for i in frames:
            pose = np.zeros(3 * J, np.float32)
            pose[0] = np.pi  # upright in the camera frame (y down), as predictions are
            pose[3 * 1 + 2] = 0.15 * i  # a bone turning over time: every frame has its own pose
            theta = np.concatenate([[0.8, 0.0, 0.05], pose, np.zeros(S)]).astype(np.float32)
            rows.append((f"/elsewhere/seq/{i:06d}.png", name, theta, BOXES[name]))
    eval_dir = root / "eval"
    eval_dir.mkdir()
    arrays = {
        "theta": np.stack([r[2] for r in rows]),
        "boxes": np.array([r[3] for r in rows], np.float32),
        "paths": np.array([r[0] for r in rows]),
        "sequence": np.array([r[1] for r in rows]),
    }
    with zipfile.ZipFile(eval_dir / "predictions.npz", "w") as zf:
        for key, value in arrays.items():
            with zf.open(f"{key}.npy", "w") as fh:
                np.lib.format.write_array(fh, value, allow_pickle=False)
    (eval_dir / "metrics.json").write_text(json.dumps({"dataset": "3dpw", "run": {"model": {"BODY_MODEL": "anny"}}}))
    out = root / "visual"
    args = ["render", str(eval_dir), "--root", str(root / "images"), "--out", str(out), "--fps", str(FPS)]
    assert main([*args, "--viewer", "--no-progress", "--no-antialias"]) == 0
    return {"eval": eval_dir, "images": root / "images", "out": out}


def _rotations(glb, node: int) -> np.ndarray:
    """The keys of a GLB's rotation channel for joint node ``node``: K x 4 quaternions."""
    import pygltflib

    gltf = pygltflib.GLTF2().load(str(glb))
    animation = gltf.animations[0]
    channel = next(c for c in animation.channels if c.target.node == node and c.target.path == "rotation")
    accessor = gltf.accessors[animation.samplers[channel.sampler].output]
    view = gltf.bufferViews[accessor.bufferView]
    data = gltf.binary_blob()[view.byteOffset : view.byteOffset + view.byteLength]
    return np.frombuffer(data, np.float32).reshape(accessor.count, 4)


def test_each_video_gets_a_page_and_each_person_a_glb(evaluation, capsys):
    out = evaluation["out"]
    assert (out / "seq.mp4").is_file() and (out / "seq.html").is_file() and (out / "index.html").is_file()
    assert 'href="seq.html"' in (out / "index.html").read_text()
    scene = read_data(out / "seq.html")["scene"]
    assert (scene["fps"], scene["num_frames"], scene["video"]) == (FPS, FRAMES, "seq.mp4")
    assert [(p["id"], p["name"], p["first_frame"], p["last_frame"]) for p in scene["people"]] == [
        (0, "walker_0", 0, 5),
        (1, "walker_1", 1, 4),
    ]
    # one key per frame of the span; frame 3, without walker_1's prediction, keeps frame 2's pose
    keys = _rotations(out / "seq_people" / "person_1.glb", node=2)
    assert len(keys) == 4 and np.allclose(keys[2], keys[1]) and not np.allclose(keys[3], keys[2], atol=1e-3)
    assert len(_rotations(out / "seq_people" / "person_0.glb", node=2)) == FRAMES


def test_the_render_page_shows_both_people_in_the_browser(browser, evaluation):
    open_page(browser, evaluation["out"] / "seq.html")
    assert browser.run("return window.maedViewer.screenBox(1)") is None  # walker_1 enters at frame 1
    browser.run("return window.maedViewer.setFrame(2)")
    for k in (0, 1):
        box = browser.run("return window.maedViewer.screenBox(arguments[0])", k)
        assert box is not None and box["bottom"] - box["top"] > 30, box
    assert errors(browser) == []


def test_viewer_needs_the_mp4_videos(evaluation, tmp_path, capsys):
    args = ["render", str(evaluation["eval"]), "--root", str(evaluation["images"]), "--out", str(tmp_path / "png")]
    assert main([*args, "--format", "png", "--viewer"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "maed render: error: --viewer shows the videos beside the bodies: it needs --format mp4 (the default)"
    assert not (tmp_path / "png").exists()


def test_view_opens_the_list_of_render_pages(evaluation, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["view", str(evaluation["out"])]) == 0
    assert str(evaluation["out"] / "index.html") in capsys.readouterr().out
