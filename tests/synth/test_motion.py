"""Motion inside the limits, splits, and the test split's held-out backgrounds and shapes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from maed.synth.backgrounds import PATTERNS, PHOTOS, available_sources, source_image
from maed.synth.bodies import HELD_OUT_PHENOTYPES, TRAIN_PHENOTYPES
from maed.synth.generator import split_sequences
from maed.synth.motion import bspline, person_motion


@pytest.mark.parametrize("style", ["walk", "wander"])
def test_every_bone_stays_inside_its_limits(cmu_kit, style):
    """Recover each bone's angles from the rotations the body model gets: all inside the table's limits."""
    kit = cmu_kit
    motion = person_motion(
        np.random.default_rng(5),
        frames=90, fps=30.0, rig=kit.tables, bone_names=list(kit.layout.joint_names), frames_axes=kit.frames_axes,
        limits=kit.limits, neutral=kit.neutral, start_xz=np.zeros(2), heading=0.3, style=style,
    )  # fmt: skip
    F = kit.frames_axes
    local = np.swapaxes(F, -1, -2)[None, 1:] @ motion.rotmats[:, 1:] @ F[None, 1:]  # anatomical frames, no root
    angles = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_euler("XYZ").reshape(90, -1, 3)  # Rx Ry Rz
    lo, hi = kit.limits[None, 1:, :, 0], kit.limits[None, 1:, :, 1]
    assert (angles >= lo - 1e-6).all() and (angles <= hi + 1e-6).all()
    moving = (kit.limits[1:, :, 1] - kit.limits[1:, :, 0]) > 0
    assert (np.ptp(angles, axis=0)[moving] > 1e-3).mean() > 0.9  # and they do move
    steps = np.linalg.norm(np.diff(motion.ground_xz, axis=0), axis=1) * 30.0  # metres per second
    assert steps.max() < 2.0 and (steps.mean() > 0.4 if style == "walk" else steps.mean() < 0.4)
    assert np.abs(np.diff(angles, axis=0)).max() < np.deg2rad(20)  # smooth: at most a fast knee (600 deg/s)


def test_walkers_face_where_they_go(cmu_kit):
    """The nose points along the walking direction (the body faces +z at heading 0)."""
    import torch

    from maed.body.joints import JOINT_IDS

    kit = cmu_kit
    for seed, heading in ((1, 0.0), (2, 2.0), (3, -2.5)):
        motion = person_motion(
            np.random.default_rng(seed),
            frames=30, fps=30.0, rig=kit.tables, bone_names=list(kit.layout.joint_names), frames_axes=kit.frames_axes,
            limits=kit.limits, neutral=kit.neutral, start_xz=np.zeros(2), heading=heading, style="walk",
        )  # fmt: skip
        with torch.no_grad():
            joints = kit.body(torch.as_tensor(motion.rotmats, dtype=torch.float32), torch.zeros(30, 6)).joints.numpy()
        facing = (joints[:, JOINT_IDS["Nose"]] - joints[:, JOINT_IDS["Head (H36M)"]])[:, [0, 2]]
        velocity = np.gradient(motion.ground_xz, axis=0)
        cosine = (facing * velocity).sum(1) / np.linalg.norm(facing, axis=1) / np.linalg.norm(velocity, axis=1)
        assert np.median(cosine) > 0.7, (seed, heading)


def test_bspline_stays_in_the_hull_of_its_keyframes():
    rng = np.random.default_rng(0)
    keys = rng.uniform(-1, 1, size=(12, 5))
    curve = bspline(keys, frames=60, spacing=7.0)
    assert curve.shape == (60, 5) and (curve >= keys.min(0)).all() and (curve <= keys.max(0)).all()
    assert np.abs(np.diff(curve, 2, axis=0)).max() < 0.1  # second differences small: smooth


@pytest.mark.parametrize(
    "count, sizes", [(1, (1, 0, 0)), (2, (1, 0, 1)), (3, (1, 1, 1)), (10, (8, 1, 1)), (200, (160, 20, 20))]
)
def test_splits_are_80_10_10_by_sequence(count, sizes):
    splits = split_sequences(count, seed=0)
    assert tuple(splits.count(s) for s in ("train", "val", "test")) == sizes
    assert splits == split_sequences(count, seed=0) and (count < 10 or splits != split_sequences(count, seed=1))


def test_test_backgrounds_and_shapes_are_never_seen_in_training(cmu_kit):
    train, test = set(available_sources("train")), set(available_sources("test"))
    assert train and test and not train & test
    assert not set(available_sources("train", floor=True)) & set(available_sources("test", floor=True))
    assert {f"photo:{p}" for p in PHOTOS["test"]} | {f"pattern:{p}" for p in PATTERNS["test"]} == test
    rng = np.random.default_rng(0)
    for source in sorted(train | test):
        image = source_image(source, 64, 48, rng)
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8 and image.std() > 1.0
    labels = cmu_kit.phenotype_labels

    def inside_training(phenotype):
        return all(lo <= phenotype[labels.index(k)] <= hi for k, ((lo, hi),) in TRAIN_PHENOTYPES.items())

    train_people = [cmu_kit.sample_shape(rng, "train") + 0.5 for _ in range(300)]
    test_people = [cmu_kit.sample_shape(rng, "test") + 0.5 for _ in range(300)]
    assert all(inside_training(p) for p in train_people)
    assert not any(inside_training(p) for p in test_people)  # every test body is outside the training box
    held = [labels.index(k) for k in HELD_OUT_PHENOTYPES]
    assert all(0.0 <= p[i] <= 1.0 for p in test_people for i in held)
