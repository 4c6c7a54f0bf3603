"""``maed prepare`` errors and options, ``maed data info`` and ``maed data show``."""

from __future__ import annotations

import cv2
import joblib
import numpy as np
import pytest

from maed.cli import main
from tests.data.prepare.raw_data import write_mpii3d_test, write_pennaction


@pytest.fixture(scope="module")
def mpii3d_val(tmp_path_factory):
    raw = tmp_path_factory.mktemp("mpii3d_raw")
    out = tmp_path_factory.mktemp("db")
    write_mpii3d_test(raw, frames=4, size=(120, 160))
    assert main(["prepare", "mpii3d", "--raw", str(raw), "--out", str(out), "--no-progress"]) == 0
    return raw, out / "mpii3d_val_db.pt"


def test_unknown_dataset_and_missing_raw_dir(tmp_path, capsys):
    assert main(["prepare", "surreal", "--raw", str(tmp_path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'surreal'" in err and "3dpw" in err
    assert main(["prepare", "pennaction", "--raw", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "nope") in err and "labels" in err
    assert main(["prepare", "pennaction", "--raw", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "no pennaction split found" in capsys.readouterr().err


def test_unknown_split(tmp_path, capsys):
    write_pennaction(tmp_path / "penn")
    rc = main(["prepare", "pennaction", "--raw", str(tmp_path / "penn"), "--out", str(tmp_path), "--splits", "test"])
    assert rc == 2 and "unknown split" in capsys.readouterr().err


def test_force_rebuilds(tmp_path, capsys):
    raw, out = tmp_path / "penn", tmp_path / "db"
    write_pennaction(raw)
    args = ["prepare", "pennaction", "--raw", str(raw), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    db_path = out / "pennaction_train_db.pt"
    joblib.dump({"img_name": np.array(["x"])}, db_path)
    assert main(args) == 0 and len(joblib.load(db_path)["img_name"]) == 1  # kept
    assert main([*args, "--force"]) == 0 and len(joblib.load(db_path)["img_name"]) == 5
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_data_info(mpii3d_val, capsys):
    _, db_path = mpii3d_val
    assert main(["data", "info", str(db_path)]) == 0
    text = capsys.readouterr().out
    assert "frames: 3" in text and "sequences: 2" in text  # frame 3 leaves the image: two segments
    assert "joints2D" in text and "(3, 49, 3)" in text and "(3, 49, 4)" in text
    assert "joints3D coverage (17 of 49 joints" in text and "38:headtop 100%" in text


def test_data_info_into_a_closed_pipe_ends_quietly(mpii3d_val):
    """`maed data info DB | head`: the reader leaves before the end; no BrokenPipeError traceback."""
    from tests.test_cli import run_with_closed_stdout

    _, db_path = mpii3d_val
    code, err = run_with_closed_stdout(["data", "info", str(db_path)])
    assert (code, err) == (141, "")


def test_data_show_draws_the_joints(mpii3d_val, tmp_path):
    raw, db_path = mpii3d_val
    out = tmp_path / "sample.png"
    assert main(["data", "show", str(db_path), "--index", "1", "--out", str(out), "--root", str(raw)]) == 0
    img = cv2.imread(str(out))
    assert img.shape == (448, 448, 3)
    db = joblib.load(db_path)
    cx, cy, side, _ = db["bbox"][1]
    s = 448 / (side * 1.3)
    for x, y, c in db["joints2D"][1]:
        if c > 0:
            u, v = int(s * (x - cx) + 224), int(s * (y - cy) + 224)
            assert img[v, u].min() > 200  # a white joint dot


def test_data_show_bad_index_and_missing_image(mpii3d_val, tmp_path, capsys):
    raw, db_path = mpii3d_val
    assert (
        main(["data", "show", str(db_path), "--index", "10", "--out", str(tmp_path / "a.png"), "--root", str(raw)]) == 2
    )
    assert "out of range" in capsys.readouterr().err
    assert main(["data", "show", str(db_path), "--out", str(tmp_path / "a.png"), "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "img_name" in err and "img_000001.jpg" in err


def test_prepare_with_crop_cache(tmp_path, capsys):
    raw, out = tmp_path / "raw", tmp_path / "db"
    write_mpii3d_test(raw, frames=3, size=(120, 160))
    rc = main(
        [
            "prepare",
            "mpii3d",
            "--raw",
            str(raw),
            "--out",
            str(out),
            "--crop-cache",
            "--crop-size",
            "32",
            "--no-progress",
        ]
    )
    assert rc == 0
    cache = out / "crop_cache" / "mpii3d_val_db"
    assert (cache / "meta.json").is_file()
    assert "crop cache in" in capsys.readouterr().out


def test_crop_cache_with_other_parameters_asks_for_force(tmp_path, capsys):
    raw, out = tmp_path / "raw", tmp_path / "db"
    write_mpii3d_test(raw, frames=3, size=(120, 160))
    args = ["prepare", "mpii3d", "--raw", str(raw), "--out", str(out), "--crop-cache", "--no-progress"]
    assert main([*args, "--crop-size", "32"]) == 0
    capsys.readouterr()
    assert main([*args, "--crop-size", "48"]) == 2  # the database exists; its cache has another size
    err = capsys.readouterr().err
    assert "--force" in err and "--overwrite" not in err
    assert main([*args, "--crop-size", "48", "--force"]) == 0
    assert cv2.imread(str(next((out / "crop_cache" / "mpii3d_val_db" / "frames").rglob("*.jpg")))).shape[0] == 48


def test_data_show_with_baked_in_image_paths(mpii3d_val, tmp_path):
    """An authors'-style database ('data/mpi_inf_3dhp/...' names) draws with --root the dataset root."""
    raw, db_path = mpii3d_val
    db = joblib.load(db_path)
    db["img_name"] = np.array(["data/mpi_inf_3dhp/" + n for n in db["img_name"]])
    authors = tmp_path / "mpii3d_val_db.pt"
    joblib.dump(db, authors)
    out = tmp_path / "s.png"
    assert main(["data", "show", str(authors), "--index", "1", "--out", str(out), "--root", str(raw)]) == 0
    assert cv2.imread(str(out)).shape == (448, 448, 3)
