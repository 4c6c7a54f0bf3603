"""The allow-list unpickler for databases: every way joblib and pickle write plain data loads; anything
that asks for other code is refused by name and never runs."""

from __future__ import annotations

import io
import os
import pickle
import shlex

import joblib
import numpy as np
import pytest

from maed.data.database import load_database
from maed.errors import DataError
from maed.testing.smpl import py2_pickle_bytes
from maed.utils.safe_pickle import load_joblib


def authors_style() -> dict:
    """What the authors' ``*_db.pt`` files hold: numpy arrays of several dtypes and layouts, lists of str."""
    rng = np.random.default_rng(0)
    return {
        "vid_name": np.array(["downtown_walking_00_0"] * 3),
        "frame_id": np.arange(3),
        "img_name": ["data/3dpw/imageFiles/a/image_00000.jpg", "b/image_00001.jpg", "b/image_00002.jpg"],
        "joints2D": rng.normal(size=(3, 49, 3)).astype(np.float32),
        "joints3D": np.asfortranarray(rng.normal(size=(3, 49, 4))),
        "bbox": rng.normal(size=(3, 4)).astype(">f8"),  # big-endian, as written on another machine
        "valid": np.array([True, False, True]),
        "features": np.array([["x", 1], ["y", 2], ["z", 3]], dtype=object),
        "cam": rng.normal(size=(3, 3)),
        "performance": np.float64(51.2),
    }


def _same(a, b) -> None:
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)


@pytest.mark.parametrize("compress", [0, 3, "gzip", "bz2", "lzma", "xz"])
@pytest.mark.parametrize("target", ["path", "file object"])
def test_every_joblib_format_loads(tmp_path, compress, target):
    db = authors_style()
    path = tmp_path / "3dpw_test_db.pt"
    if target == "path":
        joblib.dump(db, path, compress=compress)
    else:
        with open(path, "wb") as f:
            joblib.dump(db, f, compress=compress)  # no array alignment padding in this layout
    _same(load_joblib(path), joblib.load(path))
    _same(load_joblib(path), db)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_pickles_of_every_protocol_load(tmp_path, protocol):
    path = tmp_path / "db.pt"
    path.write_bytes(pickle.dumps(authors_style(), protocol=protocol))
    _same(load_joblib(path), authors_style())


def test_python2_pickle_loads(tmp_path):
    db = {k: v for k, v in authors_style().items() if k != "features"}
    path = tmp_path / "db.pt"
    path.write_bytes(py2_pickle_bytes(db))
    assert b"cnumpy.core.multiarray\n_reconstruct" in path.read_bytes()
    _same(load_joblib(path), db)


def test_authors_database_loads_through_load_database(tmp_path):
    path = tmp_path / "3dpw_test_db.pt"
    db = authors_style()
    del db["performance"]  # not a per-row field
    joblib.dump(db, path, compress=3)
    loaded = load_database(path)
    assert loaded["joints2D"].shape == (3, 49, 3) and loaded["img_name"][1] == "b/image_00001.jpg"


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def _joblib_bytes(obj, **kw) -> bytes:
    buf = io.BytesIO()
    joblib.dump(obj, buf, **kw)
    return buf.getvalue()


HOSTILE = {
    "pickle protocol 0": lambda p: pickle.dumps({"img_name": Payload(p)}, protocol=0),
    "pickle protocol 2": lambda p: pickle.dumps({"img_name": Payload(p)}, protocol=2),
    "pickle protocol 5": lambda p: pickle.dumps({"img_name": Payload(p)}, protocol=5),
    "joblib": lambda p: _joblib_bytes({"pose": np.zeros((2, 72)), "img_name": Payload(p)}),
    "joblib zlib": lambda p: _joblib_bytes({"pose": np.zeros((2, 72)), "img_name": Payload(p)}, compress=3),
    "joblib xz": lambda p: _joblib_bytes({"img_name": Payload(p)}, compress="xz"),
    "joblib object array": lambda p: _joblib_bytes({"img_name": np.array([Payload(p), 1], dtype=object)}),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_code_in_a_database_is_refused_by_name_and_never_runs(tmp_path, name):
    marker = tmp_path / "ran"
    path = tmp_path / "db.pt"
    path.write_bytes(HOSTILE[name](marker))
    with pytest.raises(DataError, match=rf"{path}: refused to load, it asks for 'posix\.system'"):
        load_joblib(path)
    assert not marker.exists()
    joblib.load(path)  # the file really is hostile: a plain joblib.load runs it
    assert marker.exists()


@pytest.mark.parametrize(
    "module,name", [("builtins", "eval"), ("builtins", "getattr"), ("numpy", "load"), ("subprocess", "Popen")]
)
def test_other_globals_are_refused(tmp_path, module, name):
    path = tmp_path / "db.pt"
    path.write_bytes(f"c{module}\n{name}\n.".encode())
    with pytest.raises(DataError, match=f"asks for '{module}.{name}'"):
        load_joblib(path)


def test_pre_010_joblib_files_are_refused_with_a_reason(tmp_path):
    path = tmp_path / "old_db.pt"
    path.write_bytes(b"ZF0x00000000000000a" + b"x" * 40)
    with pytest.raises(DataError, match="joblib older than 0.10"):
        load_joblib(path)
