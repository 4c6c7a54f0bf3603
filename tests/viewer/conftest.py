"""Fixtures of the viewer tests: demo runs of two people on a generated video (a stand-in model over Anny, poses
that swing with time), and a headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.viewer.browser import Browser, find_chromium

FPS = 20.0
NUM_FRAMES = 40
WIDTH, HEIGHT = 240, 160
#: two people standing side by side (cx, cy, w, h pixels); person 2 enters at frame 5 and leaves after 34
BOXES = {1: (70.0, 85.0, 60.0, 120.0), 2: (170.0, 85.0, 60.0, 120.0)}
SPANS = {1: (0, NUM_FRAMES - 1), 2: (5, 34)}


def write_video(path: Path) -> Path:
    """H.264 frames whose content moves with the frame index: a bright square crossing the frame over a
    gradient, and a bar whose length is the frame index, so any two frames differ visibly."""
    import av

    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    background = np.stack([60 + 80 * xs / WIDTH, 70 + 60 * ys / HEIGHT, np.full_like(xs, 110.0)], axis=-1)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=int(FPS))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "18"}
        for i in range(NUM_FRAMES):
            image = background.copy()
            x = int(10 + (WIDTH - 50) * i / (NUM_FRAMES - 1))
            image[10:40, x : x + 30] = (250, 240, 90)
            image[HEIGHT - 8 :, : int(WIDTH * (i + 1) / NUM_FRAMES)] = (240, 240, 240)
            frame = av.VideoFrame.from_ndarray(image.astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_boxes(path: Path) -> Path:
    frames = []
    for i in range(NUM_FRAMES):
        ids = [pid for pid, (first, last) in SPANS.items() if first <= i <= last]
        frames.append({"frame": i, "boxes": [list(BOXES[pid]) for pid in ids], "track_ids": ids})
    path.write_text(json.dumps({"box_format": "cxcywh", "frames": frames}))
    return path


class SwingPredictor:
    """Stands in for the network (``maed.demo.infer.ModelPredictor``'s interface) over Anny's cmu_mb rig: the body
    upright, facing the camera and filling its crop, arms waving and legs swinging over the clip, each person in
    their own phase."""

    def __init__(self, body_model):
        self.body_model = body_model
        self.signature = {"model": "swing"}

    def predict(self, tracks, frames, **kw):
        from scipy.spatial.transform import Rotation

        from maed.demo.infer import TrackPrediction

        labels = self.body_model.bone_labels
        J, S = self.body_model.num_joints, self.body_model.num_betas
        out = {}
        for t in tracks:
            T = len(t.frames)
            rotmat = np.tile(np.eye(3, dtype=np.float32), (T, J, 1, 1))
            rotmat[:, 0] = np.diag([1.0, -1.0, -1.0])  # y up, facing +z (the body model) -> y down, facing the camera
            wave = np.sin(2 * np.pi * t.frames / NUM_FRAMES + t.track_id)[:, None]  # (T, 1)
            for bone, axis, degrees in (("LeftArm", "z", -40 + 50 * wave), ("RightArm", "z", 40 - 50 * wave),
                                        ("LeftUpLeg", "x", 35 * wave), ("RightUpLeg", "x", -35 * wave)):  # fmt: skip
                rotmat[:, labels.index(bone)] = Rotation.from_euler(axis, degrees, degrees=True).as_matrix()
            cam = np.tile(np.array([0.75, 0.0, 0.05], np.float32), (T, 1))
            out[t.track_id] = TrackPrediction(cam=cam, rotmat=rotmat, betas=np.zeros((T, S), np.float32))
        return out


def demo_run(folder: Path, body_model, **options) -> Path:
    """A demo run of the two people into ``folder/out``; ``options``: DemoOptions fields."""
    from maed.demo.pipeline import DemoOptions, run_demo

    folder.mkdir(parents=True, exist_ok=True)
    video = write_video(folder / "two_people.mp4")
    boxes = write_boxes(folder / "boxes.json")
    out = folder / "out"
    settings = dict(out=out, boxes=boxes, min_track_length=5, keypoint_model="none", progress=False)
    run_demo(video, DemoOptions(**{**settings, **options}), predictor=SwingPredictor(body_model), log=lambda m: 0)
    return out


@pytest.fixture(scope="session")
def anny_cmu():
    """Anny on the shipped model's 31-bone rig (its small triangles draw fast in software WebGL)."""
    from maed.body import build_body_model

    return build_body_model("anny", rig="cmu_mb")


@pytest.fixture(scope="session")
def viewer_run(tmp_path_factory, anny_cmu) -> Path:
    """The output folder of a two-person demo run with every output (index.html included)."""
    return demo_run(tmp_path_factory.mktemp("viewer_run"), anny_cmu)


@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium chromium-driver; .ci/run installs it)")
    with Browser.start(width=1280, height=640) as b:
        yield b
