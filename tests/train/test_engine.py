"""The training engine in one process: schedule, settings, stage 1, NaN handling, run directories,
missing data, and the pretrained-transfer report."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from maed.config import load_config
from maed.errors import CheckpointError, ConfigError, DataError, OutputError
from maed.train.distributed import DistEnv
from maed.train.engine import LRFactor, Trainer, TrainingError, TrainSettings, train
from maed.train.losses import MAEDLoss
from maed.train.streams import BatchStream


def _events(run_dir: Path, kind: str | None = None) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [e for e in lines if kind is None or e["event"] == kind]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


@pytest.fixture(scope="module")
def stage1_run(tiny, tmp_path_factory):
    """Stage 1 (images only), stopped after its first epoch (2 steps) of two."""
    out = tmp_path_factory.mktemp("stage1") / "run"
    over = tiny(**{"TRAIN.DATASETS_2D": "[]", "TRAIN.DATASETS_3D": "[]", "TRAIN.CKPT_FREQ": 1})
    run_dir = train("stage1", overrides=over, out=out, progress=False, max_steps=2)
    return run_dir, over


def test_stage1_trains_on_images_and_stops_resumably(stage1_run):
    run_dir, _ = stage1_run
    steps = _events(run_dir, "train")
    assert [e["step"] for e in steps] == [1, 2]
    assert all(e["w_vid"] == 0.0 and "loss_kp_3d" in e for e in steps)
    assert _events(run_dir, "stop")[0]["reason"] == "max_steps"
    # CKPT_FREQ=1: last.pt mid-epoch after step 1, then epoch_0001.pt (linked as last and best) at step 2
    saved = [(e["step"], Path(e["path"]).name, e["best"]) for e in _events(run_dir, "checkpoint")]
    assert saved == [(1, "last.pt", False), (2, "epoch_0001.pt", True)]
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert ckpts == ["best.pt", "epoch_0001.pt", "last.pt"]
    last = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert (last["step"], last["epoch"], last["best_epoch"]) == (2, 1, 1)
    assert last["best_metric"] == pytest.approx(_events(run_dir, "val")[0]["pa-mpjpe"])
    assert last["config"]["SEED_VALUE"] == 7 and last["config"]["LOGDIR"] == str(run_dir)
    assert set(last) >= {"model", "optimizer", "scheduler", "rng", "config"} and len(last["rng"]) == 1
    assert load_config(run_dir / "config.yaml").TRAIN.DATASETS_IMG == ["mpii3d"]


def test_non_finite_loss_or_weights_stop_and_keep_the_last_good_checkpoint(stage1_run):
    run_dir, _ = stage1_run
    last = run_dir / "checkpoints" / "last.pt"
    before, config_before = _sha(last), (run_dir / "config.yaml").read_text()
    # an infinite learning rate wrecks the weights at step 3: the mid-epoch checkpoint (CKPT_FREQ=1) is refused
    with pytest.raises(TrainingError, match=r"non-finite weights at step 3; not saving"):
        train(resume=run_dir, overrides=["TRAIN.OPTIM.LR=inf"], progress=False)
    assert _sha(last) == before
    # without that checkpoint, the loss of step 4 is not finite: stop before the update
    with pytest.raises(TrainingError, match=r"non-finite loss at step 4 .*--resume"):
        train(resume=run_dir, overrides=["TRAIN.OPTIM.LR=inf", "TRAIN.CKPT_FREQ=0"], progress=False)
    assert _sha(last) == before
    assert (run_dir / "config.yaml").read_text() == config_before
    assert "non-finite loss" in (run_dir / "train_log.txt").read_text()
    nan_events = [e["message"] for e in _events(run_dir, "nan")]
    assert len(nan_events) == 2 and "non-finite weights at step 3" in nan_events[0]
    assert "non-finite loss at step 4" in nan_events[1]
    assert _events(run_dir, "resume")[-1]["changed"] == ["TRAIN.CKPT_FREQ: 1 -> 0", "TRAIN.OPTIM.LR: 0.0001 -> inf"]
    # steps 1-2 of the first run, step 3 of each resume; step 4 never updated anything
    assert [e["step"] for e in _events(run_dir, "train")] == [1, 2, 3, 3]


def test_out_dir_holding_a_run_is_never_overwritten(stage1_run, tmp_path):
    run_dir, over = stage1_run
    with pytest.raises(OutputError, match="already holds this run.*--resume"):
        train("stage1", overrides=over, out=run_dir, progress=False, max_steps=0)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="different run"):
        train("stage1", overrides=over, out=other, progress=False, max_steps=0)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_missing_database_fails_before_any_run_directory(tiny, tmp_path):
    over = tiny(**{"TRAIN.DATASETS_3D": "[h36m]", "OUTPUT_DIR": str(tmp_path / "out")})
    with pytest.raises(DataError, match=r"h36m_train_db\.pt"):
        train("stage2", overrides=over, progress=False)
    assert not (tmp_path / "out").exists()


def test_cnn_pretrained_into_ste_is_reported_loudly(stage1_run, tiny, tmp_path):
    cnn_ckpt = stage1_run[0] / "checkpoints" / "last.pt"
    over = tiny(**{"MODEL.ENCODER.BACKBONE": "ste", "MODEL.ENCODER.NUM_BLOCKS": 1, "TRAIN.DATASET_EVAL": "''"})
    run_dir = train("stage2", overrides=over, pretrained=cnn_ckpt, out=tmp_path / "ste", progress=False, max_steps=0)
    event = _events(run_dir, "pretrained")[0]
    assert event["nothing_loaded"] and event["loaded"] == 0 and event["unused"] > 0
    assert "TRANSFERRED NOTHING" in (run_dir / "train_log.txt").read_text()
    assert load_config(run_dir / "config.yaml").TRAIN.PRETRAINED == str(cnn_ckpt)
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["last.pt"]  # step 0, no validation


def test_resume_into_another_architecture_is_a_checkpoint_error(stage1_run):
    run_dir, _ = stage1_run
    last = run_dir / "checkpoints" / "last.pt"
    before = _sha(last)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        train(resume=run_dir, overrides=["MODEL.ENCODER.BACKBONE=ste", "MODEL.ENCODER.NUM_BLOCKS=1"], progress=False)
    assert _sha(last) == before


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
