"""``maed train`` on the command line: help, and one-line errors for bad input."""

from __future__ import annotations

import pytest

from maed.cli import main


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
