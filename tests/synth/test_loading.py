"""Synthetic databases load through the normal data pipeline, generalised from SMPL to any rig."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maed.body import pose_layout
from maed.body.geometry import axis_angle_to_rotmat
from maed.data.database import load_database, validate_database
from maed.data.datasets import ImageDataset, VideoDataset
from maed.data.transforms import build_transforms, flip_keypoints_3d, flip_pose
from maed.errors import DataError

CMU = pose_layout("anny", "cmu_mb")


def test_eval_clips_carry_the_rig_wide_theta(synth_run):
    out, _ = synth_run
    db = load_database(out / "synth_train_db.pt")
    ds = VideoDataset(
        out / "synth_train_db.pt", dataset_root=out, seqlen=None, sample_pool=4, overlap=0.0, is_train=False,
        pose_layout=CMU,
    )  # fmt: skip
    assert len(ds) == len(np.unique(db["vid_name"]))  # one 4-frame window per person
    s = ds[0]
    assert s["images"].shape == (4, 3, 224, 224) and s["theta"].shape == (4, 3 + 93 + 6)
    assert s["kp_2d"].shape == (4, 49, 3) and s["kp_3d"].shape == (4, 49, 4) and s["valid"].all()
    np.testing.assert_allclose(s["theta"][:, 3:96].numpy(), db["pose"][:4], atol=1e-6)
    np.testing.assert_allclose(s["theta"][:, 96:].numpy(), db["shape"][:4])
    assert s["instance_id"][0] == "seq_0000_p0/0" and s["paths"][0].endswith("frames/seq_0000/000000.jpg")
    assert s["kp_2d"][..., :2].abs().max() < 1.5  # the crop is centred on the person
    img = ImageDataset(out / "synth_test_db.pt", dataset_root=out, is_train=False, pose_layout=CMU)
    assert img[0]["theta"].shape == (102,) and img[0]["images"].shape == (3, 224, 224)


def test_training_flip_mirrors_pose_and_joints_consistently(synth_run, cmu_kit):
    """With the flip always on, the flipped pose drives the body onto the flipped 3D joints."""
    out, _ = synth_run
    transforms = build_transforms("video_3d", flip_prob=1.0, rot_jitter=0.0, color_jitter=0.2)
    ds = VideoDataset(
        out / "synth_train_db.pt", dataset_root=out, seqlen=4, sample_pool=4, transforms=transforms, pose_layout=CMU
    )
    assert ds.transforms.pose_flip_perm == tuple(CMU.flip_permutation) and transforms.pose_flip_perm is None
    db = load_database(out / "synth_train_db.pt")
    s = ds[0]
    np.testing.assert_allclose(s["theta"][:, 3:96].numpy(), flip_pose(db["pose"][:4], CMU.flip_permutation), atol=1e-6)
    np.testing.assert_allclose(s["kp_3d"].numpy(), flip_keypoints_3d(db["joints3D"][:4]), atol=1e-6)
    rot = axis_angle_to_rotmat(s["theta"][:, 3:96].reshape(4, 31, 3))
    with torch.no_grad():
        joints = cmu_kit.body(rot, s["theta"][:, 96:]).joints
    pelvis = lambda j: j - 0.5 * (j[:, 27:28] + j[:, 28:29])  # noqa: E731
    mask = cmu_kit.joint_mask
    error = (pelvis(joints) - pelvis(s["kp_3d"][..., :3]))[:, mask].norm(dim=-1)
    assert error.max() < 0.02  # metres; rest-pose asymmetry only


def test_crop_cache_option_builds_the_caches_the_datasets_use(synth_run, run_args, tmp_path):
    """--crop-cache on a finished run (nothing to render again) builds each database's crop cache."""
    import shutil

    from maed.data.crop_cache import default_crop_cache_dir
    from maed.synth.generator import generate

    out = tmp_path / "run"
    shutil.copytree(synth_run[0], out)
    summary = generate(out, **run_args, workers=1, crop_cache=True, crop_cache_size=96, progress=False)
    assert summary.rendered == 0 and sorted(summary.crop_caches) == ["test", "train"]
    db_path = out / "synth_test_db.pt"
    assert summary.crop_caches["test"] == default_crop_cache_dir(db_path)
    kwargs = dict(dataset_root=out, seqlen=None, sample_pool=4, overlap=0.0, is_train=False, pose_layout=CMU)
    full = VideoDataset(db_path, **kwargs)[0]
    cached_ds = VideoDataset(db_path, crop_cache_dir=default_crop_cache_dir(db_path), **kwargs)
    assert cached_ds.uses_crop_cache
    cached = cached_ds[0]
    torch.testing.assert_close(cached["kp_2d"], full["kp_2d"], atol=1e-4, rtol=0)
    assert (cached["images"] - full["images"]).abs().mean() < 0.2


def test_a_run_with_another_body_model_is_refused_with_the_fix(synth_run):
    out, _ = synth_run
    with pytest.raises(DataError, match=r"31 joints per row but the body model of this run, smpl, has 24.*BODY_RIG"):
        VideoDataset(out / "synth_train_db.pt", dataset_root=out, seqlen=4, sample_pool=4)  # SMPL by default
    with pytest.raises(DataError, match=r"104"):
        VideoDataset(
            out / "synth_train_db.pt", dataset_root=out, seqlen=4, sample_pool=4, pose_layout=pose_layout("anny")
        )


def test_database_fields_accept_any_rig_but_stay_checked():
    n = 3
    db = {
        "img_name": np.array(["a"] * n),
        "pose": np.zeros((n, 93)),
        "shape": np.zeros((n, 6)),
        "trans": np.zeros((n, 3)),
    }
    assert validate_database(dict(db)) == n
    assert validate_database({**db, "pose": np.zeros((n, 31, 3, 3))}) == n
    for field, value, expected in (
        ("pose", np.zeros((n, 94)), r"'pose' has shape \(3, 94\), expected \(3, 3J\)"),
        ("shape", np.zeros((n, 6, 1)), r"'shape' has shape \(3, 6, 1\), expected \(3, S\)"),
        ("trans", np.zeros((n, 2)), r"'trans' has shape \(3, 2\), expected \(3, 3\)"),
        ("intrinsics", np.zeros((n, 3)), r"'intrinsics' has shape \(3, 3\), expected \(3, 4\)"),
    ):
        with pytest.raises(DataError, match=expected):
            validate_database({**db, field: value})


def test_the_model_and_loaders_take_the_rig_from_the_config(monkeypatch):
    import maed.body.factory
    from maed.body.layout import pose_layout_from_config
    from maed.config import load_config
    from maed.models import build_model

    cfg = load_config("stage2", ["MODEL.BODY_MODEL=anny", "MODEL.BODY_RIG=cmu_mb"])
    assert pose_layout_from_config(cfg) == CMU and pose_layout_from_config(load_config("stage2")).theta_dim == 85
    seen = {}

    def record(name, **kwargs):
        seen.update(name=name, **kwargs)
        raise KeyboardInterrupt  # stop before building the network

    monkeypatch.setattr(maed.body.factory, "build_body_model", record)  # what body_model_from_config calls
    with pytest.raises(KeyboardInterrupt):
        build_model(cfg)
    assert seen["name"] == "anny" and seen["rig"] == "cmu_mb"
