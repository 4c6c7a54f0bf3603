"""``maed train`` on the command line: help, one-line errors for bad input, and a run stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from maed.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    options = ("--config", "--pretrained", "--resume", "--out", "--device", "--max-steps", "--init-weights")
    for option in (*options, "KEY=VALUE"):
        assert option in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train"], "give --config"),
        (["train", "--config", "stage2", "TRAIN.NO_SUCH_KEY=1"], "unknown config key TRAIN.NO_SUCH_KEY"),
        (["train", "--config", "stage2", "--device", "cpu", "TRAIN.AMP=fp16"], "TRAIN.AMP='fp16'"),
        (["train", "--config", "stage2", "DEVICE=gpu"], "DEVICE 'gpu': expected cpu, cuda or cuda:N"),
        (["train", "--resume", "/nonexistent/run"], "--resume /nonexistent/run: no checkpoints/last.pt"),
        (["train", "--config", "stage2", "--resume", "/nonexistent/run"], "do not pass --config too"),
        (["train", "--resume", "/nonexistent/run", "--out", "/tmp/x"], "--out creates a new run"),
        (
            ["train", "--config", "stage2", "--device", "cpu", "--init-weights", "/nonexistent/vit.pth"],
            "--init-weights: /nonexistent/vit.pth not found",
        ),
    ],
)
def test_bad_input_is_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("maed train: error:") and len(err.splitlines()) == 1


@pytest.mark.parametrize("group", [False, True], ids=["process", "process-group-with-loader-worker"])
def test_sigterm_saves_last_pt_once_and_exits_143_with_a_quoted_resume_command(tiny, tmp_path, group):
    """A real ``python -m maed train`` process, sent SIGTERM once a step is done: it finishes the step in
    progress, saves last.pt once at that step (TRAIN.CKPT_FREQ=1 puts a mid-epoch checkpoint there too) and
    exits 143, so that ``maed train ... && maed eval ...`` stops; the resume command it prints works in a shell
    for a directory with a space, quotes and a dollar sign. ``group``: the signal goes to the whole process
    group, data loader worker included, as Slurm and ``kill -- -PGID`` send it."""
    run_dir = tmp_path / "run 'a' $HOME"
    over = tiny(
        **{
            "TRAIN.DATASETS_2D": "[]",
            "TRAIN.DATASETS_IMG": "[]",
            "TRAIN.DATASET_EVAL": "''",
            "TRAIN.END_EPOCH": 1,
            "TRAIN.NUM_ITERS_PER_EPOCH": 50,
            "TRAIN.CKPT_FREQ": 1,
            # seconds, not minutes: small crops, and an optimizer without state (a third of Adam's checkpoint)
            "DATASET.WIDTH": 64,
            "DATASET.HEIGHT": 64,
            "TRAIN.OPTIM.OPTIM": "sgd",
            "TRAIN.OPTIM.MOMENTUM": 0.0,
            "NUM_WORKERS": 1 if group else 0,
        }
    )
    cmd = [sys.executable, "-m", "maed", "train", "--config", "stage2", "--out", str(run_dir), "--no-progress", *over]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=group
    )
    try:
        log, deadline = run_dir / "log.jsonl", time.monotonic() + 240
        while not (log.is_file() and '"event": "train"' in log.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr[-3000:]
    events = [json.loads(line) for line in log.read_text().splitlines()]
    stop = next(e for e in events if e["event"] == "stop")
    assert (stop["reason"], stop["signal"]) == ("signal", "SIGTERM") and stop["step"] < 50
    saved = [e["step"] for e in events if e["event"] == "checkpoint"]
    assert saved == list(range(1, stop["step"] + 1))  # one checkpoint per step, none written twice
    last = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert last["step"] == stop["step"]
    final = stderr.strip().splitlines()[-1]
    assert final.startswith(f"maed train: stopped by SIGTERM after step {stop['step']} (last.pt saved)"), stderr
    assert shlex.split(final.split("continue with ", 1)[1]) == ["maed", "train", "--resume", str(run_dir)]
    assert "run directory:" not in stdout
