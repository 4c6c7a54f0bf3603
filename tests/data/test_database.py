"""Databases: save/load in the authors' joblib format, validation errors naming file and field."""

from __future__ import annotations

import hashlib

import joblib
import numpy as np
import pytest

from maed.data.database import database_filename, load_database, rebase_image_names, save_database
from maed.errors import DataError


def _db(n: int = 3) -> dict:
    rng = np.random.default_rng(0)
    return {
        "vid_name": np.array(["a"] * n),
        "frame_id": np.arange(n),
        "img_name": np.array([f"imageFiles/a/image_{i:05d}.jpg" for i in range(n)]),
        "joints2D": rng.normal(size=(n, 49, 3)).astype(np.float32),
        "joints3D": rng.normal(size=(n, 49, 4)).astype(np.float32),
        "pose": rng.normal(size=(n, 72)).astype(np.float32),
        "shape": rng.normal(size=(n, 10)).astype(np.float32),
        "bbox": rng.uniform(10, 100, size=(n, 4)).astype(np.float32),
        "valid": np.ones(n, dtype=bool),
    }


def test_round_trip_is_a_plain_joblib_dict(tmp_path):
    db = _db()
    path = save_database(db, tmp_path / database_filename("3dpw", "test"))
    assert path.name == "3dpw_test_db.pt"
    raw = joblib.load(path)  # readable without maed, as the authors' files
    assert isinstance(raw, dict) and set(raw) == set(db)
    loaded = load_database(path)
    for k in db:
        np.testing.assert_array_equal(loaded[k], db[k])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3dpw_test_db.pt", "3dpw_test_db.pt.sha256"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (tmp_path / "3dpw_test_db.pt.sha256").read_text() == f"{digest}  3dpw_test_db.pt\n"  # sha256sum -c


def test_authors_style_file_loads(tmp_path):
    """Lists, (n, 1) flags, rotation-matrix poses and extra fields, as older files have them."""
    n = 2
    db = {
        "vid_name": ["v", "v"],
        "img_name": ["x.jpg", "y.jpg"],
        "joints2D": np.zeros((n, 49, 3)),
        "pose": np.tile(np.eye(3), (n, 24, 1, 1)),
        "valid_i": np.ones((n, 1)),
        "features": np.zeros((n, 2048)),
    }
    joblib.dump(db, tmp_path / "mpii3d_val_db.pt")
    loaded = load_database(tmp_path / "mpii3d_val_db.pt")
    assert isinstance(loaded["vid_name"], np.ndarray) and loaded["valid_i"].shape == (n,)
    assert loaded["pose"].shape == (n, 24, 3, 3) and loaded["features"].shape == (n, 2048)


@pytest.mark.parametrize(
    "field,value,expected",
    [
        ("joints2D", np.zeros((3, 25, 3)), r"'joints2D' has shape \(3, 25, 3\), expected \(3, 49, 3\)"),
        ("bbox", np.zeros((2, 4)), r"'bbox' has shape \(2, 4\), expected \(3, 4\)"),
        ("pose", np.zeros((3, 24, 3)), r"'pose' has shape .* or \(3, 24, 3, 3\)"),
        ("features", np.zeros((4, 8)), r"'features' has shape \(4, 8\), expected \(3, ...\)"),
    ],
)
def test_wrong_shapes_name_file_and_field(tmp_path, field, value, expected):
    db = _db()
    db[field] = value
    path = tmp_path / "x_db.pt"
    joblib.dump(db, path)
    with pytest.raises(DataError, match=expected) as e:
        load_database(path)
    assert str(path) in str(e.value)
    with pytest.raises(DataError, match=expected):
        save_database(db, tmp_path / "y_db.pt")
    assert not (tmp_path / "y_db.pt").exists()


def test_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="database not found"):
        load_database(tmp_path / "none_db.pt")
    path = save_database(_db(), tmp_path / "t_db.pt")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_database(path)
    joblib.dump([1, 2], tmp_path / "l_db.pt")
    with pytest.raises(DataError, match="expected a dict"):
        load_database(tmp_path / "l_db.pt")
    joblib.dump({"joints2D": np.zeros((1, 49, 3))}, tmp_path / "m_db.pt")
    with pytest.raises(DataError, match="missing field 'img_name'"):
        load_database(tmp_path / "m_db.pt")


def test_rebase_image_names():
    db = {"img_name": np.array(["data/3dpw/imageFiles/a/image_00000.jpg", "imageFiles/b/image_00001.jpg"])}
    out = rebase_image_names(db, "data/3dpw/")
    assert out["img_name"].tolist() == ["imageFiles/a/image_00000.jpg", "imageFiles/b/image_00001.jpg"]
    assert db["img_name"][0].startswith("data/")  # the input is not modified


@pytest.mark.parametrize(
    "data,message",
    [
        (
            b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x08nomodule\x94\x8c\x03Foo\x94\x93\x94.",
            "refused to load, it asks for 'nomodule.Foo'",  # an unknown class is never imported
        ),
        (b"\x80\x04K", "not a readable joblib database"),  # an opcode cut inside its argument
        (b"", "not a readable joblib database"),
    ],
)
def test_corrupt_files_raise_one_data_error(tmp_path, data, message):
    path = tmp_path / "c_db.pt"
    path.write_bytes(data)
    with pytest.raises(DataError, match=message) as e:
        load_database(path)
    assert str(path) in str(e.value)


def test_truncated_files_raise_one_data_error(tmp_path):
    """Every cut of an uncompressed joblib file (numpy buffers inline) gives the DataError."""
    path = save_database(_db(8), tmp_path / "t_db.pt")
    data = path.read_bytes()
    for cut in range(1, len(data), 7):
        path.write_bytes(data[:cut])
        with pytest.raises(DataError, match="truncated or corrupt"):
            load_database(path)


def test_per_row_fields_stored_as_columns_become_vectors(tmp_path):
    """Every one-value-per-row field accepted as n x 1 is flattened, not only the flags."""
    db = _db()
    for key in ("vid_name", "frame_id", "img_name", "valid"):
        db[key] = db[key][:, None]
    joblib.dump(db, tmp_path / "x_db.pt")
    loaded = load_database(tmp_path / "x_db.pt")
    for key in ("vid_name", "frame_id", "img_name", "valid"):
        assert loaded[key].shape == (3,)
    assert loaded["img_name"][1] == "imageFiles/a/image_00001.jpg"
