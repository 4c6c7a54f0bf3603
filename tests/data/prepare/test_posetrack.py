"""``maed prepare posetrack``: PoseTrack 2018 json."""

from __future__ import annotations

import json

import joblib
import numpy as np

from tests.data.prepare.raw_data import prepare, write_posetrack

# ------------------------------------------------------------------------------------------- PoseTrack
#: our index of each joint of the fixture's file order
POSETRACK_FILE_TO_SPIN = {
    0: 25,
    1: 44,
    2: 37,
    3: 38,
    4: 47,
    5: 48,
    6: 34,
    7: 33,
    8: 35,
    9: 32,
    10: 36,
    11: 31,
    12: 28,
    13: 27,
    14: 29,
    15: 26,
    16: 30,
}


def test_posetrack_json(tmp_path, capsys):
    raw = tmp_path / "posetrack"
    written = write_posetrack(raw)
    assert prepare("posetrack", raw, tmp_path / "db") == 0
    assert "skipped 021133_mpii_train.json" in capsys.readouterr().out
    db = joblib.load(tmp_path / "db" / "posetrack_train_db.pt")
    frames = [0, 1, 3, 4, 5, 7, 8, 10, 11]  # labelled frames of track 0 in order, frame 6 has a 0-wide box
    np.testing.assert_array_equal(db["vid_name"], ["000001_bonn_train_0"] * len(frames))
    np.testing.assert_array_equal(
        db["img_name"], [f"posetrack_data/images/train/000001_bonn_train/{f:06d}.jpg" for f in frames]
    )
    for row, f in enumerate(frames):
        kp, (x, y, w, h) = written["track0"][f]
        exp = np.zeros((49, 3))
        for src, dst in POSETRACK_FILE_TO_SPIN.items():
            exp[dst] = [kp[src, 0], kp[src, 1], 0.0 if src == 4 else 1.0]
        np.testing.assert_allclose(db["joints2D"][row], exp, rtol=1e-6)
        side = 0.8 * max(w, h)
        np.testing.assert_allclose(db["bbox"][row], [x + w / 2, y + h / 2, side, side], rtol=1e-6)
    assert "posetrack_val_db.pt" not in {p.name for p in (tmp_path / "db").iterdir()}


def test_posetrack_malformed_entries_name_file_and_field(tmp_path, capsys):

    raw = tmp_path / "posetrack"
    write_posetrack(raw)
    path = raw / "posetrack_data" / "annotations" / "train" / "000001_bonn_train.json"
    good = path.read_text()
    data = json.loads(good)
    data["annotations"][0]["track_id"] = "first"
    path.write_text(json.dumps(data))
    assert prepare("posetrack", raw, tmp_path / "db") == 2
    err = capsys.readouterr().err
    assert str(path) in err and "'annotations[0].track_id' is 'first'" in err
    data = json.loads(good)
    del data["images"][0]["file_name"]
    path.write_text(json.dumps(data))
    assert prepare("posetrack", raw, tmp_path / "db") == 2
    assert "'images[0].file_name' is missing" in capsys.readouterr().err
