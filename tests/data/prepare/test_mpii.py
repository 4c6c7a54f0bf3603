"""``maed prepare mpii``: the official MPII ``.mat``."""

from __future__ import annotations

import joblib
import numpy as np

from tests.data.prepare.raw_data import prepare, square, write_mpii

#: MPII joint ids 0-15 -> 49-joint index
MPII_TO_SPIN = [25, 26, 27, 28, 29, 30, 39, 40, 37, 38, 31, 32, 33, 34, 35, 36]


def test_mpii_official_mat(tmp_path):
    raw = tmp_path / "mpii"
    written = write_mpii(raw)
    assert prepare("mpii", raw, tmp_path / "db") == 0
    db = joblib.load(tmp_path / "db" / "mpii_train_db.pt")
    people = written["people"]
    np.testing.assert_array_equal(db["img_name"], [f"images/{name}" for name, _ in people])
    for row, (_, xy) in enumerate(people):
        exp = np.zeros((49, 3))
        for j, (x, y) in xy.items():
            exp[MPII_TO_SPIN[j]] = [x, y, 1.0]
        np.testing.assert_allclose(db["joints2D"][row], exp, rtol=1e-6)
        np.testing.assert_allclose(db["bbox"][row], square(np.array(list(xy.values())), 1.1), rtol=1e-5)
