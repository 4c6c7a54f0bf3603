"""``maed prepare`` for Human3.6M (SPIN npz), COCO 2014 (json), MPII (official .mat) and LSPet (joints.mat)."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
from fixtures_raw import COCO_ORDER, write_coco, write_h36m, write_lspet, write_mpii

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
    "hip": 39,
    "thorax": 40,
    "nose": 44,
    "leye": 45,
    "reye": 46,
    "lear": 47,
    "rear": 48,
}
#: MPII joint ids 0-15 -> 49-joint index
MPII_TO_SPIN = [25, 26, 27, 28, 29, 30, 39, 40, 37, 38, 31, 32, 33, 34, 35, 36]


def _prepare(name: str, raw, out, *extra: str) -> int:
    return main(["prepare", name, "--raw", str(raw), "--out", str(out), "--no-progress", *extra])


def _square(points: np.ndarray, scale: float) -> np.ndarray:
    lo, hi = points.min(0), points.max(0)
    side = (hi - lo).max() * scale
    return np.array([*(lo + hi) / 2, side, side])


def test_h36m_npz(tmp_path):
    raw = tmp_path / "h36m"
    written = write_h36m(raw)
    assert _prepare("h36m", raw, tmp_path / "db") == 0
    train = joblib.load(tmp_path / "db" / "h36m_train_db.pt")
    src = written["train"]
    order = [1, 3, 4, 2, 0]  # Directions 1, 6; Walking 1, 6, 11
    np.testing.assert_array_equal(train["img_name"], src["imgname"][order])
    np.testing.assert_array_equal(train["vid_name"], ["S1_Directions_1.54138969"] * 2 + ["S1_Walking_1.54138969"] * 3)
    np.testing.assert_array_equal(train["frame_id"], [1, 6, 1, 6, 11])
    np.testing.assert_allclose(train["joints2D"][:, 25:], src["part"][order], rtol=1e-6)
    assert not train["joints2D"][:, :25].any()
    np.testing.assert_allclose(train["joints3D"][:, 25:], src["S"][order], rtol=1e-6)
    np.testing.assert_allclose(train["pose"], src["pose"][order], rtol=1e-6)
    np.testing.assert_allclose(train["shape"], src["shape"][order], rtol=1e-6)
    side = 200 * src["scale"][order]
    np.testing.assert_allclose(train["bbox"], np.stack([*src["center"][order].T, side, side], 1), rtol=1e-6)
    test = joblib.load(tmp_path / "db" / "h36m_test_db.pt")
    assert "pose" not in test and len(test["img_name"]) == 3
    assert not test["joints2D"].any()  # the protocol file has no 2D joints


def test_coco_train_and_val_together(tmp_path):
    raw = tmp_path / "coco"
    written = write_coco(raw)
    assert _prepare("coco2014", raw, tmp_path / "db") == 0
    db = joblib.load(tmp_path / "db" / "coco2014-all_train_db.pt")
    kept = written["kept"]
    np.testing.assert_array_equal(db["img_name"], [k[0] for k in kept])
    for row, (_, kp, (x, y, w, h)) in enumerate(kept):
        exp = np.zeros((49, 3))
        for j, name in enumerate(COCO_ORDER):
            exp[SPIN[name]] = [kp[j, 0], kp[j, 1], float(kp[j, 2] > 0)]
        np.testing.assert_allclose(db["joints2D"][row], exp, rtol=1e-6)
        np.testing.assert_allclose(db["bbox"][row], [x + w / 2, y + h / 2, max(w, h), max(w, h)], rtol=1e-6)


@pytest.mark.parametrize(
    "break_it,field",
    [
        (lambda d: d["annotations"][0].__setitem__("bbox", [1.0, 2.0, 3.0]), r"'annotations\[0\]\.bbox' has 3 values"),
        (lambda d: d["annotations"][0].pop("bbox"), r"'annotations\[0\]\.bbox' has 0 values"),
        (lambda d: d["annotations"][0].__setitem__("image_id", -7), r"'annotations\[0\]\.image_id' \(-7\)"),
        (lambda d: d["images"][0].pop("file_name"), r"'images\[0\]' needs 'id' and 'file_name'"),
    ],
)
def test_coco_malformed_annotation_names_file_and_field(tmp_path, capsys, break_it, field):
    import json
    import re

    raw = tmp_path / "coco"
    write_coco(raw)
    ann = raw / "annotations" / "person_keypoints_train2014.json"
    data = json.loads(ann.read_text())
    data["annotations"].sort(key=lambda a: -int(np.count_nonzero(np.asarray(a["keypoints"])[2::3])))  # a kept one first
    break_it(data)
    ann.write_text(json.dumps(data))
    assert _prepare("coco2014", raw, tmp_path / "db") == 2
    err = capsys.readouterr().err
    assert str(ann) in err and re.search(field, err), err


def test_mpii_official_mat(tmp_path):
    raw = tmp_path / "mpii"
    written = write_mpii(raw)
    assert _prepare("mpii", raw, tmp_path / "db") == 0
    db = joblib.load(tmp_path / "db" / "mpii_train_db.pt")
    people = written["people"]
    np.testing.assert_array_equal(db["img_name"], [f"images/{name}" for name, _ in people])
    for row, (_, xy) in enumerate(people):
        exp = np.zeros((49, 3))
        for j, (x, y) in xy.items():
            exp[MPII_TO_SPIN[j]] = [x, y, 1.0]
        np.testing.assert_allclose(db["joints2D"][row], exp, rtol=1e-6)
        np.testing.assert_allclose(db["bbox"][row], _square(np.array(list(xy.values())), 1.1), rtol=1e-5)


@pytest.mark.parametrize("lsp_layout", [False, True])
def test_lspet_joints_mat(tmp_path, lsp_layout):
    raw = tmp_path / "lspet"
    written = write_lspet(raw, lsp_layout=lsp_layout)
    assert _prepare("lspet", raw, tmp_path / "db") == 0
    db = joblib.load(tmp_path / "db" / "lspet_train_db.pt")
    n = len(written["xy"])
    pattern = "images/im{:04d}.jpg" if lsp_layout else "images/im{:05d}.jpg"
    np.testing.assert_array_equal(db["img_name"], [pattern.format(i + 1) for i in range(n)])
    np.testing.assert_allclose(db["joints2D"][:, 25:39, :2], written["xy"], rtol=1e-6)
    np.testing.assert_array_equal(db["joints2D"][:, 25:39, 2], written["visible"].astype(np.float32))
    assert not db["joints2D"][:, :25].any() and not db["joints2D"][:, 39:].any()
    for i in range(n):
        np.testing.assert_allclose(db["bbox"][i], _square(written["xy"][i][written["visible"][i]], 1.1), rtol=1e-5)


def test_lspet_image_count_mismatch(tmp_path, capsys):
    raw = tmp_path / "lspet"
    write_lspet(raw)
    (raw / "images" / "im00004.jpg").unlink()
    assert _prepare("lspet", raw, tmp_path / "db") == 2
    err = capsys.readouterr().err
    assert "3 images" in err and "'joints'" in err and "joints.mat" in err
