"""Augmentations: flips, the affine crop, rotation consistency, colour jitter, erase, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maed.data.transforms import (
    IMAGENET_MEAN,
    ClipAugmentation,
    ClipParams,
    adjust_color,
    apply_affine_2d,
    build_transforms,
    crop_affine,
    flip_keypoints_2d,
    flip_keypoints_3d,
    flip_smpl_pose,
)

SMPL_NAMES = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
]  # fmt: skip
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


def _smpl_mirror() -> list[int]:
    def other(n):
        if n.startswith("left_"):
            return "right_" + n[5:]
        if n.startswith("right_"):
            return "left_" + n[6:]
        return n

    return [SMPL_NAMES.index(other(n)) for n in SMPL_NAMES]


def _clip(rng, T=3, size=(300, 400)):
    h, w = size
    frames = [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for _ in range(T)]
    kp_2d = np.concatenate([rng.uniform(100, 200, size=(T, 49, 2)), np.ones((T, 49, 1))], axis=-1)
    kp_3d = np.concatenate([rng.normal(size=(T, 49, 3)), np.ones((T, 49, 1))], axis=-1)
    return {
        "frames": frames,
        "bbox": np.tile([200.0, 150.0, 120.0, 120.0], (T, 1)),
        "kp_2d": kp_2d,
        "kp_3d": kp_3d,
        "pose": rng.normal(scale=0.5, size=(T, 72)),
    }


def test_flip_twice_is_identity():
    rng = np.random.default_rng(0)
    kp_2d = rng.uniform(0, 223, size=(4, 49, 3))
    kp_3d = rng.normal(size=(4, 49, 4))
    pose = rng.normal(size=(4, 72))
    np.testing.assert_allclose(flip_keypoints_2d(flip_keypoints_2d(kp_2d, 224), 224), kp_2d, atol=1e-4)
    np.testing.assert_allclose(flip_keypoints_3d(flip_keypoints_3d(kp_3d)), kp_3d, atol=1e-5)
    np.testing.assert_allclose(flip_smpl_pose(flip_smpl_pose(pose)), pose, atol=1e-6)
    # and once is not the identity
    assert np.abs(flip_smpl_pose(pose) - pose).max() > 0.1
    assert np.abs(flip_keypoints_3d(kp_3d) - kp_3d).max() > 0.1

    aug = ClipAugmentation(normalize=False)
    clip = _clip(rng)
    once = aug(clip, params=ClipParams(flip=True))
    back = aug(
        {
            "frames": list(once["images"]),
            "bbox": None,
            "kp_2d": once["kp_2d"],
            "kp_3d": once["kp_3d"],
            "pose": once["pose"],
        },
        params=ClipParams(flip=True),
    )
    plain = aug(clip, params=ClipParams(flip=False))
    np.testing.assert_array_equal(back["images"], plain["images"])
    np.testing.assert_allclose(back["kp_2d"], plain["kp_2d"], atol=1e-4)
    np.testing.assert_allclose(back["kp_3d"], plain["kp_3d"], atol=1e-5)
    np.testing.assert_allclose(back["pose"], plain["pose"], atol=1e-6)
    np.testing.assert_array_equal(once["images"], plain["images"][:, :, ::-1])


def test_flip_all_24_joints_including_23():
    pose = np.zeros(72)
    pose[23 * 3 : 24 * 3] = [0.1, 0.2, 0.3]  # right hand
    flipped = flip_smpl_pose(pose).reshape(24, 3)
    np.testing.assert_allclose(flipped[22], [0.1, -0.2, -0.3], atol=1e-7)  # left hand gets it
    np.testing.assert_allclose(flipped[23], 0.0, atol=1e-7)


def test_flip_2d_swaps_sides_and_mirrors_x():
    kp = np.zeros((49, 3))
    kp[27] = [10.0, 50.0, 1.0]  # right hip (GT)
    kp[28] = [30.0, 60.0, 0.5]  # left hip
    out = flip_keypoints_2d(kp, 224)
    np.testing.assert_allclose(out[28], [223 - 10.0, 50.0, 1.0])
    np.testing.assert_allclose(out[27], [223 - 30.0, 60.0, 0.5])


def _write_symmetric_smpl(path, seed=0):
    """A left-right symmetric SMPL-format model (npz): mirrored vertex pairs, mirrored skinning."""
    rng = np.random.default_rng(seed)
    mirror = _smpl_mirror()
    rest = np.zeros((24, 3))
    for j, (name, p) in enumerate(zip(SMPL_NAMES, SMPL_PARENTS)):
        if p < 0:
            continue
        side = 1.0 if name.startswith("left_") else -1.0 if name.startswith("right_") else 0.0
        rest[j] = rest[p] + [side * rng.uniform(0.05, 0.2), rng.uniform(-0.4, 0.4), rng.uniform(-0.05, 0.05)]
    for j in range(24):  # make the right side the exact mirror of the left
        if SMPL_NAMES[j].startswith("right_"):
            rest[j] = rest[mirror[j]] * [-1, 1, 1]
    half = 3445
    owner = rng.integers(0, 24, size=half)
    offsets = rng.normal(scale=0.03, size=(half, 3))
    centre = np.array([not (n.startswith("left_") or n.startswith("right_")) for n in SMPL_NAMES])
    offsets[centre[owner], 0] = np.abs(offsets[centre[owner], 0])  # centre vertices off the plane
    owner_all = np.concatenate([owner, np.array(mirror)[owner]])
    verts = np.concatenate([rest[owner] + offsets, rest[np.array(mirror)[owner]] + offsets * [-1, 1, 1]])
    V = 2 * half
    weights = np.zeros((V, 24))
    weights[np.arange(V), owner_all] = 0.7
    parents = np.array([max(p, 0) for p in SMPL_PARENTS])
    weights[np.arange(V), parents[owner_all]] += 0.3
    regressor = np.zeros((24, V))
    for j in range(24):
        regressor[j, owner_all == j] = 1.0
        regressor[j] /= max(regressor[j].sum(), 1.0)
    kintree = np.stack([np.array(SMPL_PARENTS), np.arange(24)]).astype(np.int64)
    kintree[0, 0] = 4294967295
    path.mkdir(parents=True, exist_ok=True)
    np.savez(
        path / "SMPL_NEUTRAL.npz",
        v_template=verts,
        shapedirs=np.zeros((V, 3, 10)),
        posedirs=np.zeros((V, 3, 207)),
        J_regressor=regressor,
        weights=weights,
        kintree_table=kintree,
        f=np.stack([np.arange(100), np.arange(100) + 1, np.arange(100) + 2], 1).astype(np.uint32),
    )
    np.save(path / "J_regressor_extra.npy", np.full((9, V), 1.0 / V))
    vertex_mirror = np.concatenate([np.arange(half) + half, np.arange(half)])
    return vertex_mirror


def test_flipped_pose_on_symmetric_body_gives_mirrored_mesh(tmp_path):
    from maed.body import build_body_model

    vertex_mirror = _write_symmetric_smpl(tmp_path / "sym")
    body = build_body_model("smpl", model_dir=tmp_path / "sym")
    rng = np.random.default_rng(1)
    pose = rng.normal(scale=0.4, size=(2, 72)).astype(np.float32)
    betas = torch.zeros(2, 10)
    verts = body.forward_axis_angle(torch.from_numpy(pose), betas).verts.numpy()
    verts_f = body.forward_axis_angle(torch.from_numpy(flip_smpl_pose(pose)), betas).verts.numpy()
    mirrored = verts[:, vertex_mirror] * np.array([-1.0, 1.0, 1.0])
    assert np.abs(verts).max() > 0.1
    np.testing.assert_allclose(verts_f, mirrored, atol=2e-5)
    # the original's flip (joints 0-22 only) does not give the mirror image when the hands move
    pose_no23 = flip_smpl_pose(pose).reshape(2, 24, 3)
    pose_no23[:, 23] = pose.reshape(2, 24, 3)[:, 23]
    verts_bug = body.forward_axis_angle(torch.from_numpy(pose_no23.reshape(2, 72)), betas).verts.numpy()
    assert np.abs(verts_bug - mirrored).max() > 1e-3


@pytest.mark.parametrize(
    "rot,scale,shift,flip",
    [(0.0, 1.3, (0.0, 0.0), False), (23.0, 1.1, (0.07, -0.05), False), (-40.0, 0.9, (-0.1, 0.1), True)],
)
def test_keypoints_follow_the_crop_exactly(rot, scale, shift, flip):
    """Draw a blob at a keypoint, crop, and find the blob where the transformed keypoint says."""
    import cv2

    h, w = 480, 640
    aug = ClipAugmentation(normalize=False)
    yy, xx = np.mgrid[0:h, 0:w]
    for kx, ky in [(300.0, 225.0), (322.3, 241.6), (305.5, 215.25)]:
        img = np.exp(-((xx - kx) ** 2 + (yy - ky) ** 2) / (2 * 4.0**2))
        img = np.repeat((img * 255).round().astype(np.uint8)[..., None], 3, axis=2)
        kp = np.zeros((1, 49, 3))
        kp[0, 27] = [kx, ky, 1.0]
        out = aug(
            {"frames": [img], "bbox": np.array([[310.0, 230.0, 150.0, 150.0]]), "kp_2d": kp},
            params=ClipParams(scale=scale, rot=rot, shift=shift, flip=flip),
        )
        crop = out["images"][0, :, :, 0].astype(np.float64)
        m = cv2.moments(crop)
        found = np.array([m["m10"] / m["m00"], m["m01"] / m["m00"]])
        joint = 28 if flip else 27  # the right hip becomes the left hip
        np.testing.assert_allclose(out["kp_2d"][0, joint, :2], found, atol=0.05)


def test_crop_affine_maps_box_to_crop():
    A = crop_affine(np.array([100.0, 50.0, 40.0, 40.0]), scale=1.0, width=224, height=224)
    pts = apply_affine_2d(np.array([[100.0, 50.0], [80.0, 30.0], [120.0, 70.0]]), A)
    np.testing.assert_allclose(pts, [[112, 112], [0, 0], [224, 224]], atol=1e-3)


def test_rotation_keeps_2d_and_3d_consistent():
    """After a rotated crop, the orthographic projection of the 3D joints still matches the 2D joints
    up to scale and translation (the original rotated only the 2D joints)."""
    rng = np.random.default_rng(3)
    kp_3d = np.concatenate([rng.normal(scale=0.3, size=(1, 49, 3)), np.ones((1, 49, 1))], axis=-1)
    kp_2d = np.concatenate([300 + 200 * kp_3d[..., :2], np.ones((1, 49, 1))], axis=-1)
    sample = {
        "frames": [np.zeros((600, 600, 3), np.uint8)],
        "bbox": np.array([[300.0, 300.0, 200.0, 200.0]]),
        "kp_2d": kp_2d,
        "kp_3d": kp_3d,
    }
    out = ClipAugmentation(normalize=False)(sample, params=ClipParams(rot=35.0))

    def residual(p2, p3):
        # best scale + translation from p3's xy to p2 (no rotation)
        a, b = p3 - p3.mean(0), p2 - p2.mean(0)
        s = (a * b).sum() / (a * a).sum()
        return np.abs(b - s * a).max()

    assert residual(out["kp_2d"][0, :, :2], out["kp_3d"][0, :, :2]) < 1e-3
    assert residual(out["kp_2d"][0, :, :2], kp_3d[0, :, :2]) > 1.0  # unrotated 3D would not fit


def test_rotation_turns_global_orientation_like_the_joints(smpl_body):
    rng = np.random.default_rng(4)
    pose = rng.normal(scale=0.3, size=(1, 72)).astype(np.float32)
    sample = {
        "frames": [np.zeros((100, 100, 3), np.uint8)],
        "bbox": np.array([[50.0, 50.0, 50.0, 50.0]]),
        "kp_2d": np.zeros((1, 49, 3)),
        "pose": pose,
    }
    rot = 30.0
    out = ClipAugmentation(normalize=False)(sample, params=ClipParams(rot=rot))
    betas = torch.zeros(1, 10)
    j0 = smpl_body.forward_axis_angle(torch.from_numpy(pose), betas).joints[0].numpy()
    j1 = smpl_body.forward_axis_angle(torch.from_numpy(out["pose"]), betas).joints[0].numpy()
    c, s = np.cos(np.deg2rad(-rot)), np.sin(np.deg2rad(-rot))
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    root = smpl_body.forward_axis_angle(torch.zeros(1, 72), betas).joints[0, 8].numpy()  # OP MidHip = pelvis
    np.testing.assert_allclose(j1 - root, (j0 - root) @ R.T, atol=1e-4)
    np.testing.assert_allclose(out["pose"][0, 3:], pose[0, 3:], atol=1e-6)  # body pose untouched


def test_erase_left_and_right_erase_columns():
    aug = ClipAugmentation(normalize=False)
    frames = [np.full((224, 224, 3), 200, np.uint8)]
    base = {"frames": frames, "bbox": None, "kp_2d": np.zeros((1, 49, 3))}
    for side, expect in [
        ("left", (slice(None), slice(0, 56))),
        ("right", (slice(None), slice(168, 224))),
        ("top", (slice(0, 56), slice(None))),
        ("bottom", (slice(168, 224), slice(None))),
    ]:
        out = aug(base, params=ClipParams(erase_side=side, erase_ratios=(0.25,)))["images"][0]
        mask = np.zeros((224, 224), bool)
        mask[expect] = True
        assert (out[mask] == 0).all(), side
        assert (out[~mask] == 200).all(), side


def test_erase_kp_hides_erased_joints():
    aug = ClipAugmentation(normalize=False, erase_kp=True, erase_margin=0.1)
    kp = np.ones((1, 49, 3))
    kp[0, :, 0] = 200.0
    kp[0, 5, 0] = 10.0  # deep inside a left band of 0.5 x 224 = 112 px
    kp[0, 6, 0] = 100.0  # inside, but within the margin (112 - 100 < 22.4)
    out = aug(
        {"frames": [np.zeros((224, 224, 3), np.uint8)], "bbox": None, "kp_2d": kp},
        params=ClipParams(erase_side="left", erase_ratios=(0.5,)),
    )
    assert out["kp_2d"][0, 5, 2] == 0 and out["kp_2d"][0, 6, 2] == 1 and out["kp_2d"][0, 0, 2] == 1


def test_one_colour_draw_per_clip():
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
    aug = build_transforms("video_3d", color_jitter=0.3, erase_prob=0.0, flip_prob=0.0, normalize=False)
    out = aug({"frames": [frame] * 4, "bbox": None, "kp_2d": np.zeros((4, 49, 3))}, rng=np.random.default_rng(6))
    assert all((out["images"][t] == out["images"][0]).all() for t in range(4))
    assert np.abs(out["images"][0].astype(int) - frame).mean() > 2
    params = aug.draw(4, np.random.default_rng(7))
    assert sorted(name for name, _ in params.color_ops) == ["brightness", "contrast", "hue", "saturation"]


def test_colour_ops_match_their_definitions():
    img = np.array([[[100, 150, 200]]], dtype=np.uint8)[None]  # 1 x 1 x 1 x 3
    np.testing.assert_array_equal(adjust_color(img, (("brightness", 1.2),))[0, 0, 0], [120, 180, 240])
    gray = 100 * 0.299 + 150 * 0.587 + 200 * 0.114
    sat = adjust_color(img, (("saturation", 0.0),))[0, 0, 0]
    np.testing.assert_array_equal(sat, [round(gray)] * 3)
    assert (adjust_color(img, (("hue", 0.0),)) == img).all()
    assert not (adjust_color(img, (("hue", 0.25),)) == img).all()


def test_normalisation_and_keypoint_range():
    mean_px = (np.array(IMAGENET_MEAN) * 255).round().astype(np.uint8)
    frames = [np.broadcast_to(mean_px, (224, 224, 3)).copy()]
    kp = np.zeros((1, 49, 3))
    kp[0, 0] = [0.0, 224.0, 1.0]
    kp[0, 1] = [112.0, 56.0, 1.0]
    out = build_transforms("eval")({"frames": frames, "bbox": None, "kp_2d": kp})
    assert out["images"].shape == (1, 3, 224, 224) and out["images"].dtype == torch.float32
    assert out["images"].abs().max() < 0.01
    np.testing.assert_allclose(out["kp_2d"][0, 0].numpy(), [-1.0, 1.0, 1.0])
    np.testing.assert_allclose(out["kp_2d"][0, 1].numpy(), [0.0, -0.5, 1.0])


def test_eval_pipeline_has_no_randomness():
    rng = np.random.default_rng(8)
    clip = _clip(rng)
    aug = build_transforms("eval", flip_prob=0.5, color_jitter=0.3, erase_prob=1.0)
    a = aug(clip, rng=np.random.default_rng(1))
    b = aug(clip, rng=np.random.default_rng(2))
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["kp_2d"], b["kp_2d"])


def test_random_crop_draw_ranges():
    aug = ClipAugmentation(random_crop_p=1.0, random_crop_size=0.6)
    rng = np.random.default_rng(9)
    for _ in range(50):
        p = aug.draw(16, rng)
        assert 0.7 <= p.scale <= 1.3
        assert all(abs(s) <= (1.3 - p.scale) / 2 + 1e-12 for s in p.shift)
    p = ClipAugmentation(erase_prob=1.0, erase_part=0.7).draw(16, rng)
    assert len(p.erase_ratios) == 16 and all(0 <= r < 0.7 for r in p.erase_ratios)
