"""MAED model: checkpoint layouts of the original, output shapes, clip-length rules, checkpoint errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import maed
from maed.errors import CheckpointError, ConfigError
from maed.models import build_model
from maed.models.checkpoint import load_checkpoint

# parameter names and shapes of the original model, recorded from its code (copied from shared/fixtures)
LAYOUT_DIR = Path(__file__).parents[1] / "fixtures" / "maed_checkpoint_layout"
LAYOUTS = sorted(LAYOUT_DIR.glob("layout_*.json"))
assert len(LAYOUTS) == 6, LAYOUT_DIR


def _overrides(c: dict) -> list[str]:
    return [
        f"MODEL.ENCODER.BACKBONE={c['encoder']}",
        f"MODEL.ENCODER.NUM_BLOCKS={c['num_blocks']}",
        f"MODEL.ENCODER.NUM_HEADS={c['num_heads']}",
        f"MODEL.ENCODER.SPA_TEMP_MODE={c['st_mode']}",
        f"MODEL.DECODER.BACKBONE={c['decoder']}",
        f"MODEL.DECODER.HIDDEN_DIM={c['hidden_dim']}",
    ]


def _authors_checkpoint(layout: list, smpl_extra: bool = True) -> dict:
    """A checkpoint in the authors' release format, random values in the recorded shapes."""
    g = torch.Generator().manual_seed(0)
    sd = {}
    for name, shape in layout:
        if name.endswith("num_batches_tracked"):
            sd["module." + name] = torch.tensor(0)
        else:
            sd["module." + name] = torch.rand(shape, generator=g) * 0.02
    if smpl_extra:  # the SMPL-layer buffers the release carries and loaders must ignore
        sd["module.decoder.smpl.v_template"] = torch.zeros(6890, 3)
        sd["module.decoder.smpl.J_regressor_extra"] = torch.zeros(9, 6890)
    return {"state_dict": sd, "epoch": 1, "performance": 45.7, "optimizer": {}}


@pytest.mark.parametrize("layout_file", LAYOUTS, ids=lambda p: p.stem)
def test_original_layout_loads_with_zero_mismatch(layout_file, smpl_body, smpl_dir, tmp_path):
    spec = json.loads(layout_file.read_text())
    model = build_model("stage2", body_model=smpl_body, body_model_dir=smpl_dir, overrides=_overrides(spec["config"]))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: list(s) for k, s in spec["layout"]}
    assert sorted(set(theirs) - set(ours)) == []
    assert sorted(set(ours) - set(theirs)) == []
    assert {k: ours[k] for k in theirs} == theirs
    ckpt = _authors_checkpoint(spec["layout"])
    path = tmp_path / "model_best.pth.tar"
    torch.save(ckpt, path)
    report = load_checkpoint(model, path)
    assert report.ok and len(report.ignored) == 2
    key = spec["layout"][-1][0]
    torch.testing.assert_close(model.state_dict()[key], ckpt["state_dict"]["module." + key])


def test_load_model_reads_authors_checkpoint_with_original_yaml(smpl_dir, tmp_path):
    spec = json.loads((LAYOUT_DIR / "layout_ste_parallel_ktd.json").read_text())
    path = tmp_path / "model_best.pth.tar"
    torch.save(_authors_checkpoint(spec["layout"]), path)
    repo = Path(__file__).parents[2]
    model = maed.load_model(path, body_model_dir=smpl_dir, config=repo / "configs" / "config_stage2.yaml")
    assert not model.training
    assert model.encoder.blocks[0].attn.mode == "parallel" and len(model.encoder.blocks) == 6


def test_wrong_checkpoint_fails_with_key_report(smpl_body, smpl_dir, tmp_path):
    parallel = build_model("stage2", body_model=smpl_body, overrides=["MODEL.ENCODER.NUM_BLOCKS=1"])
    path = tmp_path / "parallel.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in parallel.state_dict().items()}}, path)
    vanilla = build_model(
        "stage2", body_model=smpl_body, overrides=["MODEL.ENCODER.NUM_BLOCKS=1", "MODEL.ENCODER.SPA_TEMP_MODE=vanilla"]
    )
    before = {k: v.clone() for k, v in vanilla.state_dict().items()}
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(vanilla, path)
    msg = str(e.value)
    assert "unexpected in the checkpoint (3)" in msg  # ts_attn.weight, ts_attn.bias, temp_embed
    assert "encoder.blocks.0.attn.ts_attn.weight" in msg and "encoder.temp_embed" in msg
    assert all(torch.equal(before[k], v) for k, v in vanilla.state_dict().items())  # nothing loaded


@pytest.mark.parametrize(
    "encoder,mode,decoder",
    [
        ("ste", "parallel", "ktd"),
        ("ste", "vanilla", "iterative"),
        ("cnn", "vanilla", "ktd"),
        ("cnn", "vanilla", "iterative"),
        ("ste", "series", "ktd"),
        ("ste", "coupling", "ktd"),
        ("ste", "temporal", "ktd"),
    ],
)
def test_output_shapes(encoder, mode, decoder, smpl_body, smpl_dir):
    torch.manual_seed(0)
    model = build_model(
        "stage2",
        body_model=smpl_body,
        body_model_dir=smpl_dir,
        overrides=[
            f"MODEL.ENCODER.BACKBONE={encoder}",
            f"MODEL.ENCODER.SPA_TEMP_MODE={mode}",
            "MODEL.ENCODER.NUM_BLOCKS=1",
            f"MODEL.DECODER.BACKBONE={decoder}",
        ],
    ).eval()
    N, T = 1, 2
    with torch.no_grad():
        out = model(torch.randn(N, T, 3, 224, 224))
    assert out["theta"].shape == (N, T, 85)
    assert out["verts"].shape == (N, T, 6890, 3)
    assert out["kp_3d"].shape == (N, T, 49, 3)
    assert out["kp_2d"].shape == (N, T, 49, 2)
    assert out["rotmat"].shape == (N, T, 24, 3, 3)
    assert all(torch.isfinite(v).all() for v in out.values())
    # rotations are proper: R R^T = I, det R = 1
    R = out["rotmat"].reshape(-1, 3, 3)
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3).expand_as(R), atol=1e-5, rtol=0)
    # theta carries the same rotations as axis-angles, and the decoder's camera and shape
    from maed.body.geometry import axis_angle_to_rotmat

    torch.testing.assert_close(axis_angle_to_rotmat(out["theta"][..., 3:75].reshape(-1, 3)), R, atol=1e-4, rtol=0)


def test_h36m_regressor_replaces_joints(smpl_body, smpl_dir):
    model = build_model("stage2", body_model=smpl_body, overrides=["MODEL.ENCODER.NUM_BLOCKS=1"]).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 2, 3, 224, 224), J_regressor=smpl_body.J_regressor_h36m)
    assert out["kp_3d"].shape == (1, 2, 17, 3) and out["kp_2d"].shape == (1, 2, 17, 2)
    expected = torch.einsum("kv,ntvc->ntkc", smpl_body.J_regressor_h36m, out["verts"])
    torch.testing.assert_close(out["kp_3d"], expected, atol=1e-5, rtol=1e-5)


def test_projection_is_the_original_weak_perspective(smpl_body):
    from maed.body.geometry import weak_perspective_projection

    pts = torch.tensor([[[0.1, -0.2, 0.3], [0.0, 0.0, 0.0]]])
    cam = torch.tensor([[0.9, 0.05, -0.1]])
    tz = 2 * 5000 / (224 * 0.9 + 1e-9)
    x = 5000 * (pts[..., 0] + 0.05) / (pts[..., 2] + tz) / 112
    y = 5000 * (pts[..., 1] - 0.1) / (pts[..., 2] + tz) / 112
    torch.testing.assert_close(weak_perspective_projection(pts, cam), torch.stack([x, y], -1))


def test_long_clips_need_the_explicit_option(smpl_body):
    model = build_model("stage2", body_model=smpl_body, overrides=["MODEL.ENCODER.NUM_BLOCKS=1"]).eval()
    with pytest.raises(ConfigError, match="INTERP_TEMP_EMBED"):
        model(torch.zeros(1, 17, 3, 224, 224))
    long = build_model(
        "stage2", body_model=smpl_body, overrides=["MODEL.ENCODER.NUM_BLOCKS=1", "MODEL.ENCODER.INTERP_TEMP_EMBED=True"]
    )
    emb = long.encoder.temporal_embedding(31)
    assert emb.shape == (1, 31, 1, 768)
    src = long.encoder.temp_embed
    torch.testing.assert_close(emb[:, 0], src[:, 0])
    torch.testing.assert_close(emb[:, -1], src[:, -1])
    torch.testing.assert_close(emb[:, 2], src[:, 1])  # 31 samples over 16: every other one is a knot
    torch.testing.assert_close(long.encoder.temporal_embedding(16), src)


def test_checkpoints_never_carry_body_model_data(smpl_body):
    model = build_model("stage2", body_model=smpl_body, overrides=["MODEL.ENCODER.NUM_BLOCKS=1"])
    assert not [k for k in model.state_dict() if k.startswith("body_model.")]
    assert model.body_model.faces is not None


@pytest.mark.slow
def test_anny_drives_the_same_model():
    """The free body model through the same MAED: one KTD regressor per Anny bone, ancestors from its tree."""
    from maed.body import ancestors, build_body_model

    body = build_body_model("anny")
    model = build_model(
        "stage2", body_model=body, overrides=["MODEL.ENCODER.NUM_BLOCKS=1", "MODEL.BODY_MODEL=anny"]
    ).eval()
    assert len(model.decoder.joint_regs) == len(body.parents) == 104
    anc = ancestors(body.parents)
    assert all(reg.in_features == 1024 + 6 * len(a) for reg, a in zip(model.decoder.joint_regs, anc))
    assert model.decoder.decshape.out_features == body.num_betas == 6
    with torch.no_grad():
        out = model(torch.randn(1, 2, 3, 224, 224))
    assert out["verts"].shape == (1, 2, body.num_vertices, 3)
    assert out["rotmat"].shape == (1, 2, 104, 3, 3) and out["theta"].shape == (1, 2, 3 + 104 * 3 + 6)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_project_checkpoint_round_trip(smpl_body, smpl_dir, tmp_path):
    """Our format carries its config: load_model rebuilds the same network and outputs without being told."""
    from maed.config import load_config
    from maed.models.checkpoint import make_checkpoint
    from maed.utils.io import atomic_torch_save

    cfg = load_config("stage2", ["MODEL.ENCODER.NUM_BLOCKS=1", "MODEL.ENCODER.SPA_TEMP_MODE=series"])
    torch.manual_seed(3)
    model = build_model(cfg, body_model=smpl_body).eval()
    atomic_torch_save(make_checkpoint(model, cfg.to_dict(), epoch=2), tmp_path / "ckpt.pt")
    again = maed.load_model(tmp_path / "ckpt.pt", body_model_dir=smpl_dir, optimize=False)
    assert again.encoder.blocks[0].attn.mode == "series" and len(again.encoder.blocks) == 1
    x = torch.randn(1, 2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(again(x)["verts"], model(x)["verts"])


def test_bf16_autocast_keeps_geometry_in_float32(smpl_body):
    torch.manual_seed(0)
    model = build_model("stage2", body_model=smpl_body, overrides=["MODEL.ENCODER.NUM_BLOCKS=1"]).eval()
    x = torch.randn(1, 2, 3, 224, 224)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert all(v.dtype == torch.float32 for v in low.values())
    # the encoder ran in bf16 (outputs differ a little) but the mesh is still a sane fp32 mesh
    assert not torch.equal(low["verts"], ref["verts"])
    assert (low["verts"] - ref["verts"]).abs().max() < 0.05
