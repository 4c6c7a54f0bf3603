"""``maed prepare`` for the 2D video datasets: InstaVariety (TFRecords), PoseTrack (json), PennAction (.mat)."""

from __future__ import annotations

import joblib
import numpy as np
from fixtures_raw import PENN_ORDER, write_insta, write_pennaction, write_posetrack

from maed.cli import main

SPIN = {
    "rankle": 25,
    "rknee": 26,
    "rhip": 27,
    "lhip": 28,
    "lknee": 29,
    "lankle": 30,
    "rwrist": 31,
    "relbow": 32,
    "rshoulder": 33,
    "lshoulder": 34,
    "lelbow": 35,
    "lwrist": 36,
    "neck": 37,
    "headtop": 38,
    "nose": 44,
    "leye": 45,
    "reye": 46,
    "lear": 47,
    "rear": 48,
}


def _prepare(name: str, raw, out, *extra: str) -> int:
    return main(["prepare", name, "--raw", str(raw), "--out", str(out), "--no-progress", *extra])


# ---------------------------------------------------------------------------------------- InstaVariety
#: 49-joint index of each of the 25 InstaVariety joints (14 LSP, 5 face, 6 foot; VIBE's names)
INSTA_TO_SPIN = [24, 10, 9, 12, 13, 21, 4, 3, 2, 5, 6, 7, 1, 38, 0, 16, 15, 18, 17, 19, 22, 20, 23, 14, 11]


def test_insta_tfrecord(tmp_path):
    raw = tmp_path / "insta"
    written = write_insta(raw)
    assert _prepare("insta", raw, tmp_path / "db") == 0
    db = joblib.load(tmp_path / "db" / "insta_train_db.pt")
    h, w = written["size"]
    exp_kp, names, vids = [], [], []
    for k, v in enumerate(written["videos"]):
        kp = np.zeros((v["n"], 25, 3))
        kp[:, :14, :2] = v["xys"].transpose(0, 2, 1)
        kp[:, :14, 2] = v["vis"][:, 0]
        kp[:, 14:19] = v["face"].transpose(0, 2, 1)
        if v["toes"] is not None:
            kp[:, 19:] = v["toes"].transpose(0, 2, 1)
        if v["phis"]:
            kp[..., 0] = (kp[..., 0] + 1) / 2 * w
            kp[..., 1] = (kp[..., 1] + 1) / 2 * h
        spin = np.zeros((v["n"], 49, 3))
        spin[:, INSTA_TO_SPIN] = kp
        exp_kp.append(spin)
        for i in range(v["n"]):
            name = f"insta_variety_img/train/part-0.tfrecord/{k}/{i}.jpg"
            names.append(name)
            vids.append(f"train/part-0.tfrecord-{k}")
            assert (raw / name).read_bytes() == v["jpegs"][i]  # the frame's own bytes
    assert "bbox" not in db
    np.testing.assert_array_equal(db["img_name"], names)
    np.testing.assert_array_equal(db["vid_name"], vids)
    np.testing.assert_array_equal(db["frame_id"], [0, 1, 2, 0, 1])
    np.testing.assert_allclose(db["joints2D"], np.concatenate(exp_kp), rtol=1e-6, atol=1e-4)


def test_insta_truncated_record(tmp_path, capsys):
    raw = tmp_path / "insta"
    written = write_insta(raw)
    data = written["path"].read_bytes()
    written["path"].write_bytes(data[: len(data) - 40])
    assert _prepare("insta", raw, tmp_path / "db") == 2
    err = capsys.readouterr().err
    assert "part-0.tfrecord" in err and "truncated" in err


def test_tfrecord_reader_checks_crc(tmp_path):
    import pytest
    from fixtures_raw import encode_example, tfrecord_bytes

    from maed.data.prepare.tfrecord import iter_records, parse_example
    from maed.errors import DataError

    ex = encode_example({"a": [1, -2, 300], "b": np.array([0.5, -1.25], np.float32), "c": [b"xy", b""]})
    path = tmp_path / "r.tfrecord"
    path.write_bytes(tfrecord_bytes([ex, ex]))
    records = list(iter_records(path, check_crc=True))
    assert len(records) == 2
    feat = parse_example(records[0])
    assert feat["a"] == [1, -2, 300] and feat["c"] == [b"xy", b""]
    np.testing.assert_array_equal(feat["b"], [0.5, -1.25])
    bad = bytearray(path.read_bytes())
    bad[20] ^= 0xFF
    path.write_bytes(bytes(bad))
    with pytest.raises(DataError, match="CRC"):
        list(iter_records(path, check_crc=True))


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
    assert _prepare("posetrack", raw, tmp_path / "db") == 0
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
    import json

    raw = tmp_path / "posetrack"
    write_posetrack(raw)
    path = raw / "posetrack_data" / "annotations" / "train" / "000001_bonn_train.json"
    good = path.read_text()
    data = json.loads(good)
    data["annotations"][0]["track_id"] = "first"
    path.write_text(json.dumps(data))
    assert _prepare("posetrack", raw, tmp_path / "db") == 2
    err = capsys.readouterr().err
    assert str(path) in err and "'annotations[0].track_id' is 'first'" in err
    data = json.loads(good)
    del data["images"][0]["file_name"]
    path.write_text(json.dumps(data))
    assert _prepare("posetrack", raw, tmp_path / "db") == 2
    assert "'images[0].file_name' is missing" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ PennAction
def test_pennaction_official_order(tmp_path):
    raw = tmp_path / "penn"
    written = write_pennaction(raw)
    assert _prepare("pennaction", raw, tmp_path / "db") == 0
    db = joblib.load(tmp_path / "db" / "pennaction_train_db.pt")
    n = len(written["x"])
    exp = np.zeros((n, 49, 3))
    for j, name in enumerate(PENN_ORDER):
        exp[:, SPIN[name]] = np.stack([written["x"][:, j], written["y"][:, j], written["visibility"][:, j]], -1)
    np.testing.assert_allclose(db["joints2D"], exp, rtol=1e-6)
    np.testing.assert_array_equal(db["img_name"], [f"frames/0001/{i:06d}.jpg" for i in range(1, n + 1)])
    np.testing.assert_array_equal(db["vid_name"], ["0001"] * n)
    for t in range(n):
        vis = written["visibility"][t] > 0
        xs, ys = written["x"][t, vis], written["y"][t, vis]
        side = max(xs.max() - xs.min(), ys.max() - ys.min())
        np.testing.assert_allclose(
            db["bbox"][t], [(xs.max() + xs.min()) / 2, (ys.max() + ys.min()) / 2, side, side], rtol=1e-5
        )


def test_pennaction_bad_label_shape_and_missing_frames(tmp_path, capsys):
    import scipy.io

    raw = tmp_path / "penn"
    write_pennaction(raw)
    mat = scipy.io.loadmat(raw / "labels" / "0001.mat")
    mat["x"] = mat["x"][:, :12]
    scipy.io.savemat(raw / "labels" / "0001.mat", {k: v for k, v in mat.items() if not k.startswith("__")})
    assert _prepare("pennaction", raw, tmp_path / "db") == 2
    err = capsys.readouterr().err
    assert "0001.mat" in err and "'x'" in err and "(5, 12)" in err

    raw2 = tmp_path / "penn2"
    write_pennaction(raw2)
    for f in (raw2 / "frames" / "0001").iterdir():
        f.unlink()
    (raw2 / "frames" / "0001").rmdir()
    assert _prepare("pennaction", raw2, tmp_path / "db") == 2
    assert "frames/0001" in capsys.readouterr().err
