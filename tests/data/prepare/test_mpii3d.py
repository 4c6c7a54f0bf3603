"""``maed prepare mpii3d`` on an ``annot.mat`` / ``annot_data.mat`` tree, checked field by field."""

from __future__ import annotations

import joblib
import numpy as np
import pytest

from maed.cli import main
from tests.data.prepare.raw_data import MPII3D_TO_SPIN, write_mpii3d, write_mpii3d_test

#: 17-joint test-set index of each 49-joint index it fills
TEST_TO_SPIN = {
    38: 0,
    37: 1,
    33: 2,
    32: 3,
    31: 4,
    34: 5,
    35: 6,
    36: 7,
    27: 8,
    26: 9,
    25: 10,
    28: 11,
    29: 12,
    30: 13,
    39: 14,
    41: 15,
    43: 16,
}
VALID_3D = list(range(25, 39)) + [39, 41, 43]


def expected_video(a2: np.ndarray, a3: np.ndarray, mapping: dict, frames: list[int]) -> dict:
    """Rows for the given 0-based frames: joints2D, joints3D (pelvis-centred metres), bbox."""
    j2d = np.zeros((len(frames), 49, 3))
    j3d = np.zeros((len(frames), 49, 4))
    for dst, src in mapping.items():
        j2d[:, dst, :2] = a2[frames, src]
        j2d[:, dst, 2] = 1.0
        j3d[:, dst, :3] = a3[frames, src] / 1000.0
    j3d[:, :, :3] -= j3d[:, 39:40, :3]
    j3d[:, [i for i in range(49) if i not in mapping], :3] = 0.0
    j3d[:, VALID_3D, 3] = 1.0
    src = sorted(mapping.values())
    lo, hi = a2[frames][:, src].min(1), a2[frames][:, src].max(1)
    side = (hi - lo).max(1) * 1.1
    bbox = np.concatenate([(lo + hi) / 2, side[:, None], side[:, None]], axis=1)
    return {"joints2D": j2d, "joints3D": j3d, "bbox": bbox}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    raw = tmp_path_factory.mktemp("mpii3d_raw")
    out = tmp_path_factory.mktemp("db")
    train = write_mpii3d(raw)
    test = write_mpii3d_test(raw)
    assert (
        main(["prepare", "mpii3d", "--raw", str(raw), "--out", str(out), "--cameras", "0", "1", "2", "--no-progress"])
        == 0
    )
    return raw, out, train, test


def test_mpii3d_train_segments_and_fields(prepared):
    raw, out, train, _ = prepared
    db = joblib.load(out / "mpii3d_train_db.pt")
    n_frames = train["frames"]
    # camera 0: frames 5 and 6 (1-based) leave the image -> seg0 = 1..4, seg1 = 7..12
    # camera 1: frame 1 leaves it -> seg0 = 2..12 (the original read the previous video's segment id)
    cam0 = [f for f in range(n_frames) if f not in (4, 5)]
    cam1 = list(range(1, n_frames))
    expected_vids = ["subj1_seq1_vid0_seg0"] * 4 + ["subj1_seq1_vid0_seg1"] * (n_frames - 6)
    expected_vids += ["subj1_seq1_vid1_seg0"] * (n_frames - 1)
    np.testing.assert_array_equal(db["vid_name"], expected_vids)
    np.testing.assert_array_equal(db["frame_id"], [f"frame_{f + 1:06d}" for f in cam0 + cam1])
    np.testing.assert_array_equal(
        db["img_name"],
        [f"S1/Seq1/imageFrames/video_0/frame_{f + 1:06d}.jpg" for f in cam0]
        + [f"S1/Seq1/imageFrames/video_1/frame_{f + 1:06d}.jpg" for f in cam1],
    )
    parts = []
    for cam, frames in ((0, cam0), (1, cam1)):
        a2 = train["annot2"][cam, 0].reshape(-1, 28, 2)
        a3 = train["annot3"][cam, 0].reshape(-1, 28, 3)
        parts.append(expected_video(a2, a3, MPII3D_TO_SPIN, frames))
    for key in ("joints2D", "joints3D", "bbox"):
        np.testing.assert_allclose(db[key], np.concatenate([p[key] for p in parts]), rtol=1e-5, atol=1e-4)
    assert "pose" not in db and "shape" not in db


def test_mpii3d_test_set_is_val(prepared):
    _, out, _, test = prepared
    db = joblib.load(out / "mpii3d_val_db.pt")
    frames = [0, 1, 3, 4, 5]  # frame 3 (1-based) leaves the image
    exp = expected_video(test["annot2"], test["univ_annot3"], TEST_TO_SPIN, frames)
    np.testing.assert_array_equal(db["vid_name"], ["TS1_seg0"] * 2 + ["TS1_seg1"] * 3)
    names = [f"mpi_inf_3dhp_test_set/TS1/imageSequence/img_{f + 1:06d}.jpg" for f in frames]
    np.testing.assert_array_equal(db["img_name"], names)
    np.testing.assert_array_equal(db["valid_i"], test["valid_frame"][frames].astype(bool))
    for key in ("joints2D", "joints3D", "bbox"):
        np.testing.assert_allclose(db[key], exp[key], rtol=1e-5, atol=1e-4)


def test_mpii3d_test_set_matlab_v73(tmp_path):
    pytest.importorskip("h5py")
    raw = tmp_path / "raw"
    test = write_mpii3d_test(raw, hdf5=True)
    with open(raw / "mpi_inf_3dhp_test_set" / "TS1" / "annot_data.mat", "rb") as f:
        assert f.read(10) == b"MATLAB 7.3"
    assert main(["prepare", "mpii3d", "--raw", str(raw), "--out", str(tmp_path / "db"), "--no-progress"]) == 0
    db = joblib.load(tmp_path / "db" / "mpii3d_val_db.pt")
    frames = [0, 1, 3, 4, 5]
    exp = expected_video(test["annot2"], test["univ_annot3"], TEST_TO_SPIN, frames)
    np.testing.assert_array_equal(db["valid_i"], test["valid_frame"][frames].astype(bool))
    for key in ("joints2D", "joints3D", "bbox"):
        np.testing.assert_allclose(db[key], exp[key], rtol=1e-5, atol=1e-4)


def test_mpii3d_reports_videos_without_frames(prepared, capsys):
    raw, out, _, _ = prepared
    assert (
        main(
            [
                "prepare",
                "mpii3d",
                "--raw",
                str(raw),
                "--out",
                str(out),
                "--splits",
                "train",
                "--cameras",
                "0",
                "2",
                "--force",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "1 videos without extracted frames" in capsys.readouterr().out


def test_mpii3d_wrong_annotation_shape(tmp_path, capsys):
    import scipy.io

    raw = tmp_path / "raw"
    write_mpii3d(raw, frames=7)
    cells = np.empty((14, 1), dtype=object)
    for c in range(14):
        cells[c, 0] = np.zeros((3, 50))
    scipy.io.savemat(raw / "S1" / "Seq1" / "annot.mat", {"annot2": cells, "annot3": cells})
    rc = main(["prepare", "mpii3d", "--raw", str(raw), "--out", str(tmp_path / "db"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "annot.mat" in err and "annot2" in err


def test_split_without_extracted_frames_is_reported_not_fatal(tmp_path, capsys):
    """Training annotations whose frames are not extracted yet must not stop the test set ('val')."""
    import shutil

    raw, out = tmp_path / "raw", tmp_path / "db"
    write_mpii3d(raw, frames=6)
    write_mpii3d_test(raw, frames=4, size=(120, 160))
    shutil.rmtree(raw / "S1" / "Seq1" / "imageFrames")
    assert main(["prepare", "mpii3d", "--raw", str(raw), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "train: no usable frames, nothing written" in text and "without extracted frames" in text
    assert sorted(p.name for p in out.iterdir()) == ["mpii3d_val_db.pt", "mpii3d_val_db.pt.sha256"]
    # nothing usable at all: one error saying what the raw tree should hold
    rc = main(["prepare", "mpii3d", "--raw", str(raw), "--out", str(out), "--splits", "train", "--no-progress"])
    assert rc == 2 and "no usable frames" in capsys.readouterr().err
