"""RNG states, atomic checkpoint links, and the stage-1 -> stage-2 encoder transfer report."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from maed.models import build_model
from maed.models.checkpoint import make_checkpoint
from maed.train.checkpointing import (
    link_checkpoint,
    load_pretrained_encoder,
    load_training_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_rng_state_round_trip_through_a_checkpoint_file(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    _draws()
    state = rng_state()
    expected = _draws()
    save_checkpoint({"rng": [state]}, tmp_path / "rng.pt")
    _draws()
    loaded = torch.load(tmp_path / "rng.pt", weights_only=True)["rng"][0]  # plain values and tensors only
    set_rng_state(loaded)
    assert _draws() == expected


def test_link_checkpoint_keeps_the_old_file_when_the_source_is_replaced(tmp_path):
    a = save_checkpoint({"v": torch.tensor(1)}, tmp_path / "epoch_0001.pt")
    link_checkpoint(a, tmp_path / "best.pt")
    save_checkpoint({"v": torch.tensor(2)}, tmp_path / "epoch_0001.pt")  # replaced by rename
    assert torch.load(tmp_path / "best.pt", weights_only=True)["v"].item() == 1
    assert not list(tmp_path.glob(".*tmp"))


def test_resume_rejects_a_weights_only_checkpoint(tmp_path):
    from maed.errors import CheckpointError

    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {"module.x": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="not a resumable training checkpoint.*--pretrained"):
        load_training_checkpoint(path)


def _model(smpl_body, smpl_dir, **over):
    values = {"MODEL.ENCODER.NUM_BLOCKS": 1, "MODEL.ENCODER.NUM_HEADS": 12, **over}
    return build_model(
        "stage2", body_model=smpl_body, body_model_dir=smpl_dir, overrides=[f"{k}={v}" for k, v in values.items()]
    )


@pytest.fixture(scope="module")
def stage1_vanilla(smpl_body, smpl_dir):
    torch.manual_seed(0)
    return _model(smpl_body, smpl_dir, **{"MODEL.ENCODER.SPA_TEMP_MODE": "vanilla"})


@pytest.mark.parametrize("layout", ["ours", "authors"])
def test_vanilla_stage1_transfers_all_but_the_temporal_parts(stage1_vanilla, smpl_body, smpl_dir, tmp_path, layout):
    if layout == "ours":
        ckpt = make_checkpoint(stage1_vanilla, config={"MODEL": {"ENCODER": {"BACKBONE": "ste"}}})
    else:  # DDP names and the original's SMPL buffers
        ckpt = {"state_dict": {f"module.{k}": v for k, v in stage1_vanilla.state_dict().items()}, "epoch": 3}
        ckpt["state_dict"]["module.decoder.smpl.v_template"] = torch.zeros(6890, 3)
    path = tmp_path / "stage1.pt"
    torch.save(ckpt, path)
    torch.manual_seed(1)
    stage2 = _model(smpl_body, smpl_dir, **{"MODEL.ENCODER.SPA_TEMP_MODE": "parallel"})
    decoder_before = {k: v.clone() for k, v in stage2.decoder.state_dict().items()}
    report = load_pretrained_encoder(stage2, path)
    # everything of the encoder except the attention fusion and the temporal embedding
    kept = ["encoder.blocks.0.attn.ts_attn.bias", "encoder.blocks.0.attn.ts_attn.weight", "encoder.temp_embed"]
    assert sorted(report.not_in_checkpoint) == kept
    assert report.loaded and all(k.startswith("encoder.") for k in report.loaded)
    assert not report.unused and not report.mismatched and not report.nothing_loaded
    src = stage1_vanilla.state_dict()
    for k in report.loaded:
        assert torch.equal(stage2.state_dict()[k], src[k]), k
    # the decoder is re-initialised on purpose: untouched, and its keys were dropped
    assert all(torch.equal(v, decoder_before[k]) for k, v in stage2.decoder.state_dict().items())
    assert report.dropped == len(decoder_before) + (1 if layout == "authors" else 0)
    if layout == "ours":
        assert report.checkpoint_encoder == "BACKBONE=ste"


def test_cnn_stage1_into_ste_transfers_nothing_and_says_so(smpl_body, smpl_dir, tmp_path):
    cnn = _model(smpl_body, smpl_dir, **{"MODEL.ENCODER.BACKBONE": "cnn"})
    path = tmp_path / "cnn.pt"
    torch.save(make_checkpoint(cnn), path)
    ste = _model(smpl_body, smpl_dir)
    before = {k: v.clone() for k, v in ste.state_dict().items()}
    report = load_pretrained_encoder(ste, path)
    assert report.nothing_loaded and report.loaded == []
    assert "encoder.conv1.weight" in report.unused
    assert all(torch.equal(v, before[k]) for k, v in ste.state_dict().items())
    assert "loaded 0 encoder tensors" in report.summary()
