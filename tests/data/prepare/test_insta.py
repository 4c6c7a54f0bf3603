"""``maed prepare insta``: InstaVariety TFRecords, read without TensorFlow."""

from __future__ import annotations

import joblib
import numpy as np

from tests.data.prepare.raw_data import prepare, write_insta

# ---------------------------------------------------------------------------------------- InstaVariety
#: 49-joint index of each of the 25 InstaVariety joints (14 LSP, 5 face, 6 foot; VIBE's names)
INSTA_TO_SPIN = [24, 10, 9, 12, 13, 21, 4, 3, 2, 5, 6, 7, 1, 38, 0, 16, 15, 18, 17, 19, 22, 20, 23, 14, 11]


def test_insta_tfrecord(tmp_path):
    raw = tmp_path / "insta"
    written = write_insta(raw)
    assert prepare("insta", raw, tmp_path / "db") == 0
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
    assert prepare("insta", raw, tmp_path / "db") == 2
    err = capsys.readouterr().err
    assert "part-0.tfrecord" in err and "truncated" in err
