import numpy as np
import pytest
import torch

from maed.body import ancestors
from maed.errors import ConfigError, DataError, MaedError
from maed.export.rig import CAMERA_TO_FILE, Rig, animation_tracks, rig_from_body_model

BETAS = np.array([0.3, -0.2, 0.25, -0.3, 0.2, 0.1])  # Anny phenotype offsets, all away from the average


def _body_vertices(body, rotmats, betas):
    dtype = torch.float32
    b = torch.as_tensor(np.asarray(betas), dtype=dtype).expand(len(rotmats), -1)
    out = body(torch.as_tensor(rotmats, dtype=dtype), b)
    joints = getattr(out, "bone_heads", out.joints)  # Anny: the rig's joints are its bone heads
    return out.verts.double().numpy(), joints.double().numpy()


@pytest.mark.parametrize("which", ["anny_body", "anny_cmu_body"])
def test_anny_rig_skinning_reproduces_anny_forward(which, request, random_rotmats):
    body = request.getfixturevalue(which)
    rig = rig_from_body_model(body, BETAS)
    assert rig.num_joints == body.num_joints and rig.num_vertices == body.num_vertices
    assert rig.joint_names == body.bone_labels and rig.parents == body.parents
    R = random_rotmats(3, rig.num_joints, scale=0.4, seed=1)
    verts, joints = _body_vertices(body, R, BETAS)
    assert np.abs(rig.skin(R) - verts).max() < 2e-5  # metres; float32 body model
    assert np.abs(rig.forward_kinematics(R)[1] - joints).max() < 2e-5
    # the zero pose is the body model's identity pose, with the root's head at the origin
    zero = np.tile(np.eye(3), (1, rig.num_joints, 1, 1))
    zero_verts, zero_joints = _body_vertices(body, zero, BETAS)
    assert np.abs(rig.skin(zero) - zero_verts).max() < 2e-5
    np.testing.assert_allclose(rig.joint_offsets()[0], 0.0, atol=1e-6)


def test_default_anny_rig_needs_bind_rotations_and_cmu_rig_does_not(anny_body, anny_cmu_body):
    # Anny's default rig has reference bone orientations: its mesh is stored in a rest pose that differs from
    # the zero pose AnnyBody returns for identity rotations, so the bind matrices carry a rotation
    default = rig_from_body_model(anny_body)
    assert np.abs(default.bind_rotations - np.eye(3)).max() > 0.05
    zero = np.tile(np.eye(3), (1, default.num_joints, 1, 1))
    assert np.abs(default.skin(zero)[0] - default.rest_verts).max() > 0.01  # zero pose != stored mesh
    cmu = rig_from_body_model(anny_cmu_body)
    assert np.abs(cmu.bind_rotations - np.eye(3)).max() < 1e-5


def test_anny_bone_rotations_compose_parent_relative(anny_body, random_rotmats):
    """AnnyBody's per-bone rotations (anny's local-ref) are parent-relative: a child's world rotation is its
    parent's times its own. Turning a bone by Ra and its child by Ra^T leaves the child's subtree exactly as
    in the zero pose relative to the child's head; were rotations absolute, the subtree would turn by Ra^T."""
    body = anny_body
    parent, child = body.bone_labels.index("upperarm01.L"), body.bone_labels.index("lowerarm01.L")
    assert parent in ancestors(body.parents)[child]
    Ra = random_rotmats(1, 1, scale=0.8, seed=3)[0, 0]
    R = np.tile(np.eye(3), (1, body.num_joints, 1, 1))
    R[0, parent], R[0, child] = Ra, Ra.T
    zero = np.tile(np.eye(3), (1, body.num_joints, 1, 1))
    _, posed = _body_vertices(body, R, np.zeros(6))
    _, rest = _body_vertices(body, zero, np.zeros(6))
    below = [j for j, chain in enumerate(ancestors(body.parents)) if child in chain]
    assert len(below) > 10  # forearm, wrist, fingers
    relative_posed = posed[0, below] - posed[0, child]
    relative_rest = rest[0, below] - rest[0, child]
    np.testing.assert_allclose(relative_posed, relative_rest, atol=2e-5)
    assert np.abs(relative_posed - relative_rest @ Ra).max() > 0.05  # the absolute reading is far off


def test_smpl_rig_matches_smplx_without_pose_blend_shapes(smpl_lbs_body, random_rotmats):
    body = smpl_lbs_body
    betas = np.random.default_rng(0).normal(size=10)
    rig = rig_from_body_model(body, torch.as_tensor(betas))
    assert rig.joint_names[:3] == ["pelvis", "left_hip", "right_hip"] and rig.parents == body.parents
    assert np.array_equal(rig.bind_rotations, np.tile(np.eye(3), (24, 1, 1)))
    R = random_rotmats(2, 24, scale=0.5, seed=2)
    verts, _ = _body_vertices(body, R, betas)
    assert np.abs(rig.skin(R) - verts).max() < 1e-5
    # the stand-in skins each vertex to at most two joints, so four weights are exact
    assert np.abs(rig.skin(R, max_influences=4) - verts).max() < 1e-5


def test_top_weights_keep_the_four_largest_renormalised(anny_body):
    rig = rig_from_body_model(anny_body)
    idx, w = rig.top_weights(4)
    assert idx.shape == w.shape == (rig.num_vertices, 4)
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-12)
    assert (np.diff(w, axis=1) <= 0).all() and idx.min() >= 0 and idx.max() < rig.num_joints
    influences = (rig.skin_weights > 0).sum(1)
    assert influences.max() > 4  # Anny's default rig has up to nine: the truncation is real
    kept = np.take_along_axis(rig.skin_weights, idx, axis=1)
    fourth_largest = -np.sort(-rig.skin_weights, axis=1)[:, 3]
    assert (kept[:, 3] == fourth_largest).all()
    np.testing.assert_allclose(w, kept / kept.sum(1, keepdims=True))


def test_four_weight_truncation_error_on_anny(anny_body, random_rotmats):
    """What keeping four weights (glTF's JOINTS_0 / WEIGHTS_0) costs on Anny's default rig, every bone bent by
    about 0.3 rad about a random axis. Measured: mean 0.2 mm, 99th percentile 4.6 mm, max 2.5 cm (torso and
    shoulder vertices, which blend up to nine bones)."""
    rig = rig_from_body_model(anny_body)
    R = random_rotmats(8, rig.num_joints, scale=0.3, seed=1)
    err = np.linalg.norm(rig.skin(R, max_influences=4) - rig.skin(R), axis=-1)
    assert err.mean() < 1e-3 and np.percentile(err, 99) < 1e-2 and err.max() < 4e-2
    assert err.max() > 1e-4  # it is not exact, so the GLB test's tolerance is needed


def test_camera_frame_turns_the_whole_sequence_upright(anny_body, random_rotmats, camera_root):
    body = anny_body
    rig = rig_from_body_model(body)
    T = 2
    R = random_rotmats(T, rig.num_joints, scale=0.2, seed=4)
    R[:, 0] = camera_root(T)
    trans = np.array([[0.1, 0.2, 4.0], [0.15, 0.1, 5.0]])  # in front of the camera, y down
    rot_file, root_file = animation_tracks(rig, R, trans, 30.0, "camera", writer="test")
    assert np.array_equal(rot_file[:, 1:], R[:, 1:])  # only the root changes
    verts, joints = _body_vertices(body, R, np.zeros(6))
    ours = rig.skin(rot_file, root_file - rig.joint_offsets()[0])
    np.testing.assert_allclose(ours, (verts + trans[:, None]) @ CAMERA_TO_FILE.T, atol=2e-5)
    head, root = body.bone_labels.index("head"), 0
    assert (joints[:, head, 1] < joints[:, root, 1]).all()  # camera frame: y down, the head is above
    file_joints = rig.forward_kinematics(rot_file, root_file - rig.joint_offsets()[0])[1]
    assert (file_joints[:, head, 1] > file_joints[:, root, 1] + 0.3).all()  # file: y up, head up
    assert (file_joints[:, root, 2] < -3.0).all()  # in front of a glTF camera at the origin (looks down -z)
    same, _ = animation_tracks(rig, R, trans, 30.0, "model", writer="test")
    assert np.array_equal(same, R)


def test_bad_sequences_raise_one_clear_error(smpl_lbs_body, random_rotmats):
    rig = rig_from_body_model(smpl_lbs_body)
    R = random_rotmats(3, 24)
    cases = [
        (R[:, :20], DataError, "expected T x 24 x 3 x 3"),
        (np.zeros((0, 24, 3, 3)), DataError, "T >= 1"),
        (R * 2.0, DataError, "not all rotation matrices"),
        (np.where(np.arange(3)[:, None, None, None] == 1, np.nan, R), DataError, "non-finite"),
        ("abc", DataError, "numeric"),
    ]
    for rotmats, kind, text in cases:
        with pytest.raises(kind, match=text):
            animation_tracks(rig, rotmats, None, 30.0, "camera", writer="w")
    with pytest.raises(DataError, match="root_trans has shape"):
        animation_tracks(rig, R, np.zeros((2, 3)), 30.0, "camera", writer="w")
    with pytest.raises(ConfigError, match="fps"):
        animation_tracks(rig, R, None, 0.0, "camera", writer="w")
    with pytest.raises(ConfigError, match="frame 'world'"):
        animation_tracks(rig, R, None, 30.0, "world", writer="w")


def test_rig_from_body_model_checks_its_inputs(smpl_lbs_body):
    with pytest.raises(DataError, match="expected 10 finite values"):
        rig_from_body_model(smpl_lbs_body, np.zeros(6))

    class Other:
        name, num_betas = "star", 10

    with pytest.raises(ConfigError, match="'star' is not supported"):
        rig_from_body_model(Other())
    assert issubclass(DataError, MaedError)


def test_rig_rejects_inconsistent_arrays():
    good = dict(
        joint_names=["a", "b"],
        parents=[-1, 0],
        rest_joints=np.zeros((2, 3)),
        rest_verts=np.zeros((3, 3)),
        faces=np.array([[0, 1, 2]]),
        skin_weights=np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]),
    )
    Rig(**good)
    for key, value, text in [
        ("parents", [0, -1], "root first"),
        ("skin_weights", np.ones((3, 2)), "summing to 1"),
        ("faces", np.array([[0, 1, 3]]), "out of range"),
        ("rest_joints", np.zeros((3, 3)), "rest_joints"),
        ("joint_names", ["a", "a"], "unique"),
    ]:
        with pytest.raises(ValueError, match=text):
            Rig(**{**good, key: value})
