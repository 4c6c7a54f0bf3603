"""A training run from the command line's point of view: stage 1, NaN handling, run directories, missing
data, the --pretrained and --init-weights reports, resuming."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import time
from pathlib import Path

import pytest
import torch

from maed.config import load_config
from maed.errors import CheckpointError, DataError, OutputError
from maed.train.run import prepare_run_dir, train
from maed.train.stopping import TrainingError


def _events(run_dir: Path, kind: str | None = None) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [e for e in lines if kind is None or e["event"] == kind]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _killed_write(path: Path) -> Path:
    """A temporary file as a killed atomic write leaves it, from before this process started."""
    path.write_bytes(b"half a file")
    t = time.time() - 3600
    os.utime(path, (t, t))
    return path


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


def _adam_leaving_infinite_weights(monkeypatch):
    """Adam steps that end with infinite weights: what an infinite learning rate did before the config refused
    one (``TRAIN.OPTIM.LR=inf``), and a finite one cannot do without torch refusing the step size first."""
    real_step = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        with torch.no_grad():
            self.param_groups[0]["params"][0].fill_(float("inf"))
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", step)


def test_non_finite_loss_or_weights_stop_and_keep_the_last_good_checkpoint(stage1_run, monkeypatch):
    run_dir, _ = stage1_run
    last = run_dir / "checkpoints" / "last.pt"
    before, config_before = _sha(last), (run_dir / "config.yaml").read_text()
    _adam_leaving_infinite_weights(monkeypatch)
    # the weights are wrecked at step 3: the mid-epoch checkpoint (CKPT_FREQ=1) is refused
    with pytest.raises(TrainingError, match=r"non-finite weights at step 3; not saving"):
        train(resume=run_dir, overrides=["TRAIN.OPTIM.LR=1e-3"], progress=False)
    assert _sha(last) == before
    # without that checkpoint, the loss of step 4 is not finite: stop before the update
    with pytest.raises(TrainingError, match=r"non-finite loss at step 4 .*--resume"):
        train(resume=run_dir, overrides=["TRAIN.OPTIM.LR=1e-3", "TRAIN.CKPT_FREQ=0"], progress=False)
    assert _sha(last) == before
    assert (run_dir / "config.yaml").read_text() == config_before
    assert "non-finite loss" in (run_dir / "train_log.txt").read_text()
    nan_events = [e["message"] for e in _events(run_dir, "nan")]
    assert len(nan_events) == 2 and "non-finite weights at step 3" in nan_events[0]
    assert "non-finite loss at step 4" in nan_events[1]
    assert _events(run_dir, "resume")[-1]["changed"] == ["TRAIN.CKPT_FREQ: 1 -> 0", "TRAIN.OPTIM.LR: 0.0001 -> 0.001"]
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


def test_init_weights_report_is_in_the_run_log_and_the_config_is_not_changed(tiny, tmp_path):
    """--init-weights with a torchvision ResNet-50 file: the report lands in train_log.txt and log.jsonl, the
    weights are the file's, and the Config object given to train() is left as it was."""
    from torchvision.models import resnet50

    torch.manual_seed(1)
    weights = resnet50(weights=None).state_dict()
    path = tmp_path / "resnet50.pth"
    torch.save(weights, path)
    cfg = load_config("stage2", tiny(**{"TRAIN.DATASET_EVAL": "''", "MODEL.ENCODER.INIT_WEIGHTS": str(path)}))
    before = cfg.to_dict()
    run_dir = train(cfg, out=tmp_path / "run", progress=False, max_steps=0)
    assert cfg.to_dict() == before
    event = _events(run_dir, "init_weights")[0]
    assert event["path"] == str(path) and event["loaded"] > 300 and event["kept_at_init"] == []
    assert f"--init-weights {path}: loaded" in (run_dir / "train_log.txt").read_text()
    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]
    torch.testing.assert_close(saved["encoder.layer4.2.conv3.weight"], weights["layer4.2.conv3.weight"])
    recorded = load_config(run_dir / "config.yaml")
    assert recorded.MODEL.ENCODER.INIT_WEIGHTS == str(path) and recorded.LOGDIR == str(run_dir)


def test_resume_removes_the_temporary_files_of_a_killed_run(stage1_run):
    run_dir, _ = stage1_run
    stale = [
        _killed_write(run_dir / ".best.txt.a1b2c3d4.tmp"),
        _killed_write(run_dir / "checkpoints/.last.pt.e5f6g7h8.tmp"),
    ]
    train(resume=run_dir, progress=False, max_steps=2)  # step 2 is done: resumes and stops at once
    assert not any(p.exists() for p in stale)
    assert "removed 2 temporary file(s) a killed run left" in (run_dir / "train_log.txt").read_text()


def test_a_killed_runs_temporary_files_do_not_make_out_another_run(tmp_path):
    """A run killed while writing its config.yaml left only the temporary file: --out is free again."""
    out = tmp_path / "my run's dir"
    out.mkdir()
    stale = _killed_write(out / ".config.yaml.a1b2c3d4.tmp")
    assert prepare_run_dir(output_dir=tmp_path, exp_name="x", out=out, config_text="A: 1\n") == out
    assert not stale.exists()
    (out / "config.yaml").write_text("A: 1\n")
    hint = f"continue it with `maed train --resume {shlex.quote(str(out))}`"
    with pytest.raises(OutputError, match=re.escape(hint)):
        prepare_run_dir(output_dir=tmp_path, exp_name="x", out=out, config_text="A: 1\n")


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["MODEL.ENCODER.JOINT_HEATMAP=True"], "LOSS.JOINT_HEATMAP_W"),
        (["LOSS.JOINT_HEATMAP_W=10"], "MODEL.ENCODER.JOINT_HEATMAP"),
    ],
)
def test_joint_heatmap_head_and_loss_come_together(overrides, key):
    from maed.errors import ConfigError
    from maed.train.run import check_joint_heatmap

    with pytest.raises(ConfigError, match=key):
        check_joint_heatmap(load_config("stage2", overrides))
    check_joint_heatmap(load_config("stage2", ["MODEL.ENCODER.JOINT_HEATMAP=True", "LOSS.JOINT_HEATMAP_W=10"]))
