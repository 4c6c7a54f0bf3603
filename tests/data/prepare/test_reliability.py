"""``maed prepare`` and ``maed data show`` against damaged outputs, missing images and bad output paths."""

from __future__ import annotations

import hashlib
import os
import time

import joblib
import numpy as np
import pytest

from maed.cli import main
from maed.data import database
from tests.data.prepare.raw_data import write_3dpw, write_h36m, write_mpii3d_test, write_pennaction

DB = "pennaction_train_db.pt"


@pytest.fixture
def penn(tmp_path):
    raw, out = tmp_path / "penn", tmp_path / "db"
    write_pennaction(raw)
    return raw, out, ["prepare", "pennaction", "--raw", str(raw), "--out", str(out), "--no-progress"]


def _aged(path, seconds: float = 3600):
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


def test_a_complete_database_is_skipped_without_loading_it(penn, capsys, monkeypatch):
    raw, out, args = penn
    assert main(args) == 0
    digest = hashlib.sha256((out / DB).read_bytes()).hexdigest()
    assert (out / (DB + ".sha256")).read_text() == f"{digest}  {DB}\n"
    capsys.readouterr()

    def no_loading(path):
        raise AssertionError("a database with a matching checksum file is not loaded again")

    monkeypatch.setattr(database, "load_database", no_loading)
    assert main(args) == 0
    assert f"{out / DB} exists, skipped" in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_a_database_that_does_not_load_is_rebuilt_and_the_run_says_so(penn, capsys, damage):
    raw, out, args = penn
    assert main(args) == 0
    data = (out / DB).read_bytes()
    (out / DB).write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"\x00" * 99}[damage])
    capsys.readouterr()
    assert main(args) == 0
    text = capsys.readouterr().out
    assert f"{out / DB} exists but does not load, rebuilding it" in text
    assert "replaced a file that did not load" in text and "wrote" in text
    assert len(database.load_database(out / DB)["img_name"]) == 5
    assert database.verify_database_file(out / DB).status == "complete"


def test_a_loadable_database_without_our_checksum_is_kept_and_reported(penn, capsys):
    """The authors' files carry no checksum: kept as they are, with a message; --force rebuilds them."""
    raw, out, args = penn
    out.mkdir()
    joblib.dump({"img_name": np.array(["frames/0001/000001.jpg"])}, out / DB)  # an authors'-style file
    assert main(args) == 0
    text = capsys.readouterr().out
    assert f"{out / DB} exists and was kept as it is" in text and "no checksum file" in text and "--force" in text
    assert len(database.load_database(out / DB)["img_name"]) == 1
    (out / (DB + ".sha256")).write_text(f"{'0' * 64}  {DB}\n")  # a checksum of other content
    assert main(args) == 0
    assert "does not match its checksum file" in capsys.readouterr().out
    assert len(database.load_database(out / DB)["img_name"]) == 1
    assert main([*args, "--force"]) == 0
    assert len(database.load_database(out / DB)["img_name"]) == 5


def test_missing_images_stop_prepare_unless_allowed(tmp_path, capsys):
    raw, out = tmp_path / "h36m", tmp_path / "db"
    write_h36m(raw)
    for frame in ("000006", "000011"):
        (raw / "images" / f"S1_Walking_1.54138969_{frame}.jpg").unlink()
    args = ["prepare", "h36m", "--raw", str(raw), "--out", str(out), "--splits", "train", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "h36m train: 2 of the 5 images it refers to are not files under" in err
    assert "first: images/S1_Walking_1.54138969_000006.jpg" in err and "nothing written" in err
    assert "--allow-missing-images" in err
    assert not out.exists() or not list(out.iterdir())
    assert main([*args, "--allow-missing-images"]) == 0
    assert "warning: 2 of the 5 images" in capsys.readouterr().out
    assert len(database.load_database(out / "h36m_train_db.pt")["img_name"]) == 5


def test_3dpw_without_its_image_folder_fails(tmp_path, smpl_dir, capsys):
    """The issue's case: sequence files present, imageFiles/ absent."""
    import shutil

    raw, out = tmp_path / "3dpw", tmp_path / "db"
    write_3dpw(raw, frames=12)
    shutil.rmtree(raw / "imageFiles")
    args = ["prepare", "3dpw", "--raw", str(raw), "--out", str(out), "--body-model-dir", str(smpl_dir)]
    assert main([*args, "--splits", "test", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "3dpw test:" in err and "images it refers to are not files under" in err
    assert "imageFiles/seq_test/image_" in err
    assert not list(out.glob("*_db.pt"))


def test_prepare_checks_its_output_folder_before_reading(penn, tmp_path, capsys, monkeypatch):
    from maed.data.prepare import pennaction

    raw, _, args = penn
    monkeypatch.setattr(pennaction, "read_split", lambda *a: pytest.fail("read before the output was checked"))
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    args = [*args[:4], "--out", str(a_file), "--no-progress"]
    assert main(args) == 2
    assert f"--out {a_file}: exists and is not a directory" in capsys.readouterr().err
    (tmp_path / "db2" / DB).mkdir(parents=True)
    assert main([*args[:4], "--out", str(tmp_path / "db2")]) == 2
    assert "a directory where the database goes" in capsys.readouterr().err


def test_prepare_removes_temporary_files_of_killed_runs(penn, capsys):
    raw, out, args = penn
    out.mkdir()
    stale = _aged_file(out / f".{DB}.k1ll3d00.tmp")
    other = _aged_file(out / "notes.tmp")
    assert main(args) == 0
    assert "removed 1 temporary file(s) of interrupted writes" in capsys.readouterr().out
    assert not stale.exists() and other.exists()


def _aged_file(path):
    path.write_bytes(b"half a database")
    return _aged(path)


def test_data_show_checks_out_before_drawing(tmp_path, capsys):
    raw, out = tmp_path / "raw", tmp_path / "db"
    write_mpii3d_test(raw, frames=3, size=(120, 160))
    assert main(["prepare", "mpii3d", "--raw", str(raw), "--out", str(out), "--no-progress"]) == 0
    db = str(out / "mpii3d_val_db.pt")
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    capsys.readouterr()
    assert main(["data", "show", db, "--out", str(pictures), "--root", str(raw)]) == 2
    err = capsys.readouterr().err.strip()
    example = pictures / "sample.png"
    assert err == f"maed data: error: --out {pictures}: is a directory; give a file name (for example {example})"
    assert main(["data", "show", db, "--out", str(pictures / "x.gif"), "--root", str(raw)]) == 2
    assert "suffix '.gif'" in capsys.readouterr().err
    stale = _aged_file(pictures / ".x.png.abcdefgh.tmp")
    assert main(["data", "show", db, "--out", str(pictures / "x.png"), "--root", str(raw)]) == 0
    assert sorted(p.name for p in pictures.iterdir()) == ["x.png"] and not stale.exists()


def test_crop_cache_build_removes_stale_frames_and_refuses_a_damaged_record(tmp_path):
    from maed.data.crop_cache import build_crop_cache
    from maed.errors import DataError
    from maed.testing.datasets import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "d", name="3dpw", split="test", num_videos=1, frames_per_video=2,
                                   image_size=(64, 48))  # fmt: skip
    cache = tmp_path / "cache"
    stale = cache / "frames" / "0000" / ".0000001.jpg.abcdefgh.tmp"
    stale.parent.mkdir(parents=True)
    _aged_file(stale)
    build_crop_cache(data.db_path, data.dataset_root, cache, size=16, progress=False)
    assert not stale.exists() and (cache / "frames" / "0000" / "0000001.jpg").is_file()
    (cache / "meta.json").unlink()
    (cache / "params.json").write_bytes(b"\x00\x01 not json")
    with pytest.raises(DataError, match="params.json: not a crop cache record"):
        build_crop_cache(data.db_path, data.dataset_root, cache, size=16, progress=False)
