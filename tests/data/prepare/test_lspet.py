"""``maed prepare lspet``: LSP / LSPet ``joints.mat``."""

from __future__ import annotations

import joblib
import numpy as np
import pytest

from tests.data.prepare.raw_data import prepare, square, write_lspet


@pytest.mark.parametrize("lsp_layout", [False, True])
def test_lspet_joints_mat(tmp_path, lsp_layout):
    raw = tmp_path / "lspet"
    written = write_lspet(raw, lsp_layout=lsp_layout)
    assert prepare("lspet", raw, tmp_path / "db") == 0
    db = joblib.load(tmp_path / "db" / "lspet_train_db.pt")
    n = len(written["xy"])
    pattern = "images/im{:04d}.jpg" if lsp_layout else "images/im{:05d}.jpg"
    np.testing.assert_array_equal(db["img_name"], [pattern.format(i + 1) for i in range(n)])
    np.testing.assert_allclose(db["joints2D"][:, 25:39, :2], written["xy"], rtol=1e-6)
    np.testing.assert_array_equal(db["joints2D"][:, 25:39, 2], written["visible"].astype(np.float32))
    assert not db["joints2D"][:, :25].any() and not db["joints2D"][:, 39:].any()
    for i in range(n):
        np.testing.assert_allclose(db["bbox"][i], square(written["xy"][i][written["visible"][i]], 1.1), rtol=1e-5)


def test_lspet_image_count_mismatch(tmp_path, capsys):
    raw = tmp_path / "lspet"
    write_lspet(raw)
    (raw / "images" / "im00004.jpg").unlink()
    assert prepare("lspet", raw, tmp_path / "db") == 2
    err = capsys.readouterr().err
    assert "3 images" in err and "'joints'" in err and "joints.mat" in err
