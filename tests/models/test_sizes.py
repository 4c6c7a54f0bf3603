"""Smaller members of the `ste` family: input size, widths and depths from the config; the defaults stay
the original's layout (tests/models/test_model.py checks every parameter name and shape against it)."""

from __future__ import annotations

import pytest
import torch
from timm.layers import create_pool2d

from maed.config import load_config
from maed.errors import CheckpointError, ConfigError
from maed.models import build_model
from maed.models.ste import MaxPool2dSame, SpatioTemporalEncoder, build_hybrid_backbone, timm_hybrid_filter

TINY = [
    "DATASET.WIDTH=64",
    "DATASET.HEIGHT=64",
    "MODEL.ENCODER.BACKBONE_LAYERS=[1,2,1]",
    "MODEL.ENCODER.BACKBONE_WIDTH=32",
    "MODEL.ENCODER.EMBED_DIM=64",
    "MODEL.ENCODER.NUM_HEADS=4",
    "MODEL.ENCODER.NUM_BLOCKS=1",
    "MODEL.ENCODER.MLP_RATIO=2",
    "MODEL.DECODER.HIDDEN_DIM=128",
]


def test_sizes_follow_the_config(smpl_body):
    model = build_model("stage2", body_model=smpl_body, overrides=TINY).eval()
    enc = model.encoder
    assert enc.feat_dim == 64 and enc.img_size == 64 and enc.num_patches == 16  # 64 / 16 = 4 x 4 tokens
    assert enc.pos_embed.shape == (1, 17, 64) and enc.temp_embed.shape == (1, 16, 1, 64)
    stages = enc.patch_embed.backbone.stages
    assert [len(s.blocks) for s in stages] == [1, 2, 1]
    assert enc.patch_embed.backbone.stem.conv.out_channels == 32
    assert [s.blocks[-1].conv3.out_channels for s in stages] == [128, 256, 512]  # 4w, 8w, 16w
    assert enc.blocks[0].mlp.fc1.out_features == 128
    assert model.decoder.fc1.in_features == 64 and model.decoder.fc1.out_features == 128
    with torch.no_grad():
        out = model(torch.randn(1, 3, 3, 64, 64))
    assert out["verts"].shape == (1, 3, 6890, 3) and torch.isfinite(out["verts"]).all()
    # the output depends on the input: not a constant network
    with torch.no_grad():
        other = model(torch.randn(1, 3, 3, 64, 64))
    assert (other["verts"] - out["verts"]).abs().max() > 1e-6


def test_wrong_crop_size_is_a_clear_error(smpl_body):
    model = build_model("stage2", body_model=smpl_body, overrides=TINY).eval()
    with pytest.raises(ValueError, match="built for 64 x 64"):
        model(torch.randn(1, 2, 3, 96, 96))


@pytest.mark.parametrize(
    "override,key",
    [
        ("DATASET.WIDTH=100", "DATASET.WIDTH/HEIGHT"),
        ("DATASET.HEIGHT=128", "DATASET.WIDTH/HEIGHT"),
        ("MODEL.ENCODER.EMBED_DIM=100", "MODEL.ENCODER.EMBED_DIM=100"),
        ("MODEL.ENCODER.BACKBONE_WIDTH=48", "MODEL.ENCODER.BACKBONE_WIDTH=48"),
        ("MODEL.ENCODER.BACKBONE_LAYERS=[2,2]", "MODEL.ENCODER.BACKBONE_LAYERS"),
        ("MODEL.ENCODER.BACKBONE_LAYERS=[2,0,2]", "MODEL.ENCODER.BACKBONE_LAYERS"),
        ("MODEL.ENCODER.MLP_RATIO=0", "MODEL.ENCODER.MLP_RATIO"),
    ],
)
def test_bad_sizes_name_their_config_key(override, key, smpl_body):
    with pytest.raises(ConfigError) as e:
        build_model("stage2", body_model=smpl_body, overrides=[override])
    assert key in str(e.value)


def test_cnn_encoder_ignores_the_ste_sizes(smpl_body):
    model = build_model("stage2", body_model=smpl_body, overrides=["MODEL.ENCODER.BACKBONE=cnn", "DATASET.WIDTH=100"])
    assert model.encoder.feat_dim == 2048


def test_synth_tiny_preset_fits_the_size_budget(smpl_body):
    """The shipped tiny model must stay <= 20 MB in float32 (issue 10)."""
    cfg = load_config("synth_tiny")
    assert cfg.MODEL.ENCODER.NUM_BLOCKS < 6 and cfg.DATASET.WIDTH < 224 and cfg.MODEL.BODY_MODEL == "anny"
    assert cfg.MODEL.BODY_RIG == "cmu_mb"
    cfg.MODEL.BODY_MODEL, cfg.MODEL.BODY_RIG = "smpl", ""  # same size within a few thousand KTD weights
    model = build_model(cfg, body_model=smpl_body)
    n = sum(p.numel() for p in model.parameters())
    assert n * 4 < 20e6, f"{n} parameters"
    side = cfg.DATASET.WIDTH
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 2, 3, side, side))
    assert out["theta"].shape == (1, 2, 85)


def test_stem_pool_matches_timm_same_pooling():
    pool, ref = MaxPool2dSame(3, 2), create_pool2d("max", kernel_size=3, stride=2, padding="same")
    for shape in ((2, 8, 16, 16), (1, 4, 15, 17)):
        x = torch.randn(shape)
        assert torch.equal(pool(x), ref(x))
        assert pool(x).is_contiguous()
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    pool(x).sum().backward()
    y = x.detach().clone().requires_grad_(True)
    ref(y).sum().backward()
    assert torch.equal(x.grad, y.grad)


def test_backbone_width_must_suit_group_norm():
    with pytest.raises(ValueError, match="multiple of 32"):
        build_hybrid_backbone(layers=(1, 1, 1), width=16)


def test_timm_weights_for_another_grid_are_refused():
    enc = SpatioTemporalEncoder(num_blocks=1, num_heads=4, embed_dim=64, img_size=64, backbone_width=32)
    state = {"pos_embed": torch.zeros(1, 197, 64)}
    with pytest.raises(CheckpointError, match="14x14 token grid; this encoder has 4x4"):
        timm_hybrid_filter(state, num_blocks=1, num_patches=enc.num_patches)


def test_decoder_options_change_only_the_initialisation_and_dropout(smpl_body):
    """KTD.start_at (MODEL.DECODER.INIT_MEAN_POSE) moves a new decoder's starting output to a given pose,
    shape and camera; DROPOUT reaches the trunk; MODEL.ENCODER.POOL=mean feeds the decoder the patch tokens'
    mean. Names and shapes stay the original's, so checkpoints load either way."""
    from maed.body.geometry import axis_angle_to_rotmat, rot6d_to_rotmat

    plain = build_model("stage2", body_model=smpl_body, overrides=TINY)
    other = build_model(
        "stage2",
        body_model=smpl_body,
        overrides=[*TINY, "MODEL.DECODER.DROPOUT=0.1", "MODEL.ENCODER.POOL=mean"],
    ).eval()
    assert {k: v.shape for k, v in plain.state_dict().items()} == {k: v.shape for k, v in other.state_dict().items()}
    assert other.decoder.drop1.p == other.decoder.drop2.p == 0.1 and plain.decoder.drop1.p == 0.5

    J = smpl_body.num_joints
    target = axis_angle_to_rotmat(0.4 * torch.randn(J, 3, generator=torch.Generator().manual_seed(0)))
    betas, cam = torch.linspace(-1, 1, 10), torch.tensor([0.9, 0.1, -0.2])
    other.decoder.start_at(target, betas, cam)
    with torch.no_grad():
        pose_6d, got_betas, got_cam = other.decoder(torch.zeros(1, other.encoder.feat_dim))
    torch.testing.assert_close(rot6d_to_rotmat(pose_6d), target, atol=0.05, rtol=0)  # the small weights aside
    torch.testing.assert_close(got_betas[0], betas, atol=0.05, rtol=0)
    torch.testing.assert_close(got_cam[0], cam, atol=0.05, rtol=0)
    with pytest.raises(ValueError, match="rotations"):
        other.decoder.start_at(target[1:], betas, cam)

    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        tokens = other.encoder.forward_features(x, seqlen=3)
        torch.testing.assert_close(other.encoder(x, seqlen=3), other.encoder.pre_logits(tokens[:, 1:].mean(1)))
        other.encoder.pool = "cls"
        torch.testing.assert_close(other.encoder(x, seqlen=3), other.encoder.pre_logits(tokens[:, 0]))
    with pytest.raises(ConfigError, match="MODEL.DECODER.DROPOUT"):
        build_model("stage2", body_model=smpl_body, overrides=[*TINY, "MODEL.DECODER.DROPOUT=1.5"])
    with pytest.raises(ConfigError, match="MODEL.ENCODER.POOL"):
        build_model("stage2", body_model=smpl_body, overrides=[*TINY, "MODEL.ENCODER.POOL=max"])


def test_joint_heatmap_head_reads_cell_centres_in_the_datasets_coordinates():
    """A heatmap peaked on one cell of the stride-8 grid gives that cell's centre in the crop's [-1, 1]
    coordinates (2 px / S - 1, pixel centres at integers); a flat one gives the crop's centre pixel, (S - 1) / 2."""
    from maed.models.ste import JointHeatmapHead

    S, K = 64, 3
    head = JointHeatmapHead(K, K, stride=8)
    with torch.no_grad():
        head.conv.weight.copy_(60.0 * torch.eye(K)[:, :, None, None])
        head.conv.bias.zero_()
    feat = torch.zeros(1, K, S // 8, S // 8)
    cells = [(0, 0), (2, 5), (7, 3)]  # (row, column)
    for k, (r, c) in enumerate(cells):
        feat[0, k, r, c] = 1.0
    got = head(feat)[0]
    want = torch.tensor([[2 * (8 * c + 3.5) / S - 1, 2 * (8 * r + 3.5) / S - 1] for r, c in cells])
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    centre = 2 * (S - 1) / 2 / S - 1
    torch.testing.assert_close(head(torch.zeros(1, K, 8, 8))[0], torch.full((K, 2), centre), atol=1e-6, rtol=0)


def test_joint_heatmap_head_exists_only_when_asked_and_runs_only_in_training(smpl_body):
    """MODEL.ENCODER.JOINT_HEATMAP adds the head (and nothing else); the model returns its 49 joints per frame in
    training mode only, so inference, exports and checkpoints without it are unchanged."""
    plain = build_model("stage2", body_model=smpl_body, overrides=TINY)
    model = build_model("stage2", body_model=smpl_body, overrides=[*TINY, "MODEL.ENCODER.JOINT_HEATMAP=True"])
    extra = set(model.state_dict()) - set(plain.state_dict())
    assert extra == {"encoder.patch_embed.joint_head.conv.weight", "encoder.patch_embed.joint_head.conv.bias"}
    assert set(plain.state_dict()) <= set(model.state_dict())
    x = torch.randn(2, 3, 3, 64, 64)
    out = model.train()(x)
    assert out.kp_2d_heatmap.shape == (2, 3, 49, 2) and "kp_2d_heatmap" in out
    out.kp_2d_heatmap.sum().backward()
    assert model.encoder.patch_embed.joint_head.conv.weight.grad.abs().sum() > 0
    assert model.encoder.patch_embed.backbone.stem.conv.weight.grad.abs().sum() > 0  # the dense signal reaches the stem
    with torch.no_grad():
        evaluated = model.eval()(x)
    assert evaluated.kp_2d_heatmap is None and "kp_2d_heatmap" not in evaluated
    assert plain.train()(x).kp_2d_heatmap is None
    with pytest.raises(ConfigError, match="JOINT_HEATMAP"):
        build_model(
            "stage2", body_model=smpl_body, overrides=["MODEL.ENCODER.BACKBONE=cnn", "MODEL.ENCODER.JOINT_HEATMAP=True"]
        )


def test_the_heatmap_head_predicts_the_joint_count_it_is_given(smpl_body):
    """The factory does not read the data layer: the training run passes its labels' joint count, whose
    default is the 49 keypoints the databases store."""
    from maed.data.database import NUM_JOINTS
    from maed.models.factory import KEYPOINT_JOINTS

    assert KEYPOINT_JOINTS == NUM_JOINTS == 49
    overrides = [*TINY, "MODEL.ENCODER.JOINT_HEATMAP=True"]
    model = build_model("stage2", body_model=smpl_body, overrides=overrides, keypoint_joints=7)
    assert model.encoder.patch_embed.joint_head.conv.out_channels == 7
    assert model.train()(torch.randn(1, 2, 3, 64, 64)).kp_2d_heatmap.shape == (1, 2, 7, 2)


def test_grid_pool_reads_where_on_the_grid_a_token_is(smpl_body):
    """MODEL.ENCODER.POOL=grid: the frame feature is a linear read of every patch token's reduced channels, so
    moving content between grid cells changes it (the mean pool cannot tell), and the class token is unused."""
    model = build_model("stage2", body_model=smpl_body, overrides=[*TINY, "MODEL.ENCODER.POOL=grid"]).eval()
    enc = model.encoder
    tokens = torch.randn(1, 1 + enc.num_patches, enc.feat_dim)
    swapped = tokens.clone()
    swapped[:, [1, 2]] = tokens[:, [2, 1]]
    other_cls = tokens.clone()
    other_cls[:, 0] += 5.0
    with torch.no_grad():
        feat = enc.pool_tokens(tokens)
        assert feat.shape == (1, enc.feat_dim)
        assert not torch.allclose(enc.pool_tokens(swapped), feat)
        torch.testing.assert_close(enc.pool_tokens(other_cls), feat)
        enc.pool = "mean"
        torch.testing.assert_close(enc.pool_tokens(swapped), enc.pool_tokens(tokens))
