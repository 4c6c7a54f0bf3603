"""maed synth end to end: files, determinism, resuming, refusals, bad input, the SMPL path."""

from __future__ import annotations

import errno
import json
import signal
from pathlib import Path

import numpy as np
import pytest

from maed.data.database import load_database
from maed.errors import ConfigError, MaedError, OutputError
from maed.synth import generator


def _files(out: Path) -> dict[str, bytes]:
    """Every output file that must be identical between equivalent runs."""
    keep = [*out.glob("frames/*/*.jpg"), *out.glob("annotations/*.npz"), *out.glob("synth_*")]
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(keep)}


def test_run_writes_frames_databases_and_metadata(synth_run, run_args):
    out, summary = synth_run
    meta = json.loads((out / "synth.json").read_text())
    assert meta["splits"] == {"train": ["seq_0000"], "val": [], "test": ["seq_0001"]}  # two sequences
    assert sorted(summary.databases) == ["test", "train"] == sorted(meta["databases"])
    assert meta["rig"] == "cmu_mb" and len(meta["pose_joints"]) == 31 and meta["num_betas"] == 6
    assert summary.frames == 8 == len(list(out.glob("frames/seq_000[01]/00000[0-3].jpg")))
    rows = 0
    for split in ("train", "test"):
        db = load_database(out / f"synth_{split}_db.pt")
        n = len(db["img_name"])
        rows += n
        assert db["pose"].shape == (n, 93) and db["shape"].shape == (n, 6) and db["joints2D"].shape == (n, 49, 3)
        assert db["joints3D"].shape == (n, 49, 4) and db["trans"].shape == (n, 3) and db["intrinsics"].shape == (n, 4)
        assert all((out / name).is_file() for name in db["img_name"])  # names relative to --out
        assert str(db["img_name"][0]).startswith("frames/seq_000") and str(db["vid_name"][0]).endswith("_p0")
        for vid in np.unique(db["vid_name"]):  # each person's rows: consecutive, in frame order
            where = np.flatnonzero(db["vid_name"] == vid)
            assert np.array_equal(where, np.arange(where[0], where[0] + run_args["frames"]))
            assert np.array_equal(db["frame_id"][where], np.arange(run_args["frames"]))
        assert set(np.unique(db["joints3D"][..., 3])) == {0.0, 1.0} and db["joints3D"][:, 42, 3].max() == 0  # no jaw
        assert db["joints2D"][..., 2].mean() > 0.5 and db["valid"].dtype.kind == "i"
    assert rows == summary.rows == meta["counts"]["rows"] and summary.people == len(
        meta["sequences"][0]["people"]
    ) + len(meta["sequences"][1]["people"])
    assert (out / "synth_preview.jpg").stat().st_size > 1000


def test_a_killed_worker_stops_the_run_and_a_rerun_gives_the_same_bytes_with_two_workers(synth_run, run_args, tmp_path):
    """Kill a rendering worker: one clear error; rerunning resumes, and two workers give the bytes of one."""
    import multiprocessing
    import os
    import signal
    import threading
    import time

    out, _ = synth_run
    other = tmp_path / "two_workers"
    outcome = {}

    def run():
        try:
            generator.generate(other, **run_args, workers=2, progress=False)
        except Exception as e:  # the thread hands the error to the test
            outcome["error"] = e

    before = {p.pid for p in multiprocessing.active_children()}  # other tests' processes are not ours to kill
    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    workers = []
    while not workers and time.monotonic() < deadline:
        time.sleep(0.02)
        workers = [p for p in multiprocessing.active_children() if p.pid not in before]
    assert workers, "no worker process started"
    os.kill(workers[0].pid, signal.SIGKILL)  # while it is still starting up or rendering
    thread.join(timeout=300)
    error = outcome.get("error")
    assert isinstance(error, MaedError) and "run the same command again to resume" in str(error), error
    assert not list(other.glob("synth_*_db.pt"))
    summary = generator.generate(other, **run_args, workers=2, progress=False)
    assert summary.rendered >= 1
    mine, theirs = _files(out), _files(other)
    assert sorted(mine) == sorted(theirs) and len(mine) > 10
    assert [k for k in mine if mine[k] != theirs[k]] == []


def test_an_interrupted_run_resumes_to_the_same_files(synth_run, tmp_path, monkeypatch, run_args):
    out, _ = synth_run
    again = tmp_path / "interrupted"
    real = generator.render_sequence
    calls = []

    def render_then_fail(*args, **kwargs):
        calls.append(kwargs["index"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if stopped while rendering the second sequence
        return real(*args, **kwargs)

    monkeypatch.setattr(generator, "render_sequence", render_then_fail)
    with pytest.raises(KeyboardInterrupt):
        generator.generate(again, **run_args, workers=1, progress=False)
    assert (again / "annotations/seq_0000.npz").is_file() and not list(again.glob("synth_*_db.pt"))
    monkeypatch.setattr(generator, "render_sequence", real)
    summary = generator.generate(again, **run_args, workers=1, progress=False)
    assert summary.rendered == 1  # only the unfinished sequence
    mine, theirs = _files(out), _files(again)
    assert sorted(mine) == sorted(theirs) and [k for k in mine if mine[k] != theirs[k]] == []


def test_a_rerun_with_other_arguments_is_refused_unless_forced(synth_run, tmp_path, run_args):
    out, _ = synth_run
    with pytest.raises(OutputError, match=r"other arguments \(differing: frames, seed\).*--force"):
        generator.prepare_out(
            out, generator.RunSpec(**{**run_args, "frames": 5, "seed": 1}, body_model="anny", rig="cmu_mb"), False
        )
    stranger = tmp_path / "not_ours"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty and holds no maed synth run"):
        generator.prepare_out(stranger, generator.RunSpec(**run_args, body_model="anny", rig="cmu_mb"), False)
    generator.prepare_out(stranger, generator.RunSpec(**run_args, body_model="anny", rig="cmu_mb"), True)
    assert (stranger / "notes.txt").read_text() == "mine" and (stranger / "synth_run.json").is_file()
    forced = tmp_path / "forced"  # an earlier run with other arguments
    (forced / "frames/seq_0009").mkdir(parents=True)
    (forced / "synth_train_db.pt").write_bytes(b"old")
    (forced / "synth_run.json").write_text('{"sequences": 10}')
    (forced / "notes.txt").write_text("kept")
    generator.prepare_out(forced, generator.RunSpec(**run_args, body_model="anny", rig="cmu_mb"), True)
    assert not (forced / "frames").exists() and not (forced / "synth_train_db.pt").exists()
    assert (forced / "notes.txt").read_text() == "kept" and (forced / "synth_run.json").is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--sequences", "0"], "--sequences 0: expected at least 1"),
        (["--frames", "0"], "--frames 0: expected at least 1 frame"),
        (["--rig", "t_pose"], "BODY_RIG='t_pose'"),
        (["--size", "16x16"], "at least 32x32"),
    ],
)
def test_bad_options_are_one_line_errors(argv, message, tmp_path, capsys):
    from maed.cli import main

    assert main(["synth", "--out", str(tmp_path / "x"), "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not (tmp_path / "x").exists()


def test_out_that_is_a_file_is_refused(tmp_path, capsys, run_args):
    from maed.cli import main

    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is not a directory"):
        generator.prepare_out(tmp_path / "file", generator.RunSpec(**run_args, body_model="anny", rig="cmu_mb"), False)
    assert main(["synth", "--out", str(tmp_path / "file"), "--body-model", "smpl", "--quiet"]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_a_full_disk_leaves_no_half_written_database(synth_run, tmp_path, monkeypatch, run_args):
    import shutil

    import joblib

    out, _ = synth_run
    copy = tmp_path / "full"
    shutil.copytree(out, copy)
    for db in copy.glob("synth_*_db.pt"):
        db.unlink()

    def dump_half(obj, f, *args, **kwargs):
        f.write(b"\x80\x04partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(joblib, "dump", dump_half)
    with pytest.raises(OutputError, match=r"synth_train_db.pt: No space left on device \(ENOSPC\).*same command again"):
        generator.generate(copy, **run_args, workers=1, progress=False)
    assert not list(copy.glob("synth_*_db.pt")) and not list(copy.glob(".synth_*"))  # no database, no temp file
    assert len(list(copy.glob("annotations/*.npz"))) == 2  # the finished sequences are kept


def test_without_opengl_the_error_names_the_packages(smpl_dir, tmp_path, monkeypatch, capsys):
    """A machine with neither EGL nor OSMesa: one line naming the Debian packages, nothing written."""
    import ctypes.util

    from maed.cli import main

    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    argv = ["synth", "--out", str(tmp_path / "x"), "--body-model", "smpl", "--body-model-dir", str(smpl_dir)]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "libegl1 libegl-mesa0 libgl1-mesa-dri" in err and "libosmesa6" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_missing_smpl_files_are_reported_before_anything_is_written(tmp_path, capsys):
    from maed.cli import main

    assert main(["synth", "--out", str(tmp_path / "x"), "--body-model", "smpl", "--quiet"]) == 2
    assert "SMPL_NEUTRAL.pkl" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_smpl_body_model_with_the_stand_in(smpl_dir, tmp_path):
    import torch

    from maed.body import build_body_model
    from maed.body.geometry import axis_angle_to_rotmat

    out = tmp_path / "smpl"
    summary = generator.generate(
        out, sequences=1, frames=2, seed=3, width=160, height=120, body_model="smpl", body_model_dir=smpl_dir,
        progress=False,
    )  # fmt: skip
    db = load_database(summary.databases["train"])
    n = len(db["img_name"])
    assert db["pose"].shape == (n, 72) and db["shape"].shape == (n, 10) and db["joints3D"][..., 3].min() == 1
    body = build_body_model("smpl", model_dir=smpl_dir)
    rot = axis_angle_to_rotmat(torch.from_numpy(db["pose"]).reshape(n, 24, 3))
    joints = body(rot, torch.from_numpy(db["shape"])).joints.numpy() + db["trans"][:, None]
    np.testing.assert_allclose(joints, db["joints3D"][..., :3], atol=1e-4)
    assert json.loads((out / "synth.json").read_text())["rig"] == ""
    with pytest.raises(ConfigError, match="SMPL has one rig"):
        generator.generate(tmp_path / "y", body_model="smpl", rig="cmu_mb", body_model_dir=smpl_dir)


def test_the_commands_it_prints_run_as_printed(tmp_path, monkeypatch, capsys):
    """`maed synth` ends with the training and evaluation commands for its data; the training command runs
    as printed (here up to its first step: --max-steps 0 and --out added), and the evaluation command names
    the data's folder for both options. It used to print --db-dir/--data-root, which `maed train` refuses."""
    import shlex

    from maed.cli import build_parser, main, parse_args

    data = tmp_path / "my synth"  # a space: the commands must quote it
    monkeypatch.chdir(tmp_path)  # the commands must not depend on the working directory
    argv = ["synth", "--out", str(data), "--sequences", "3", "--frames", "4", "--size", "128x96", "--workers", "1"]
    assert main([*argv, "--quiet"]) == 0  # three sequences: one in each of train, val and test
    printed = [line.split(":", 1)[1] for line in capsys.readouterr().out.splitlines() if " maed " in line]
    train, evaluate = (shlex.split(line) for line in printed)
    assert train[:4] == ["maed", "train", "--config", "synth_tiny"]
    assert main([*train[1:], "--out", str(tmp_path / "run"), "--max-steps", "0", "--no-progress"]) == 0
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    args = parse_args(build_parser(), evaluate[1:])
    assert (args.command, args.dataset, args.db_dir, args.data_root) == ("eval", "synth", str(data), str(data))


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
@pytest.mark.parametrize("disposition", ["default", "ignored"])
def test_ctrl_c_while_the_workers_start_prints_one_line(tmp_path, disposition):
    """Ctrl-C reaches the whole process group; the workers, still importing numpy and torch, used to print a
    KeyboardInterrupt traceback each. Now: one line, exit status 130. A command that ignores SIGINT (a shell
    starts background jobs so) runs on through it, workers included: they used to die of it, and the run
    ended with 'a rendering worker process stopped unexpectedly'."""
    import os
    import subprocess
    import sys
    import time

    import maed

    src = str(Path(maed.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    argv = ["synth", "--out", str(tmp_path / "out"), "--sequences", "4", "--frames", "2", "--size", "64x48"]
    handler = signal.SIG_DFL if disposition == "default" else signal.SIG_IGN
    proc = subprocess.Popen(
        [sys.executable, "-m", "maed", *argv, "--workers", "2", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group, as a terminal gives a command
        preexec_fn=lambda: signal.signal(signal.SIGINT, handler),  # whatever this test process was given
    )
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if children.exists() and len(children.read_text().split()) >= 2:  # the workers are starting
            break
        time.sleep(0.01)
    else:
        proc.kill()
        pytest.skip("no worker processes seen (no /proc children list here)")
    time.sleep(0.5)  # started, not yet through their imports (numpy, torch, the body model: seconds)
    os.killpg(proc.pid, signal.SIGINT)
    err = proc.communicate(timeout=120)[1].decode()
    expected = (130, "maed synth: interrupted\n") if disposition == "default" else (0, "")
    assert (proc.returncode, err) == expected, f"exit {proc.returncode}, stderr: {err!r}"
    if disposition == "ignored":
        assert len(list((tmp_path / "out").glob("*_db.pt"))) >= 1  # the run finished its databases
