"""`maed export checkpoint`: the shipped form of a training checkpoint loads like it and predicts the same."""

from __future__ import annotations

import pytest
import torch

from maed.cli import main
from maed.config import load_config
from maed.errors import CheckpointError
from maed.export.checkpoint import ExportError, export_checkpoint, plain_model, probe_clip
from maed.models import build_model, load_model
from maed.models.checkpoint import make_checkpoint, read_checkpoint
from maed.utils.io import atomic_torch_save
from tests.conftest import synth_model_overrides

TRAIN_DATA = {
    "TRAIN.DATASETS_2D": "[]",
    "TRAIN.DATASETS_3D": "[synth]",
    "TRAIN.DATASETS_IMG": "[]",
    "TRAIN.DATASET_EVAL": "synth",
}


@pytest.fixture(scope="module")
def training_checkpoint(synth_splits, tmp_path_factory):
    """A checkpoint as `maed train` writes it (optimizer state, epoch, seed, metrics), of a model whose
    weights took a few optimizer steps away from their initialisation (outputs vary with the input)."""
    cfg = load_config("stage2", synth_model_overrides(synth_splits, **TRAIN_DATA))
    torch.manual_seed(0)
    model = build_model(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    out = model(torch.randn(1, 2, 3, 32, 32))
    (out.kp_3d.square().mean() + out.theta.square().mean()).backward()
    optimizer.step()
    run = tmp_path_factory.mktemp("run") / "the_run"
    path = run / "checkpoints" / "best.pt"
    state = make_checkpoint(
        model,
        cfg.to_dict(),
        optimizer=optimizer.state_dict(),
        epoch=3,
        step=30,
        seed=cfg.SEED_VALUE,
        best_metric=91.5,
        best_epoch=2,
        metrics={"pa-mpjpe": 91.5, "num_frames": 16},
    )
    atomic_torch_save(state, path)
    return path


def _outputs(model, images):
    with torch.inference_mode():
        return model(images)


def test_float32_export_loads_through_load_model_and_predicts_exactly_the_same(training_checkpoint, tmp_path):
    out = tmp_path / "shipped.pt"
    export_checkpoint(training_checkpoint, out, dtype="float32", train_command="maed train --config synth_tiny")
    shipped = read_checkpoint(out)
    assert set(shipped) == {"format", "model", "config", "provenance"}  # no optimizer, no RNG states
    assert shipped["provenance"]["train_command"] == "maed train --config synth_tiny"
    original, exported = load_model(training_checkpoint), load_model(out)
    images = probe_clip(shipped["config"], seed=5)
    a, b = _outputs(original, images), _outputs(exported, images)
    for key in ("theta", "verts", "kp_3d", "kp_2d"):
        assert torch.equal(a[key], b[key]), key
    assert a["verts"].std(dim=1).mean() > 0  # not a degenerate model: outputs change with the frame


def test_float16_export_is_a_sixth_of_the_training_checkpoint_within_its_tolerance_and_records_provenance(
    training_checkpoint, synth_splits, tmp_path, capsys
):
    from maed.eval.outputs import file_sha256

    metrics = tmp_path / "metrics.json"
    metrics.write_text('{"mpjpe": 1.0, "by_protocol": {"original": {"mpjpe": 1.0}}, "run": {"x": 1}}')
    out16 = tmp_path / "shipped" / "f16.pt"
    argv = ["export", "checkpoint", str(training_checkpoint), "--out", str(out16), "--metrics", str(metrics)]
    assert main([*argv, "--dtype", "float16", "--tolerance-mm", "5"]) == 0
    assert "float16 weights" in capsys.readouterr().out
    # the training checkpoint holds float32 weights and Adam's two moments: six times the float16 weights
    assert out16.stat().st_size < 0.18 * training_checkpoint.stat().st_size
    shipped = read_checkpoint(out16)
    provenance = shipped["provenance"]
    assert provenance["evaluations"] == [{"mpjpe": 1.0, "by_protocol": {"original": {"mpjpe": 1.0}}}]
    assert provenance["export_command"] == (
        f"maed export checkpoint {training_checkpoint} --out {out16} --dtype float16 --tolerance-mm 5.0 "
        f"--metrics {metrics}"
    )
    assert all(
        v.dtype == torch.float16
        for k, v in shipped["model"].items()
        if "running_" not in k and v.dtype.is_floating_point
    )
    assert 0 < provenance["max_vertex_difference_mm"] <= 5.0
    # measured again, independently of the export's own check: another clip, the same bound
    reference = plain_model(read_checkpoint(training_checkpoint))
    exported = plain_model(shipped, body_model=reference.body_model)
    images = probe_clip(shipped["config"], seed=9)
    diff = (_outputs(reference, images)["verts"] - _outputs(exported, images)["verts"]).abs().max()
    assert 0 < float(diff) * 1000 <= 5.0
    assert provenance["seed"] == 3 and provenance["epoch"] == 3 and provenance["step"] == 30
    assert provenance["validation"]["best_pa_mpjpe_mm"] == 91.5 and provenance["validation"]["dataset"] == "synth"
    data = provenance["data"]
    train_db = synth_splits / "synth_train_db.pt"
    assert data["databases"]["synth"] == {"path": str(train_db), "sha256": file_sha256(train_db)}
    assert data["synth"]["sequences"] == 3 and data["synth"]["rig"] == "cmu_mb"  # the generator's arguments
    assert provenance["train_command"] == f"maed train --config {training_checkpoint.parent.parent / 'config.yaml'}"


def test_auto_takes_float16_within_the_tolerance_and_float32_beyond_it(training_checkpoint, tmp_path):
    loose = export_checkpoint(training_checkpoint, tmp_path / "loose.pt", tolerance_mm=50.0)
    assert loose["weights_dtype"] == "float16" and list(loose["vertex_difference_mm"]) == ["float16"]
    tight = export_checkpoint(training_checkpoint, tmp_path / "tight.pt", tolerance_mm=1e-3)
    assert tight["weights_dtype"] == "float32" and tight["max_vertex_difference_mm"] == 0.0
    assert tight["vertex_difference_mm"]["float16"] > 1e-3  # tried first, and too far off


def test_an_export_beyond_the_tolerance_writes_nothing(training_checkpoint, tmp_path):
    out = tmp_path / "model.pt"
    with pytest.raises(ExportError, match="nothing was written"):
        export_checkpoint(training_checkpoint, out, dtype="float16", tolerance_mm=0.0)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_only_training_checkpoints_with_a_config_are_exported(tmp_path, capsys):
    bare = tmp_path / "bare.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, bare)  # the authors' layout: no config
    with pytest.raises(CheckpointError, match="expected a checkpoint written by `maed train`"):
        export_checkpoint(bare, tmp_path / "out.pt")
    assert main(["export", "checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o.pt")]) == 2
    assert "not found" in capsys.readouterr().err


def test_a_keypoint_model_exports_and_is_probed_with_landmarks(smpl_dir, tmp_path):
    """The probe clip follows the model's input: landmarks for the keypoints encoder (images would fail)."""
    overrides = [
        "MODEL.ENCODER.BACKBONE=keypoints",
        "MODEL.ENCODER.EMBED_DIM=32",
        "MODEL.ENCODER.NUM_HEADS=4",
        "MODEL.ENCODER.NUM_BLOCKS=1",
        "MODEL.ENCODER.NUM_KEYPOINTS=17",
        "MODEL.DECODER.HIDDEN_DIM=64",
        f"PATHS.BODY_MODEL_DIR={smpl_dir}",
    ]
    cfg = load_config("stage2", overrides)
    torch.manual_seed(0)
    model = build_model(cfg)
    source = tmp_path / "run" / "checkpoints" / "best.pt"
    atomic_torch_save(make_checkpoint(model, cfg.to_dict(), epoch=1, seed=0), source)
    probe = probe_clip(cfg.to_dict())
    assert probe.shape == (1, min(cfg.EVAL.SEQLEN, cfg.MODEL.ENCODER.MAX_SEQLEN), 17, 3)
    provenance = export_checkpoint(source, tmp_path / "kp.pt", dtype="float32")
    assert provenance["max_vertex_difference_mm"] == 0.0
    exported = load_model(tmp_path / "kp.pt", optimize=False)
    assert exported.input_kind == "keypoints" and exported.encoder.num_keypoints == 17
    assert torch.equal(_outputs(exported, probe)["verts"], _outputs(model.eval(), probe)["verts"])
