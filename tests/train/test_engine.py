"""The training loop in one process: schedule, settings, stream positions, stop signals, best checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from maed.config import load_config
from maed.errors import ConfigError
from maed.train.distributed import DistEnv
from maed.train.engine import Trainer
from maed.train.losses import MAEDLoss
from maed.train.optim import LRFactor, TrainSettings
from maed.train.streams import BatchStream


def test_lr_factor_matches_the_original_schedule():
    f = LRFactor(warmup_epochs=2, warmup_factor=0.1, milestones=[60, 90])
    assert [f(e) for e in (0, 1, 2, 59)] == pytest.approx([0.1, 0.2, 1.0, 1.0])
    assert [f(e) for e in (60, 89, 90, 99)] == pytest.approx([0.1, 0.1, 0.01, 0.01])
    assert LRFactor(0, 0.1, [60, 90])(0) == 1.0  # the stage presets: no warm-up


@pytest.mark.parametrize(
    "override, match",
    [("TRAIN.AMP=fp16", "TRAIN.AMP"), ("TRAIN.OPTIM.OPTIM=rmsprop", "TRAIN.OPTIM.OPTIM"), ("SAVE_FREQ=0", "SAVE_FREQ")],
)
def test_bad_training_settings_are_config_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        TrainSettings.from_config(load_config("stage2", [override]))


def test_image_stream_position_follows_img_use_freq(tmp_path, noisy_dataset):
    def stream(name, n):
        return BatchStream(noisy_dataset(n), name=name, batch_size=1, seed=0)

    settings = TrainSettings(img_use_freq=3, end_epoch=3)
    streams = {"3d": stream("3d", 7), "img": stream("img", 5)}
    trainer = Trainer(
        model=nn.Linear(1, 1),
        criterion=MAEDLoss(),
        streams=streams,
        env=DistEnv(),
        settings=settings,
        run_dir=tmp_path,
        config={},
        seed=0,
    )
    n = trainer.iters_per_epoch
    assert n == 7  # the 3D stream sets the epoch length
    drawn = 0
    for step in range(3 * n):  # the loop draws an image batch when (i + 1) % 3 == 0 within an epoch
        assert trainer._stream_position("img", step) == drawn, step
        assert trainer._stream_position("3d", step) == step
        drawn += ((step % n) + 1) % 3 == 0


def test_sigterm_and_sigusr1_request_a_clean_stop(tmp_path, noisy_dataset):
    import os
    import signal

    stream = BatchStream(noisy_dataset(3), name="img", batch_size=1, seed=0)
    trainer = Trainer(
        model=nn.Linear(1, 1),
        criterion=MAEDLoss(),
        streams={"img": stream},
        env=DistEnv(),
        settings=TrainSettings(),
        run_dir=tmp_path,
        config={},
        seed=0,
    )
    before = signal.getsignal(signal.SIGTERM)
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        trainer._stop_signal = None
        with trainer._stop_on_signals():
            os.kill(os.getpid(), sig)
        assert trainer._stop_signal == sig
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_nan_validation_metric_never_becomes_best(tmp_path, noisy_dataset):
    values = iter([float("nan"), 60.0, 70.0, 50.0])
    stream = BatchStream(noisy_dataset(3), name="img", batch_size=1, seed=0)
    trainer = Trainer(
        model=nn.Linear(1, 1),
        criterion=MAEDLoss(),
        streams={"img": stream},
        env=DistEnv(),
        settings=TrainSettings(save_freq=1),  # validate every epoch
        run_dir=tmp_path,
        config={},
        seed=0,
        validator=lambda model: {"pa-mpjpe": next(values), "num_frames": 10},
    )
    best = []
    for epoch in range(4):
        trainer._end_epoch(epoch)
        best.append((trainer.best_metric, trainer.best_epoch))
    assert best == [(None, None), (60.0, 2), (60.0, 2), (50.0, 4)]
    assert (tmp_path / "best.txt").read_text() == "50.0\n"
    assert torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=True)["epoch"] == 4
