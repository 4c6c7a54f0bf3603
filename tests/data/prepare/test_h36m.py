"""``maed prepare h36m``: SPIN-style npz files."""

from __future__ import annotations

import joblib
import numpy as np

from tests.data.prepare.raw_data import prepare, write_h36m


def test_h36m_npz(tmp_path):
    raw = tmp_path / "h36m"
    written = write_h36m(raw)
    assert prepare("h36m", raw, tmp_path / "db") == 0
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
