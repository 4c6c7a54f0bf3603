"""maed synth --people and --video: an exact people count, an H.264 video and plain-array ground truth per
sequence; and the committed sample clip made that way (samples/two_people.*)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from maed.data.database import load_database
from maed.errors import ConfigError
from maed.synth import generator
from maed.synth.sequence import project

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
ARRAYS = ("bbox", "joints2D", "joints3D", "pose", "shape", "trans", "valid")


def _decode(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.fixture(scope="module")
def two_people(tmp_path_factory):
    out = tmp_path_factory.mktemp("video") / "run"
    args = dict(sequences=1, frames=3, seed=11, width=128, height=96, people=2)
    summary = generator.generate(out, **args, video=True, workers=1, progress=False)
    return out, args, summary


def test_people_sets_the_count_and_video_writes_each_sequence_with_its_ground_truth(two_people):
    out, args, summary = two_people
    assert len(json.loads((out / "synth.json").read_text())["sequences"][0]["people"]) == 2
    assert json.loads((out / "synth_run.json").read_text())["people"] == 2
    video, truth = out / "videos" / "seq_0000.mp4", out / "videos" / "seq_0000_gt.npz"
    assert summary.videos == {"seq_0000": video}
    frames = _decode(video)
    assert len(frames) == 3 and frames[0].shape == (96, 128, 3)
    first = (out / "frames" / "seq_0000" / "000000.jpg").read_bytes()
    import cv2

    jpeg = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.abs(frames[0].astype(float) - jpeg).mean() < 4  # the same picture (two lossy encodings apart)
    with np.load(truth, allow_pickle=False) as gt:
        db = load_database(out / "synth_train_db.pt")
        assert list(gt["person"]) == list(dict.fromkeys(str(v) for v in db["vid_name"]))
        for key in ARRAYS:
            assert gt[key].shape[:2] == (2, 3), key
            np.testing.assert_array_equal(gt[key].reshape(6, *gt[key].shape[2:]), db[key])  # people, then frames
        assert gt["frame_id"].tolist() == [0, 1, 2] and gt["image_size"].tolist() == [128, 96]
        assert float(gt["fps"]) == 30.0 and str(gt["rig"]) == "cmu_mb" and len(gt["bone_names"]) == 31


def test_a_rerun_with_video_resumes_and_without_people_keeps_the_old_identity(two_people, tmp_path):
    out, args, _ = two_people
    before = (out / "videos" / "seq_0000.mp4").stat().st_mtime_ns
    again = generator.generate(out, **args, video=True, workers=1, progress=False)
    assert again.rendered == 0 and (out / "videos" / "seq_0000.mp4").stat().st_mtime_ns == before
    spec = generator.RunSpec(sequences=1, frames=3, seed=0, width=64, height=64, body_model="anny", rig="cmu_mb")
    assert "people" not in spec.identity()  # runs from before --people existed still resume
    with pytest.raises(ConfigError, match="--people 3: expected 1 to 2"):
        generator.generate(tmp_path / "x", sequences=1, frames=1, max_people=2, people=3, progress=False)


def test_committed_sample_clip_matches_its_ground_truth():
    video, truth = SAMPLES / "two_people.mp4", SAMPLES / "two_people_gt.npz"
    assert video.stat().st_size <= 2_000_000 and truth.stat().st_size <= 2_000_000
    frames = _decode(video)
    with np.load(truth, allow_pickle=False) as gt:
        width, height = gt["image_size"].tolist()
        assert len(frames) == len(gt["frame_id"]) >= 90 and frames[0].shape == (height, width, 3)
        assert gt["bbox"].shape[:2] == (2, len(frames)) and gt["valid"].all()
        cx, cy, w, h = np.moveaxis(gt["bbox"], -1, 0)
        assert (cx - w / 2 >= 0).all() and (cx + w / 2 <= width).all()  # both boxes inside every frame
        assert (cy - h / 2 >= 0).all() and (cy + h / 2 <= height).all()
        joints = gt["joints2D"]
        seen = joints[..., 2] > 0
        inside = (np.abs(joints[..., 0] - cx[..., None]) <= w[..., None] / 2) & (
            np.abs(joints[..., 1] - cy[..., None]) <= h[..., None] / 2
        )
        assert inside[seen].all() and seen[:, :, 25:39].mean() > 0.9  # the people are in view
        intrinsics = gt["intrinsics"].T[:, :, None]  # (4, T, 1): fx, fy, cx, cy per frame, against P x T x 49
        uv = project(gt["joints3D"][..., :3].astype(np.float64), intrinsics)
        assert np.abs(uv - joints[..., :2])[seen].max() < 0.05  # pixels
