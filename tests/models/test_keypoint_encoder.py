"""The ``keypoints`` encoder: MAED over body landmarks, in every attention mode, on SMPL and Anny, through the
unchanged decoder into the same ``MAEDOutput``."""

from __future__ import annotations

import pytest
import torch

from maed.config import load_config
from maed.errors import ConfigError
from maed.models import build_model, load_model
from maed.models.attention import ATTENTION_MODES
from maed.models.checkpoint import make_checkpoint
from maed.models.keypoints import KeypointEncoder, random_keypoints
from maed.utils.io import atomic_torch_save

TEMPORAL_MODES = ("temporal", "series", "parallel", "coupling")
SMALL = [
    "MODEL.ENCODER.BACKBONE=keypoints",
    "MODEL.ENCODER.EMBED_DIM=32",
    "MODEL.ENCODER.NUM_HEADS=4",
    "MODEL.ENCODER.NUM_BLOCKS=2",
    "MODEL.ENCODER.MLP_RATIO=2",
    "MODEL.DECODER.HIDDEN_DIM=64",
    "MODEL.DECODER.DROPOUT=0",
]


@pytest.fixture(scope="module")
def anny_cmu():
    """Anny on the cmu_mb rig (about 0.5 s when cached under ~/.cache/anny, minutes otherwise)."""
    pytest.importorskip("anny")
    from maed.body import build_body_model

    return build_body_model("anny", rig="cmu_mb")


def small_config(mode: str = "parallel", *overrides: str):
    return load_config("stage2", [*SMALL, f"MODEL.ENCODER.SPA_TEMP_MODE={mode}", *overrides])


def small_model(body, mode: str = "parallel", *overrides: str):
    torch.manual_seed(0)
    return build_model(small_config(mode, *overrides), body_model=body)


def clip(n: int = 2, t: int = 5, *, world: bool = False, seed: int = 0) -> torch.Tensor:
    return random_keypoints(n, t, world=world, generator=torch.Generator().manual_seed(seed))


def test_all_modes_are_tested():
    assert set(ATTENTION_MODES) == {"vanilla", *TEMPORAL_MODES}  # vanilla is the spatial-only mode


@pytest.mark.parametrize("body_name", ["smpl", "anny"])
@pytest.mark.parametrize("mode", ATTENTION_MODES)
def test_every_mode_gives_the_output_of_the_image_model(mode, body_name, request):
    body = request.getfixturevalue("smpl_body" if body_name == "smpl" else "anny_cmu")
    model = small_model(body, mode).eval()
    assert model.input_kind == "keypoints" and isinstance(model.encoder, KeypointEncoder)
    x = clip()
    with torch.no_grad():
        out = model(x)
        other = model(clip(seed=1))
    J, S = body.num_joints, body.num_betas
    assert out.theta.shape == (2, 5, 3 + 3 * J + S)
    assert out.verts.shape == (2, 5, body.num_vertices, 3)
    assert out.kp_3d.shape == (2, 5, 49, 3) and out.kp_2d.shape == (2, 5, 49, 2)
    assert out.rotmat.shape == (2, 5, J, 3, 3)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert (other.verts - out.verts).abs().max() > 1e-6  # the mesh follows the landmarks


def test_anny_cmu_rig_from_the_config(anny_cmu):
    model = build_model("stage2", overrides=[*SMALL, "MODEL.BODY_MODEL=anny", "MODEL.BODY_RIG=cmu_mb"]).eval()
    assert model.body_model.name == "anny" and model.body_model.num_joints == anny_cmu.num_joints
    with torch.no_grad():
        out = model(clip(1, 3))
    assert out.rotmat.shape[2] == anny_cmu.num_joints and out.kp_3d.shape == (1, 3, 49, 3)


def test_sizes_and_landmarks_follow_the_config(smpl_body):
    model = small_model(smpl_body, "parallel", "MODEL.ENCODER.NUM_KEYPOINTS=17", "MODEL.ENCODER.KP_WORLD=True")
    enc = model.encoder
    assert enc.feat_dim == 32 and len(enc.blocks) == 2 and enc.blocks[0].mlp.fc1.out_features == 64
    assert enc.landmark_embed.shape == (1, 17, 32) and enc.kp_embed.in_features == 6
    assert enc.channel_names == ("x", "y", "visibility", "world_x", "world_y", "world_z")
    assert model.decoder.fc1.in_features == 32
    with torch.no_grad():
        out = model.eval()(random_keypoints(1, 4, 17, world=True))
    assert out.verts.shape[:2] == (1, 4)


@pytest.mark.parametrize(
    "override,key",
    [
        ("MODEL.ENCODER.NUM_KEYPOINTS=0", "MODEL.ENCODER.NUM_KEYPOINTS"),
        ("MODEL.ENCODER.POOL=mean", "MODEL.ENCODER.POOL"),
        ("MODEL.ENCODER.JOINT_HEATMAP=True", "MODEL.ENCODER.JOINT_HEATMAP"),
        ("MODEL.ENCODER.EMBED_DIM=30", "MODEL.ENCODER.EMBED_DIM=30"),
        ("MODEL.ENCODER.INIT_WEIGHTS=imagenet.pth", "MODEL.ENCODER.INIT_WEIGHTS"),
    ],
)
def test_bad_keypoint_settings_name_their_config_key(override, key, smpl_body):
    with pytest.raises(ConfigError) as e:
        small_model(smpl_body, "parallel", override)
    assert key in str(e.value)


def test_wrong_input_names_the_layout_expected(smpl_body):
    model = small_model(smpl_body).eval()
    with pytest.raises(ValueError, match=r"expected N x T x 33 x 3 \(x, y, visibility .*takes keypoints, not images"):
        model(torch.randn(1, 2, 3, 64, 64))
    with pytest.raises(ValueError, match=r"N x T x 33 x 3 .* got \(1, 2, 17, 3\)"):
        model(torch.randn(1, 2, 17, 3))
    image_model = build_model("stage2", body_model=smpl_body, overrides=["MODEL.ENCODER.BACKBONE=cnn"])
    with pytest.raises(ValueError, match="takes images, not keypoints"):
        image_model(clip())


def test_clips_longer_than_the_temporal_embedding_are_refused_as_for_images(smpl_body):
    with pytest.raises(ConfigError, match="INTERP_TEMP_EMBED"):
        small_model(smpl_body, "parallel").eval()(clip(1, 17))
    model = small_model(smpl_body, "parallel", "MODEL.ENCODER.INTERP_TEMP_EMBED=True").eval()
    with torch.no_grad():
        assert model(clip(1, 20)).verts.shape[1] == 20
    with torch.no_grad():  # no temporal embedding: any length
        assert small_model(smpl_body, "vanilla").eval()(clip(1, 20)).verts.shape[1] == 20


def _move_hidden(x: torch.Tensor, seed: int) -> torch.Tensor:
    """x with every channel but visibility of its zero-visibility landmarks replaced by junk."""
    g = torch.Generator().manual_seed(seed)
    hidden = x[..., 2] == 0
    moved = x.clone()
    junk = 10 * torch.randn(moved.shape, generator=g)
    junk[..., 2] = 0
    moved[hidden] = junk[hidden]
    return moved


@pytest.mark.parametrize("mode", ATTENTION_MODES)
def test_hidden_landmarks_positions_change_no_output(mode, smpl_body):
    model = small_model(smpl_body, mode, "MODEL.ENCODER.KP_WORLD=True").eval()
    x = clip(2, 4, world=True)
    hidden = x[..., 2] == 0
    assert 0 < hidden.sum() < hidden.numel()
    moved = _move_hidden(x, seed=1)
    moved[hidden.nonzero()[0].unbind()] = torch.tensor([float("nan")] * 2 + [0.0] + [float("nan")] * 3)
    assert not torch.equal(moved[hidden], x[hidden])
    with torch.no_grad():
        a, b = model(x), model(moved)
        for key in ("theta", "verts", "kp_3d", "kp_2d", "rotmat"):
            assert torch.equal(a[key], b[key]), key
        # the same change to visible landmarks moves the mesh; hiding them does too
        shifted = x.clone()
        shifted[..., :2] = torch.where(hidden[..., None], x[..., :2], x[..., :2] + 0.2)
        assert (model(shifted).verts - a.verts).abs().max() > 1e-5
        hide = x.clone()
        hide[0, 0, :, 2] = 0
        assert (model(hide).verts[0, 0] - a.verts[0, 0]).abs().max() > 1e-5


def test_hidden_landmarks_get_no_gradient_through_their_position(smpl_body):
    model = small_model(smpl_body, "coupling").eval()
    x = clip(1, 3).requires_grad_(True)
    model(x).verts.square().sum().backward()
    hidden = x[..., 2] == 0
    assert torch.equal(x.grad[hidden], torch.zeros_like(x.grad[hidden]))
    assert x.grad[~hidden][:, :2].abs().sum() > 0


def test_a_hidden_landmark_is_its_landmark_s_missing_token():
    enc = _encoder("vanilla")
    x = clip(1, 2)[0]
    hidden = x[..., 2] == 0
    tokens = enc.embed_tokens(x)[:, 1:]  # (T, K, D) after the class token
    expected = (enc.missing_token + enc.landmark_embed).expand_as(tokens)
    assert torch.equal(tokens[hidden], expected[hidden])
    assert not torch.allclose(tokens[~hidden], expected[~hidden])


def _encoder(mode: str) -> KeypointEncoder:
    torch.manual_seed(0)
    return KeypointEncoder(num_blocks=2, num_heads=4, embed_dim=32, st_mode=mode).eval()


@pytest.mark.parametrize("mode", ATTENTION_MODES)
def test_temporal_attention_carries_one_frame_into_the_others(mode):
    enc = _encoder(mode)
    T = 6
    x = clip(1, T)[0]  # (T, K, C): one clip
    changed = x.clone()
    changed[0, :, :2] += 0.3  # every landmark of frame 0 moves
    with torch.no_grad():
        a, b = enc(x, seqlen=T), enc(changed, seqlen=T)
    assert (a[0] - b[0]).abs().max() > 1e-4  # frame 0 itself always changes
    if mode in TEMPORAL_MODES:
        assert (a[5] - b[5]).abs().max() > 1e-6
    else:
        assert torch.equal(a[1:], b[1:])  # spatial-only: frames are independent


def test_clips_of_a_batch_stay_apart():
    enc = _encoder("coupling")
    x = clip(2, 3).reshape(6, 33, 3)
    changed = x.clone()
    changed[:3, :, :2] += 0.3  # the first clip's frames
    with torch.no_grad():
        a, b = enc(x, seqlen=3), enc(changed, seqlen=3)
    assert (a[:3] - b[:3]).abs().max() > 1e-4 and torch.equal(a[3:], b[3:])


def test_a_few_optimiser_steps_lower_the_loss_and_reach_every_encoder_weight(smpl_body):
    model = small_model(smpl_body, "parallel").train()
    x = clip(2, 4)
    g = torch.Generator().manual_seed(3)
    target_3d, target_2d = 0.3 * torch.randn(2, 4, 49, 3, generator=g), 0.5 * torch.randn(2, 4, 49, 2, generator=g)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    losses = []
    for step in range(12):
        out = model(x)
        loss = (out.kp_3d - target_3d).square().mean() + (out.kp_2d - target_2d).square().mean()
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            for name, p in model.encoder.named_parameters():
                assert p.grad is not None and p.grad.abs().sum() > 0, name  # every encoder weight learns
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.95 * losses[0], losses  # measured: 0.90


def test_checkpoint_round_trip_through_load_model(smpl_body, tmp_path):
    cfg = small_config("series", "MODEL.ENCODER.KP_WORLD=True")
    model = small_model(smpl_body, "series", "MODEL.ENCODER.KP_WORLD=True").eval()
    state = make_checkpoint(model, cfg.to_dict())
    assert not any(k.startswith("body_model.") for k in state["model"])
    assert {"encoder.landmark_embed", "encoder.missing_token", "encoder.kp_embed.weight"} <= set(state["model"])
    path = tmp_path / "kp.pt"
    atomic_torch_save(state, path)
    x = clip(1, 6, world=True)
    loaded = load_model(path, body_model=smpl_body, optimize=False)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    for key in ("theta", "verts", "kp_3d", "kp_2d"):
        assert torch.equal(a[key], b[key]), key
    fast = load_model(path, body_model=smpl_body, precision="bf16")
    assert fast.inference_setup.precision == "bf16" and fast.encoder.landmark_embed.dtype == torch.bfloat16
    with torch.no_grad():
        c = fast(x)
    assert c.verts.dtype == torch.float32 and (c.verts - a.verts).abs().max() < 0.02  # 2 cm in bfloat16


def test_predict_windows_runs_a_keypoint_model_over_a_window(smpl_body):
    from maed.models.windows import predict_windows

    model = small_model(smpl_body, "parallel").eval()
    window = clip(1, 8)
    with torch.no_grad():
        out = predict_windows(model, window, seqlen=4)
        direct = model(window[:, 0::2])  # the first of the two interleaved clips: frames 0, 2, 4, 6
    assert out["verts"].shape == (1, 8, smpl_body.num_vertices, 3)
    assert torch.equal(torch.from_numpy(out["verts"][:, 0::2]), direct.verts)


def test_landmark_inputs_count_landmarks_outside_the_frame_as_unseen():
    import numpy as np

    from maed.models.keypoints import BASE_SCALE, inputs_from_landmarks

    # one frame 100 x 80, a box of side 40 at (50, 40); landmarks: inside, below the frame at high
    # visibility (a portrait's knee), inside at low visibility, left of the frame
    lm = np.array([[[60.0, 50.0, 0.0, 0.9], [50.0, 95.0, 0.0, 0.9], [30.0, 30.0, 0.0, 0.2], [-1.0, 40.0, 0.0, 1.0]]])
    box = np.array([[50.0, 40.0, 40.0, 40.0]])
    x = inputs_from_landmarks(lm, box, (100, 80))
    assert x[0, :, 2].tolist() == [1.0, 0.0, 0.0, 0.0]
    np.testing.assert_allclose(x[0, 0, :2], [10 / (BASE_SCALE * 20), 10 / (BASE_SCALE * 20)], rtol=1e-6)
    assert (x[0, 1:, :2] == 0).all()  # unseen landmarks' positions are zeroed
    # a taller frame sees the knee; sizes per frame broadcast against the landmarks
    both = inputs_from_landmarks(np.stack([lm, lm]), np.stack([box, box]), np.array([[[100, 80]], [[100, 120]]]))
    assert both[0, 0, :, 2].tolist() == [1.0, 0.0, 0.0, 0.0] and both[1, 0, :, 2].tolist() == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="frame_size"):
        inputs_from_landmarks(lm, box, (0, 80))
