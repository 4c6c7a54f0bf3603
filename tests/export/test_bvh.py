"""BVH files read back with bvhio: the raw channels (offsets, Euler keys) and bvhio's own evaluation of the
hierarchy (world joint positions), against what was written and the body models' joints."""

import numpy as np
import pytest
import torch

from maed.errors import ConfigError, DataError
from maed.export.bvh import euler_angles, write_bvh
from maed.export.rig import CAMERA_TO_FILE, animation_tracks, rig_from_body_model

bvhio = pytest.importorskip("bvhio")
glm = pytest.importorskip("glm")

T, FPS = 3, 24.0


def _quat_matrix(q) -> np.ndarray:
    w, x, y, z = q.w, q.x, q.y, q.z
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


def _raw_joints(path) -> dict:
    """name -> bvhio's BvhJoint (offset, channels, per-frame Pose from the file's Euler channels)."""
    container = bvhio.readAsBvh(str(path))
    return container, {joint.Name: joint for joint, _, _ in container.Root.layout()}


@pytest.fixture(scope="module")
def written(anny_body, anny_cmu_body, smpl_lbs_body, random_rotmats, camera_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("bvh")
    rng = np.random.default_rng(7)
    cases = {}
    for key, body, order in [("anny", anny_body, "ZYX"), ("cmu", anny_cmu_body, "XYZ"), ("smpl", smpl_lbs_body, "ZYX")]:
        betas = rng.uniform(-0.3, 0.3, size=body.num_betas)
        rig = rig_from_body_model(body, betas)
        R = random_rotmats(T, rig.num_joints, scale=0.5, seed=len(cases))
        R[:, 0] = camera_root(T, seed=len(cases))
        trans = rng.normal(scale=0.3, size=(T, 3)) + np.array([0.0, 0.0, 4.0])
        path = out / f"{key}.bvh"
        write_bvh(path, rig, R, trans, FPS, order=order)
        cases[key] = dict(body=body, betas=betas, rig=rig, rotmats=R, trans=trans, order=order, path=path)
    return cases


@pytest.mark.parametrize("key", ["anny", "cmu", "smpl"])
def test_bvh_channels_read_back_to_the_written_rotations_and_offsets(written, key, rotation_angle):
    c = written[key]
    rig, path = c["rig"], c["path"]
    container, joints = _raw_joints(path)
    assert container.FrameCount == T and container.FrameTime == pytest.approx(1 / FPS, abs=1e-8)
    assert list(joints) == [rig.joint_names[j] for j in _depth_first_order(rig.parents)]
    rot_file, root_file = animation_tracks(rig, c["rotmats"], c["trans"], FPS, "camera", writer="test")
    offsets = rig.joint_offsets() * 100.0  # centimetres
    channels = [f"{axis}rotation" for axis in c["order"]]
    for j, name in enumerate(rig.joint_names):
        joint = joints[name]
        assert joint.Channels == (["Xposition", "Yposition", "Zposition"] if j == 0 else []) + channels
        offset = np.zeros(3) if j == 0 else offsets[j]
        np.testing.assert_allclose(np.array(joint.Offset), offset, atol=2e-5)  # float32 glm.vec3
        read = np.stack([_quat_matrix(pose.Rotation) for pose in joint.Keyframes])
        assert len(read) == T
        assert rotation_angle(read, rot_file[:, j]).max() < 1e-3, name
    root_read = np.array([list(pose.Position) for pose in joints[rig.joint_names[0]].Keyframes])
    np.testing.assert_allclose(root_read, root_file * 100.0, atol=1e-3)


@pytest.mark.parametrize("key", ["anny", "cmu", "smpl"])
def test_bvh_hierarchy_evaluated_by_bvhio_follows_the_body_model(written, key):
    """bvhio's own reading of the whole file (rest pose from the offsets, then each frame's channels) puts every
    joint where the rig's forward kinematics does; for Anny these are the body model's own joints."""
    c = written[key]
    rig = c["rig"]
    root = bvhio.readAsHierarchy(str(c["path"]))
    rest = {j.Name: np.array(j.PositionWorld) for j, _, _ in root.layout()}
    offsets = rig.joint_offsets() * 100.0
    for j in range(1, rig.num_joints):  # rest pose: each joint at its parent plus its offset
        parent = rig.joint_names[rig.parents[j]]
        np.testing.assert_allclose(rest[rig.joint_names[j]] - rest[parent], offsets[j], atol=1e-3)
    rot_file, root_file = animation_tracks(rig, c["rotmats"], c["trans"], FPS, "camera", writer="test")
    _, expected = rig.forward_kinematics(rot_file, root_file - rig.joint_offsets()[0])
    if key != "smpl":  # Anny's bone heads are the rig's joints: compare with the body model itself
        body = c["body"]
        out = body(
            torch.as_tensor(c["rotmats"], dtype=torch.float32),
            torch.as_tensor(c["betas"], dtype=torch.float32).expand(T, -1),
        )
        from_body = (out.bone_heads.double().numpy() + c["trans"][:, None]) @ CAMERA_TO_FILE.T
        np.testing.assert_allclose(expected, from_body, atol=5e-5)
    for t in range(T):
        root.loadPose(t)
        got = {j.Name: np.array(j.PositionWorld) for j, _, _ in root.layout()}
        got = np.stack([got[name] for name in rig.joint_names]) / 100.0
        assert np.abs(got - expected[t]).max() < 1e-4  # metres


def test_euler_angles_are_continuous_through_full_turns_and_gimbal_lock():
    from scipy.spatial.transform import Rotation

    frames = 60
    s = np.linspace(0, 1, frames)
    yaw = 4 * np.pi * s  # two full turns
    pitch = np.pi / 2 * np.sin(2 * np.pi * s) * 0.999  # up to gimbal lock and back
    roll = 0.3 * np.cos(6 * np.pi * s)
    R = Rotation.from_euler("ZYX", np.stack([yaw, pitch, roll], 1)).as_matrix()[:, None]  # (T, 1, 3, 3)
    for order in ("ZYX", "XYZ", "YXZ"):
        e = euler_angles(R, order)
        back = Rotation.from_euler(order, e[:, 0]).as_matrix()
        np.testing.assert_allclose(back, R[:, 0], atol=1e-9)
        steps = np.abs(np.diff(e[:, 0], axis=0)).max()
        assert steps < 0.6, (order, steps)  # the true motion moves < 0.25 rad per frame on each axis
    np.testing.assert_allclose(euler_angles(R, "ZYX")[-1, 0, 0], 4 * np.pi, atol=1e-6)  # unwrapped, not 0


def test_bvh_bad_options(smpl_lbs_body, random_rotmats, tmp_path):
    rig = rig_from_body_model(smpl_lbs_body)
    R = random_rotmats(2, 24)
    with pytest.raises(ConfigError, match="permutation of 'XYZ'"):
        write_bvh(tmp_path / "a.bvh", rig, R, order="ZZY")
    with pytest.raises(ConfigError, match="scale must be a positive"):
        write_bvh(tmp_path / "a.bvh", rig, R, scale=0)
    with pytest.raises(DataError, match="root_trans has shape"):
        write_bvh(tmp_path / "a.bvh", rig, R, np.zeros(3))
    assert not (tmp_path / "a.bvh").exists()
    write_bvh(tmp_path / "m.bvh", rig, R, None, 30, scale=1.0, frame="model")  # metres, as given
    _, joints = _raw_joints(tmp_path / "m.bvh")
    np.testing.assert_allclose(np.array(joints["left_hip"].Offset), rig.joint_offsets()[1], atol=1e-6)


def _depth_first_order(parents: list[int]) -> list[int]:
    children = [[c for c in range(len(parents)) if parents[c] == j] for j in range(len(parents))]
    order, stack = [], [0]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children[j]))
    return order
