"""Synthetic keypoint data: the fitted BlazePose landmark map, motion banks and training clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("anny")
pytest.importorskip("onnxruntime")

from maed.synth.keypoint_data import BankSpec, KeypointClips, MotionBank, ViewSettings  # noqa: E402
from maed.synth.landmarks import LandmarkMap, collect, shipped_map_path  # noqa: E402

TORSO_AND_FACE = [0, 2, 5, 7, 8, 11, 12, 23, 24]  # nose, eyes, ears, shoulders, hips


@pytest.fixture(scope="module")
def lmap():
    return LandmarkMap.load(shipped_map_path("anny", "cmu_mb"))


@pytest.fixture(scope="module")
def bank(lmap):
    return MotionBank.build(BankSpec(count=3, frames=24, seed=3), lmap, progress=False)


def test_the_shipped_map_reproduces_blazepose_on_renders(synth_splits, lmap):
    """BlazePose run on `maed synth` frames lands where the map puts its landmarks on the known bodies."""
    pairs = collect(synth_splits, variant="full", progress=False)
    points = (pairs["uv"][:, lmap.vertex_ids] * lmap.weights[None, ..., None]).sum(axis=2)
    det = pairs["det"]
    err = np.linalg.norm(det[..., :2] - points, axis=-1) / pairs["side"][:, None]  # box-side units
    seen = det[..., 3] > 0.5
    for k in TORSO_AND_FACE:
        if seen[:, k].sum() >= 5:
            # within twice the spread the map was fitted with (its typical error), for most frames
            assert np.median(err[seen[:, k], k]) < 2 * lmap.spread[k], (k, np.median(err[seen[:, k], k]))
    # and a map that is wrong (the landmarks of the other side) is clearly worse: the check has teeth
    swapped = points[:, [0, 5, 4, 3, 2, 1, 6, 8, 7, 10, 9, 12, 11] + list(range(13, 33))]
    err_sw = np.linalg.norm(det[..., :2] - swapped, axis=-1) / pairs["side"][:, None]
    assert np.median(err_sw[:, 11:13][seen[:, 11:13]]) > np.median(err[:, 11:13][seen[:, 11:13]])


def test_the_map_has_convex_weights_and_fitted_noise(lmap):
    assert lmap.vertex_ids.shape == lmap.weights.shape and lmap.vertex_ids.shape[0] == 33
    np.testing.assert_allclose(lmap.weights.sum(1), 1.0, atol=1e-5)
    assert (lmap.weights >= 0).all()
    assert (0 < lmap.spread).all() and (lmap.spread < 0.2).all()
    assert (0 <= lmap.miss).all() and (lmap.miss < 1).all() and 0 <= lmap.swap < 0.5


def test_targets_are_the_body_of_the_pose_and_shape(bank, lmap):
    """theta's pose (root in the camera frame) and shape, through the body model, give kp_3d (root-centred)."""
    from scipy.spatial.transform import Rotation

    from maed.synth.bodies import build_kit

    kit = build_kit("anny", "cmu_mb")
    clips = KeypointClips(bank, lmap, ViewSettings(seqlen=8))
    for i in range(4):  # flipped and not
        s = clips.sample(np.random.default_rng(i), i)
        th = s["theta"].numpy()
        J = kit.layout.num_joints
        R = Rotation.from_rotvec(th[:, 3 : 3 + 3 * J].reshape(-1, 3)).as_matrix().reshape(8, J, 3, 3)
        with torch.no_grad():
            j = kit.body(torch.as_tensor(R, dtype=torch.float32), torch.as_tensor(th[:, 3 + 3 * J :]))["joints"].numpy()
        g = s["kp_3d"].numpy()
        mask = g[0, :, 3] > 0
        centre = lambda x: x - x[:, 27:29].mean(1, keepdims=True)  # noqa: E731  (the hips)
        assert np.abs(centre(j)[:, mask] - centre(g[..., :3])[:, mask]).max() < 2e-3


def test_noise_free_inputs_are_the_projected_landmarks_in_the_crop(bank, lmap):
    clips = KeypointClips(bank, lmap, ViewSettings(seqlen=8, noise=False, flip=False, truncate=0.0))
    s = clips.sample(np.random.default_rng(0))
    kp = s["keypoints"].numpy()
    assert kp.shape == (8, 33, 3) and set(np.unique(kp[..., 2])) <= {0.0, 1.0}
    assert kp[..., 2].mean() > 0.95  # nobody leaves the frame without truncation
    assert np.abs(kp[..., :2]).max() < 1.0  # the crop (1.3 x the 1.1 x box) holds every landmark
    # the hips' landmarks lie between the hip joints' 2D positions and the body's centre in the crop
    hips = kp[:, [23, 24], :2].mean(1)
    joints_hips = s["kp_2d"].numpy()[:, [27, 28], :2].mean(1)
    assert np.abs(hips - joints_hips).max() < 0.15
    # invisible landmarks carry no position
    noisy = KeypointClips(bank, lmap, ViewSettings(seqlen=8)).sample(np.random.default_rng(1))["keypoints"]
    assert torch.all(noisy[..., :2][noisy[..., 2] == 0] == 0)


def test_a_few_training_steps_lower_the_loss(bank, lmap):
    from maed.models import build_model
    from maed.train.losses import MAEDLoss

    torch.manual_seed(0)
    overrides = ["MODEL.ENCODER.EMBED_DIM=64", "MODEL.ENCODER.NUM_BLOCKS=2", "MODEL.ENCODER.NUM_HEADS=2",
                 "MODEL.DECODER.HIDDEN_DIM=128"]  # fmt: skip
    model = build_model("kp_anny", overrides=overrides)
    loss_fn = MAEDLoss.from_config(__import__("maed.config", fromlist=["load_config"]).load_config("kp_anny").LOSS)
    clips = KeypointClips(bank, lmap, ViewSettings(seqlen=8))
    batch = [clips.sample(np.random.default_rng(i), i) for i in range(6)]
    batch = {k: torch.stack([b[k] for b in batch]) for k in batch[0]}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        out = model(batch["keypoints"])
        loss = loss_fn.video(dict(out.items()), None, batch).total
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_anny_joints_only_and_posed_points_match_the_full_forward():
    from maed.synth.bodies import build_kit
    from maed.synth.motion import euler_rotmat

    body = build_kit("anny", "cmu_mb").body
    J = body.num_joints
    R = torch.as_tensor(euler_rotmat(np.random.default_rng(2).normal(size=(6, J, 3)) * 0.4), dtype=torch.float32)
    betas = torch.as_tensor(np.random.default_rng(3).uniform(-0.5, 0.5, (6, 6)), dtype=torch.float32)
    with torch.no_grad():
        full = body(R, betas)
        assert (full.joints - body.joints_only(R, betas)).abs().max() < 1e-4  # metres: 0.1 mm
        ids = torch.tensor([0, 4321, 13000])
        weights = torch.zeros(3, body.num_vertices)
        weights[torch.arange(3), ids] = 1.0
        one_shape = body(R, betas[:1].expand(6, -1))
        points, joints = body.posed_points(R, betas[0], weights)
        assert (points - one_shape.verts[:, ids]).abs().max() < 1e-5
        assert (joints - one_shape.joints).abs().max() < 1e-4


def test_training_without_vertices_builds_joints_only():
    from maed.models import build_model

    model = build_model("kp_anny", overrides=["MODEL.ENCODER.NUM_BLOCKS=1", "MODEL.DECODER.HIDDEN_DIM=64"])
    x = torch.zeros(1, 2, 33, 3)
    model.train()
    out = model(x)
    assert out["verts"].shape[-2] == 0 and out["kp_3d"].shape == (1, 2, 49, 3)
    model.eval()
    with torch.no_grad():
        assert model(x)["verts"].shape[-2] == model.body_model.num_vertices


def test_the_keypoint_validator_scores_every_clip_frame_by_frame(bank, lmap):
    from maed.models import build_model
    from maed.train.distributed import DistEnv
    from maed.train.validation import KeypointValidator

    clips = KeypointClips(bank, lmap, ViewSettings(seqlen=8, flip=False), length=5)
    model = build_model("kp_anny", overrides=["MODEL.ENCODER.NUM_BLOCKS=1", "MODEL.DECODER.HIDDEN_DIM=64"])
    metrics = KeypointValidator(clips, DistEnv(), batch_size=2)(model)
    assert metrics["num_frames"] == 5 * 8
    assert 0 < metrics["pa-mpjpe"] < metrics["mpjpe"] and metrics["pve"] is None
    # the same clips every call (clip i from seed i): validation numbers compare across epochs
    assert KeypointValidator(clips, DistEnv(), batch_size=3)(model)["pa-mpjpe"] == pytest.approx(metrics["pa-mpjpe"])


def test_the_shipped_map_carries_the_networks_own_errors_by_track(lmap):
    """The residual pool: BlazePose's landmark minus the fitted point on train-split renders, in box sides,
    frame by frame along tracks; mostly small, sometimes large (what a Gaussian at the RMS spread misses)."""
    res, seen, track = lmap.residuals, lmap.residual_seen, lmap.residual_track
    assert res.shape[1:] == (33, 2) and seen.shape == res.shape[:2] and track.shape == res.shape[:1]
    assert (np.diff(track) >= 0).all()  # a track's rows are consecutive
    err = np.linalg.norm(res, axis=-1)[seen]
    assert 0.005 < np.median(err) < 0.04 and np.percentile(err, 99) > 3 * np.median(err)
    assert lmap.info["split"] == "train"  # validation and test renders were not used


def test_training_landmarks_err_by_a_window_of_the_pool(bank, lmap):
    """With the pool, a sample's landmarks are the exact projections moved by pool rows (possibly mirrored)
    times the box side; a window's rows are consecutive frames of one track."""
    exact = KeypointClips(bank, lmap, ViewSettings(seqlen=8, flip=False))
    exact.view.noise = False
    noisy = KeypointClips(bank, lmap, ViewSettings(seqlen=8, flip=False))
    for i in range(3):
        a, b = exact.sample(np.random.default_rng(i)), noisy.sample(np.random.default_rng(i))
        both = (a["keypoints"][..., 2] > 0) & (b["keypoints"][..., 2] > 0)
        # the difference in crop units, times the crop's half side over the box side (1.3 / 2), is a pool row
        diff = ((b["keypoints"] - a["keypoints"])[..., :2] * 0.65).numpy()
        assert both.any()
        rows = noisy.pool_starts
        pool = lmap.residuals
        mirrored = pool[:, noisy.perm_lm] * np.array([-1.0, 1.0])
        for t in range(8):
            m = both[t].numpy()
            d = diff[t][m]
            best = min(np.abs(p[:, m] - d).max(axis=(1, 2)).min() for p in (pool, mirrored))
            assert best < 1e-3, (i, t, best)  # the same camera and box: only the pool row differs
        assert rows is not None and len(rows) > 100
    # windows are consecutive rows of one track
    r, _ = noisy._residual_window(np.random.default_rng(5), 8)
    starts = [s for s in noisy.pool_starts if np.allclose(lmap.residuals[s : s + 8], r, atol=1e-6)]
    flipped = r[:, noisy.perm_lm] * np.array([-1.0, 1.0])
    starts += [s for s in noisy.pool_starts if np.allclose(lmap.residuals[s : s + 8], flipped, atol=1e-6)]
    assert starts and all(len(set(lmap.residual_track[s : s + 8])) == 1 for s in starts)


def test_targets_are_seen_by_a_camera_looking_through_the_box_centre(bank, lmap):
    """virtual_camera: the 3D targets are turned by the smallest rotation that takes the ray through the box
    centre onto the optical axis; the body is the same (only turned), and its picture in that camera (the 2D
    targets) is the crop's picture up to a small homography."""
    from maed.synth.keypoint_data import _towards_axis

    rays = np.random.default_rng(0).normal(size=(6, 2)) * 0.4
    R = _towards_axis(rays)
    d = np.concatenate([rays, np.ones((6, 1))], 1)
    np.testing.assert_allclose(np.einsum("tij,tj->ti", R, d / np.linalg.norm(d, axis=1, keepdims=True)),
                               np.tile([0.0, 0.0, 1.0], (6, 1)), atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.tile(np.eye(3), (6, 1, 1)), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0)

    view = dict(seqlen=8, noise=False, flip=False, truncate=0.0)
    plain = KeypointClips(bank, lmap, ViewSettings(**view, virtual_camera=False))
    turned = KeypointClips(bank, lmap, ViewSettings(**view, virtual_camera=True))
    moved = []
    for i in range(6):
        a, b = plain.sample(np.random.default_rng(i)), turned.sample(np.random.default_rng(i))
        ca = a["kp_3d"].numpy()[..., :3] - a["kp_3d"].numpy()[:, 27:29, :3].mean(1, keepdims=True)
        cb = b["kp_3d"].numpy()[..., :3] - b["kp_3d"].numpy()[:, 27:29, :3].mean(1, keepdims=True)
        np.testing.assert_allclose(np.linalg.norm(ca, axis=-1), np.linalg.norm(cb, axis=-1), atol=1e-4)
        moved.append(np.abs(ca - cb).max())
        shift = np.abs(a["kp_2d"].numpy()[..., :2] - b["kp_2d"].numpy()[..., :2])
        assert shift.mean() < 0.03 and shift.max() < 0.2  # crop units: the homography of wide, close views
    assert max(moved) > 0.005  # the bodies were turned (by up to half the field of view)


def test_the_box_ends_where_the_body_leaves_the_frame():
    """A detector's box covers the part of the person inside the frame: where a limb leaves it, the box ends at
    the frame's edge near the crossing, and a foot far below and off to the side does not widen it at the
    bottom (clipping each coordinate to the frame did: x 639)."""
    from maed.synth.keypoint_data import _visible_extent

    inside = [[300.0, 100.0], [340.0, 300.0], [280.0, 460.0], [320.0, 200.0]]
    lo, hi = _visible_extent(np.array([inside]), 640, 480)  # all inside: the plain extent
    np.testing.assert_allclose(np.concatenate([lo, hi], 1), [[280.0, 100.0, 340.0, 460.0]])
    lo, hi = _visible_extent(np.array([inside + [[310.0, 900.0]]]), 640, 480)  # a foot straight below
    np.testing.assert_allclose(np.concatenate([lo, hi], 1), [[280.0, 100.0, 340.0, 479.0]], atol=1e-9)
    lo, hi = _visible_extent(np.array([inside + [[700.0, 1500.0]]]), 640, 480)  # far below, off to the side
    assert hi[0, 1] == pytest.approx(479.0) and 340.0 < hi[0, 0] < 400.0  # leaves the bottom near x 377
    lo, hi = _visible_extent(np.array([[[-50.0, -20.0], [700.0, 900.0]]]), 640, 480)  # nobody inside: the frame
    assert (lo >= 0).all() and (hi <= [639.0, 479.0]).all()


def test_close_up_views_fill_the_box_with_the_upper_body(bank, lmap):
    """close_up: portraits, as webcams and half-body photographs show people: the face is seen at the top of the
    box, the frame's bottom cuts across the body (the landmarks seen reach the box's lower part), the ankles
    are unseen and their targets lie below the crop. Without close-ups the whole body is in view."""

    def views(close_up):
        view = ViewSettings(seqlen=8, noise=False, flip=False, truncate=0.0, close_up=close_up)
        clips = KeypointClips(bank, lmap, view)
        return [clips.sample(np.random.default_rng(i)) for i in range(10)]

    ankles = [25, 30]  # in the 49-joint layout; BlazePose's ankle landmarks are 27 and 28
    close = views(1.0)
    for s in close:
        kp = s["keypoints"].numpy()
        seen = kp[..., 2] > 0
        assert seen[:, :11].all()  # the face
        assert np.where(seen, kp[..., 1], 9.0).min(1).mean() < -0.25  # the head near the top of the box
        assert np.where(seen, kp[..., 1], -9.0).max(1).mean() > 0.3  # ... what is seen fills it downwards
    cut = [(s["keypoints"].numpy()[:, 27:29, 2] == 0).all() and (s["kp_2d"].numpy()[:, ankles, 1] > 1).all()
           for s in close]  # fmt: skip
    assert sum(cut) >= 7
    whole = views(0.0)
    assert sum((s["keypoints"].numpy()[..., 2] > 0).mean() > 0.95 for s in whole) >= 8
    assert sum((s["keypoints"].numpy()[:, 27:29, 2] == 0).all() for s in whole) <= 1
