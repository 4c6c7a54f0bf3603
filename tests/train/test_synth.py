"""Training MAED on Anny from `maed synth` databases: the loss falls, validation on synth runs, bf16 on CPU."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from maed.config import load_config
from maed.train import train
from maed.train.run import check_joint_heatmap
from maed.utils.device import cpu_bf16_matrix
from tests.conftest import synth_model_overrides


def _events(run_dir: Path, kind: str) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [e for e in lines if e["event"] == kind]


def _synth_training(data: Path, **extra) -> list[str]:
    """The 3D video stream of the generated train split only: one 4-frame clip per step, no augmentation."""
    values = {
        "TRAIN.DATASETS_2D": "[]",
        "TRAIN.DATASETS_3D": "[synth]",
        "TRAIN.DATASETS_IMG": "[]",
        "TRAIN.BATCH_SIZE_3D": 1,
        "TRAIN.DATASET_EVAL": "synth",
        "TRAIN.LOG_FREQ": 1,
        "TRAIN.OPTIM.LR": 1e-3,
        "TRAIN.OPTIM.WARMUP_EPOCH": 0,
        "DATASET.RANDOM_START": False,
        "DATASET.RANDOM_SAMPLE": False,
        "DATASET.RANDOM_FLIP": 0.0,
        "DATASET.COLOR_JITTER": 0.0,
        "DATASET.ERASE_PROB": 0.0,
        "DATASET.RANDOM_CROP_P": 0.0,
        "SAVE_FREQ": 1,
    }
    values.update(extra)
    return synth_model_overrides(data, **values)


def test_a_few_training_steps_on_synth_reduce_the_loss_and_validate(synth_splits, tmp_path):
    run = train(
        "stage2",
        overrides=_synth_training(synth_splits, **{"TRAIN.END_EPOCH": 1, "TRAIN.NUM_ITERS_PER_EPOCH": 24}),
        out=tmp_path / "run",
        progress=False,
    )
    losses = [e["loss"] for e in _events(run, "train")]
    assert len(losses) == 24 and all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:6]) / 6, sum(losses[-6:]) / 6
    assert last < 0.7 * first, losses  # fixed seed; the same few clips again and again
    (val,) = _events(run, "val")  # validation on the synth val split after the epoch
    assert val["num_frames"] > 0 and math.isfinite(val["pa-mpjpe"]) and math.isfinite(val["pve"])
    assert (run / "checkpoints" / "best.pt").is_file()
    assert float((run / "best.txt").read_text()) == pytest.approx(val["pa-mpjpe"])


@pytest.mark.skipif(cpu_bf16_matrix() is None, reason="this CPU has no bf16 matrix instructions (AMX, AVX512-BF16)")
def test_bf16_training_on_the_cpu_runs_in_bf16(synth_splits, tmp_path):
    """The same two steps in float32 and with TRAIN.AMP=bf16: finite, close, and not identical (so autocast
    really ran); the log says which instructions it uses."""
    losses = {}
    for amp in ("none", "bf16"):
        extra = {"TRAIN.AMP": amp, "TRAIN.DATASET_EVAL": "''", "TRAIN.END_EPOCH": 1, "TRAIN.NUM_ITERS_PER_EPOCH": 2}
        run = train("stage2", overrides=_synth_training(synth_splits, **extra), out=tmp_path / amp, progress=False)
        losses[amp] = [e["loss"] for e in _events(run, "train")]
    assert all(math.isfinite(v) for v in losses["bf16"])
    assert losses["bf16"][0] != losses["none"][0]
    assert losses["bf16"][0] == pytest.approx(losses["none"][0], rel=0.05)
    assert f"bf16 autocast on the CPU ({cpu_bf16_matrix()})" in (tmp_path / "bf16" / "train_log.txt").read_text()


def test_under_cpu_autocast_the_network_runs_in_bf16_and_the_body_model_in_float32():
    from maed.models import build_model

    cfg = load_config("stage2", synth_model_overrides("unused"))
    torch.manual_seed(0)
    model = build_model(cfg)
    seen = {}
    model.decoder.fc1.register_forward_hook(lambda m, i, o: seen.update(decoder_fc1=o.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(1, 2, 3, 32, 32))
    assert seen["decoder_fc1"] == torch.bfloat16  # the network's layers run in bf16
    assert {v.dtype for _, v in out.items()} == {torch.float32}  # mesh, joints, projection, theta


def test_cpu_amp_without_bf16_instructions_warns_and_trains_in_float32(monkeypatch, synth_splits, tmp_path):
    import maed.train.run as run_module
    import maed.utils.device as device

    monkeypatch.setattr(device, "cpu_bf16_matrix", lambda: None)
    monkeypatch.setattr(run_module, "cpu_bf16_matrix", lambda: None)
    extra = {"TRAIN.AMP": "bf16", "TRAIN.DATASET_EVAL": "''", "TRAIN.END_EPOCH": 1, "TRAIN.NUM_ITERS_PER_EPOCH": 1}
    run = train("stage2", overrides=_synth_training(synth_splits, **extra), out=tmp_path / "run", progress=False)
    assert "no bf16 matrix instructions" in (run / "train_log.txt").read_text()
    assert math.isfinite(_events(run, "train")[0]["loss"])


def test_synth_tiny_preset_trains_on_synth_from_the_repository_root():
    cfg = load_config("synth_tiny")
    assert cfg.MODEL.BODY_MODEL == "anny" and cfg.MODEL.BODY_RIG == "cmu_mb"
    assert cfg.TRAIN.DATASETS_3D == ["synth"] and cfg.TRAIN.DATASET_EVAL == "synth"
    assert cfg.TRAIN.DATASETS_IMG == ["synth"] and cfg.TRAIN.BATCH_SIZE_IMG > 0  # single frames beside the clips
    check_joint_heatmap(cfg)  # the heatmap head comes with its loss
    assert cfg.PATHS.DB_DIR == "data/synth" and cfg.PATHS.DATASET_ROOTS["synth"] == "data/synth"
    assert cfg.TRAIN.AMP == "bf16" and cfg.SEED_VALUE >= 0 and cfg.SAVE_FREQ == 1
    assert cfg.EVAL.SAMPLE_POOL == cfg.DATASET.SAMPLE_POOL  # clips of the same frame spacing in training and test


def test_a_new_decoder_starts_at_the_mean_training_pose(synth_splits, tmp_path):
    """MODEL.DECODER.INIT_MEAN_POSE: before any step, the decoder predicts the chordal mean pose and the mean
    shape of the training rows for every input (the mean-pose baseline's parameters); a database in both the
    video and the image stream counts once."""
    from maed.body.geometry import rot6d_to_rotmat
    from maed.eval.baseline import mean_parameters
    from maed.models import build_model
    from maed.train.distributed import DistEnv
    from maed.train.run import MEAN_START_CAMERA, build_streams, start_decoder_at_mean_pose

    both = {"TRAIN.DATASETS_IMG": "[synth]", "TRAIN.BATCH_SIZE_IMG": 2}
    cfg = load_config("stage2", _synth_training(synth_splits, **{"MODEL.DECODER.INIT_MEAN_POSE": True, **both}))
    streams = build_streams(cfg, DistEnv(), seed=0)
    assert streams["img"] is not None
    model = build_model(cfg).eval()
    rows = start_decoder_at_mean_pose(model, [streams["3d"], streams["img"]])
    db = streams["3d"].dataset.datasets[0].db
    assert rows == len(db["pose"])
    body = model.body_model
    rotmat, betas = mean_parameters(db, num_joints=body.num_joints, num_betas=body.num_betas)
    with torch.no_grad():
        pose_6d, got_betas, cam = model.decoder(torch.zeros(1, model.encoder.feat_dim))
    mean = torch.from_numpy(rotmat).float()
    torch.testing.assert_close(rot6d_to_rotmat(pose_6d), mean, atol=0.05, rtol=0)  # the small weights aside
    torch.testing.assert_close(got_betas[0], torch.from_numpy(betas).float(), atol=0.05, rtol=0)
    torch.testing.assert_close(cam[0], torch.tensor(MEAN_START_CAMERA), atol=0.05, rtol=0)
    run = train("stage2", overrides=_synth_training(synth_splits, **{"MODEL.DECODER.INIT_MEAN_POSE": True,
                "TRAIN.DATASET_EVAL": "''", "TRAIN.END_EPOCH": 1, "TRAIN.NUM_ITERS_PER_EPOCH": 1}),
                out=tmp_path / "run", progress=False)  # fmt: skip
    assert f"decoder starts at the mean pose and shape of {rows} training rows" in (run / "train_log.txt").read_text()
