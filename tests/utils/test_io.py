"""Atomic writes: file modes that follow the umask, one-line write failures, checks up front, stale
temporary files of killed writers."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from maed.errors import OutputError
from maed.utils import io as mio
from maed.utils.io import (
    atomic_joblib_dump,
    atomic_path,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_text,
    check_output_dir,
    check_output_file,
    remove_stale_temporaries,
    scratch_path,
)
from tests.conftest import tmpfs

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def umask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _plain_open_mode(folder: Path) -> int:
    ref = folder / "reference_written_by_open"
    with open(ref, "w"):
        pass
    mode = _mode(ref)
    ref.unlink()
    return mode


def _write_npz(path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, a=np.zeros(3))


def _write_database(path: Path) -> None:
    from maed.data.database import save_database

    save_database({"img_name": np.array(["a.jpg", "b.jpg"])}, path)


WRITERS = {
    "text": lambda p: atomic_write_text(p, "x"),
    "bytes": lambda p: atomic_write_bytes(p, b"x"),
    "torch": lambda p: atomic_torch_save({"w": torch.zeros(2)}, p),
    "joblib": lambda p: atomic_joblib_dump({"a": np.zeros(2)}, p),
    "npz": _write_npz,
    "database": _write_database,
}


# ------------------------------------------------------------------------------------------------ modes
@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_every_output_kind_gets_the_mode_plain_open_gives(tmp_path, mask):
    with umask(mask):
        expected = _plain_open_mode(tmp_path)
        for name, write in WRITERS.items():
            write(tmp_path / f"out_{name}")
            assert _mode(tmp_path / f"out_{name}") == expected, name
        assert _mode(tmp_path / "out_database.sha256") == expected
    assert expected == 0o666 & ~mask


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_images_and_crop_caches_written_by_the_commands_follow_the_umask(tmp_path, mask):
    from maed.cli import main
    from maed.data.crop_cache import build_crop_cache
    from maed.testing.datasets import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "d", name="3dpw", split="test", num_videos=1, frames_per_video=2,
                                   image_size=(64, 48))  # fmt: skip
    with umask(mask):
        expected = _plain_open_mode(tmp_path)
        out = tmp_path / "show" / "sample.png"
        assert main(["data", "show", str(data.db_path), "--out", str(out), "--root", str(data.dataset_root)]) == 0
        cache = build_crop_cache(data.db_path, data.dataset_root, tmp_path / "cache", size=16, progress=False)
    written = [out, *(p for p in cache.rglob("*") if p.is_file())]
    assert any(p.suffix == ".jpg" for p in written) and (cache / "index.npz") in written
    assert {p.name: _mode(p) for p in written} == {p.name: expected for p in written}


def test_replacing_a_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("old")
    path.chmod(0o640)
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o640


# ---------------------------------------------------------------------------------------- write failures
def _no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_a_full_disk_is_one_output_error_naming_the_file(tmp_path):
    with tmpfs(tmp_path / "small", "size=64k") as disk:
        big = np.zeros(50_000)  # 400 kB
        writers = {
            "text": lambda p: atomic_write_text(p, "x" * 200_000),
            "torch": lambda p: atomic_torch_save({"w": torch.from_numpy(big)}, p),
            "joblib": lambda p: atomic_joblib_dump({"a": big}, p),
            "database": _write_big_database,
        }
        for name, write in writers.items():
            target = disk / "sub dir" / f"{name}_out"
            with pytest.raises(OutputError) as e:
                write(target)
            assert str(e.value) == f"cannot write {target}: No space left on device (ENOSPC)", name
            assert not target.exists() and _no_temporaries(disk), name


def _write_big_database(path: Path) -> None:
    from maed.data.database import save_database

    save_database({"img_name": np.array(["a.jpg"] * 5000), "valid": np.ones(5000)}, path)


class _FullFile:
    """A binary file object whose writes fail as on a full disk."""

    def __init__(self, *args, **kwargs):
        self.closed = False

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self):
        pass

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_a_failing_write_becomes_one_output_error(tmp_path, monkeypatch):
    """The same path without a tmpfs: the writers' file object raises ENOSPC."""
    monkeypatch.setattr(mio, "open", _FullFile, raising=False)
    for name, write in (("torch", WRITERS["torch"]), ("joblib", WRITERS["joblib"])):
        target = tmp_path / f"{name}.out"
        with pytest.raises(OutputError, match=rf"^cannot write {target}: No space left on device \(ENOSPC\)$"):
            write(target)
        assert not target.exists()
    monkeypatch.undo()
    erofs = OSError(errno.EROFS, os.strerror(errno.EROFS))
    with (
        pytest.raises(OutputError, match="cannot write .*x.txt: Read-only file system .EROFS."),
        atomic_path(tmp_path / "x.txt"),
    ):
        raise erofs
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_errors_about_other_files_are_not_output_errors(tmp_path):
    with pytest.raises(FileNotFoundError) as e, atomic_path(tmp_path / "out.txt"):
        (tmp_path / "missing_input.txt").read_bytes()  # an input the caller reads while writing
    assert not isinstance(e.value, OutputError)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ checks up front
def test_output_checks_before_the_work(tmp_path, unwritable):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(OutputError, match=f"--out {a_file}: exists and is not a directory"):
        check_output_dir(a_file)
    with pytest.raises(OutputError, match=f"--out {a_file / 'db'}: {a_file} is a file, not a directory"):
        check_output_dir(a_file / "db")
    with pytest.raises(OutputError, match=f"--out {tmp_path}: is a directory; give a file name"):
        check_output_file(tmp_path)
    with pytest.raises(OutputError, match=rf"--out {unwritable / 'new' / 'x.png'}: cannot write in {unwritable}: "):
        check_output_file(unwritable / "new" / "x.png")
    before = sorted(tmp_path.rglob("*"))
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert check_output_file(tmp_path / "x.png") == tmp_path / "x.png"
    assert sorted(tmp_path.rglob("*")) == before  # nothing created, no probe file left


# ------------------------------------------------------------------------------------ stale temporaries
def _age(path: Path, seconds: float = 3600) -> Path:
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


def test_only_stale_temporaries_of_our_naming_are_removed(tmp_path):
    stale = tmp_path / ".last.pt.ab12cd_4.tmp"
    stale.write_bytes(b"partial")
    _age(stale)
    deep = tmp_path / "frames" / "0000" / ".0000001.jpg.k3j4l5m6.tmp"
    deep.parent.mkdir(parents=True)
    deep.write_bytes(b"")
    _age(deep)
    fresh = tmp_path / ".best.pt.zz99yy88.tmp"  # written after this process started: maybe ours, in use
    fresh.write_bytes(b"")
    kept = [fresh]
    for name in ("notes.tmp", ".x.tmp", ".last.pt.ABCDEFGH.tmp", ".last.pt.abc.tmp", "last.pt", ".last.pt.abcdefgh"):
        (tmp_path / name).write_bytes(b"")
        kept.append(_age(tmp_path / name))
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert deep.exists()
    assert remove_stale_temporaries(tmp_path, recursive=True) == [deep]
    assert all(p.exists() for p in kept) and not stale.exists() and not deep.exists()
    assert remove_stale_temporaries(tmp_path / "absent") == []


_WRITER = """
import sys, time
from maed.utils.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a checkpoint")
    print(tmp, flush=True)
    time.sleep(120)
"""


def test_a_live_writers_file_is_kept_and_a_killed_writers_file_removed(tmp_path):
    target = tmp_path / "last.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        tmp = Path(proc.stdout.readline().strip())
        assert tmp.parent == tmp_path and mio.TEMPORARY_NAME.match(tmp.name)
        _age(tmp)  # as old as a file of an earlier run: only the writer's lock protects it now
        assert remove_stale_temporaries(tmp_path) == [] and tmp.exists()
    finally:
        proc.kill()
        proc.wait()
    assert remove_stale_temporaries(tmp_path) == [tmp]
    assert list(tmp_path.iterdir()) == []


def test_a_scratch_file_is_locked_while_in_use_and_removed_after(tmp_path):
    with scratch_path(tmp_path / "predictions.npz") as tmp:
        assert tmp.parent == tmp_path and mio.TEMPORARY_NAME.match(tmp.name) and tmp.name.startswith(".predictions")
        with open(tmp, "wb") as fh:  # reopened by path, as the evaluator writes it
            fh.write(b"vertices")
        _age(tmp)  # as old as a killed run's file: only the lock keeps it
        assert remove_stale_temporaries(tmp_path) == [] and tmp.read_bytes() == b"vertices"
    assert list(tmp_path.iterdir()) == []
