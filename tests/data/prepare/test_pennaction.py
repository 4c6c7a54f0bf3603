"""``maed prepare pennaction``: Penn Action labels in the official joint order."""

from __future__ import annotations

import joblib
import numpy as np

from tests.data.prepare.raw_data import PENN_ORDER, SPIN, prepare, write_pennaction


# ------------------------------------------------------------------------------------------ PennAction
def test_pennaction_official_order(tmp_path):
    raw = tmp_path / "penn"
    written = write_pennaction(raw)
    assert prepare("pennaction", raw, tmp_path / "db") == 0
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
    assert prepare("pennaction", raw, tmp_path / "db") == 2
    err = capsys.readouterr().err
    assert "0001.mat" in err and "'x'" in err and "(5, 12)" in err

    raw2 = tmp_path / "penn2"
    write_pennaction(raw2)
    for f in (raw2 / "frames" / "0001").iterdir():
        f.unlink()
    (raw2 / "frames" / "0001").rmdir()
    assert prepare("pennaction", raw2, tmp_path / "db") == 2
    assert "frames/0001" in capsys.readouterr().err
