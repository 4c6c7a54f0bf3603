"""Initialising the `ste` encoder from a local timm R50+ViT-B/16 file, as the original did (first blocks)."""

import pytest
import timm
import torch

from maed.errors import AssetError, CheckpointError
from maed.models.checkpoint import init_encoder_weights
from maed.models.ste import SpatioTemporalEncoder


@pytest.fixture(scope="module")
def timm_file(tmp_path_factory):
    torch.manual_seed(0)
    net = timm.create_model("vit_base_r50_s16_224", pretrained=False, depth=3, num_classes=5)
    path = tmp_path_factory.mktemp("timm") / "vit_base_r50_s16_224.pth"
    torch.save(net.state_dict(), path)
    return path, net.eval()


def test_first_blocks_are_mapped_and_the_rest_reported(timm_file):
    path, net = timm_file
    enc = SpatioTemporalEncoder(num_blocks=2, num_heads=12, st_mode="parallel").eval()
    report = init_encoder_weights(enc, path)
    sd = enc.state_dict()
    for k in ("blocks.1.attn.qkv.weight", "pos_embed", "patch_embed.backbone.stages.2.blocks.8.conv3.weight"):
        torch.testing.assert_close(sd[k], net.state_dict()[k])
    assert "blocks.2.attn.qkv.weight" not in sd  # the third timm block is dropped
    assert set(report.missing) >= {"temp_embed", "blocks.0.attn.ts_attn.weight", "pre_logits.fc.weight"}
    assert not [k for k in report.missing if k.startswith("patch_embed.")]


def test_the_projects_extra_heads_keep_their_initialisation(timm_file):
    """The joint heatmap head and the grid pool are never in an ImageNet file: reported, not refused."""
    path, net = timm_file
    enc = SpatioTemporalEncoder(num_blocks=2, num_heads=12, pool="grid", joint_heatmap_joints=49).eval()
    report = init_encoder_weights(enc, path)
    assert {"patch_embed.joint_head.conv.weight", "grid_reduce.weight", "grid_read.weight"} <= set(report.missing)
    key = "patch_embed.backbone.stages.1.blocks.0.conv1.weight"
    torch.testing.assert_close(enc.state_dict()[key], net.state_dict()[key])


def test_vanilla_trunk_matches_timm_blocks(timm_file):
    """Same weights, same tokens: our vanilla blocks compute timm's ViT blocks."""
    path, net = timm_file
    enc = SpatioTemporalEncoder(num_blocks=3, num_heads=12, st_mode="vanilla").eval()
    init_encoder_weights(enc, path)
    tokens = torch.randn(2, 197, 768)
    with torch.no_grad():
        ours, theirs = tokens, tokens
        for a, b in zip(enc.blocks, net.blocks):
            ours, theirs = a(ours, 1), b(theirs)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_missing_or_foreign_file_is_a_clear_error(tmp_path):
    enc = SpatioTemporalEncoder(num_blocks=1, num_heads=12, st_mode="vanilla")
    with pytest.raises(AssetError, match="not found"):
        init_encoder_weights(enc, tmp_path / "none.pth")
    torch.save({"blocks.0.attn.qkv.weight": torch.zeros(3, 3)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="does not fit"):
        init_encoder_weights(enc, tmp_path / "bad.pth")


def test_a_missing_key_off_the_allow_list_is_an_error(timm_file, tmp_path):
    """Only ts_attn, temp_embed and pre_logits may be absent from the file; anything else names the key."""
    path, net = timm_file
    state = {k: v for k, v in net.state_dict().items() if k != "norm.weight"}
    torch.save(state, tmp_path / "no_norm.pth")
    enc = SpatioTemporalEncoder(num_blocks=2, num_heads=12, st_mode="parallel")
    before = enc.state_dict()["pos_embed"].clone()
    with pytest.raises(CheckpointError, match=r"(?s)missing from the checkpoint \(1\):\n    norm\.weight"):
        init_encoder_weights(enc, tmp_path / "no_norm.pth")
    torch.testing.assert_close(enc.state_dict()["pos_embed"], before)  # nothing was loaded
