"""The ``maed`` command line: config overrides anywhere, bad values refused before anything is written, and
a closed output pipe ended quietly (tests/data/test_cli.py: `maed data info DB | head`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import maed
from maed.cli import build_parser, main, parse_args


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--config", "synth_tiny", "A=1", "--max-steps", "1", "B=2"],
        ["train", "A=1", "--config", "synth_tiny", "B=2", "--no-progress"],
        ["eval", "--checkpoint", "c.pt", "A=1", "--out", "o", "B=2"],
        ["bench", "A=1", "--threads", "2", "B=2"],
        ["export", "onnx", "--checkpoint", "c.pt", "A=1", "--out", "o.onnx", "B=2"],
    ],
)
def test_overrides_are_taken_anywhere_on_the_command_line_in_order(argv):
    args = parse_args(build_parser(), argv)
    assert args.overrides == ["A=1", "B=2"]


def test_words_that_are_not_overrides_are_still_refused(capsys):
    parser = build_parser()
    for argv in (
        ["train", "--config", "synth_tiny", "A=1", "--bogus"],
        ["train", "--config", "synth_tiny", "A=1", "--max-steps", "1", "./clip=1.mp4"],
        ["data", "info", "x_db.pt", "A=1"],  # a command without overrides
    ):
        with pytest.raises(SystemExit) as e:
            parse_args(parser, argv)
        assert e.value.code == 2
        assert "unrecognized arguments" in capsys.readouterr().err


def test_a_late_override_reaches_the_config(capsys, tmp_path):
    """`maed train --config synth_tiny A=1 --max-steps 1 B=2` used to stop at argparse ("unrecognized
    arguments: B=2"); now both overrides reach the config, which names the first unknown key."""
    out = tmp_path / "run"
    code = main(
        ["train", "--config", "synth_tiny", "--out", str(out), "--max-steps", "1", "TRAIN.OPTIM.LR=1e-3", "A=1"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "unknown config key A " in err and not out.exists()


@pytest.mark.parametrize("override", ["TRAIN.OPTIM.LR=-1", "TRAIN.OPTIM.EPS=0", "DATASET.OVERLAP=1.5"])
def test_train_refuses_a_bad_value_in_one_line_before_any_folder_exists(override, capsys, tmp_path):
    code = main(["train", "--config", "synth_tiny", f"OUTPUT_DIR={tmp_path / 'results'}", override])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("maed train: error: ") and err.count("\n") == 1 and override.split("=")[0] in err
    assert list(tmp_path.iterdir()) == []


def run_with_closed_stdout(argv: list[str]) -> tuple[int, str]:
    """(exit status, stderr) of ``python -m maed ARGV`` whose reader closed the pipe before the first line
    arrived, as ``| head`` does once it has its lines."""
    src = str(Path(maed.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "maed", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=120), err
