import numpy as np
import pytest
import torch

from maed.body import ancestors, build_body_model, pose_layout
from maed.body.anny_joints import ANNY_BONES, ANNY_MISSING_JOINTS
from maed.body.geometry import axis_angle_to_rotmat
from maed.body.joints import J49_TO_J14, JOINT_IDS, JOINT_NAMES, mirror_permutation
from maed.errors import ConfigError

# Each rig's first build takes one to two minutes on two cores (cached under ~/.cache/anny after).
slow = pytest.mark.slow
RIGS = ("anny", "cmu_mb")


@pytest.fixture(scope="module", params=RIGS)
def anny_rig(request):
    return build_body_model("anny", rig=request.param)


@pytest.fixture(scope="module")
def anny_body():
    return build_body_model("anny")


def _rest(body, batch=1):
    J = body.num_joints
    return body(torch.eye(3).expand(batch, J, 3, 3), torch.zeros(batch, body.num_betas))


@slow
def test_anny_interface(anny_body):
    b = anny_body
    assert b.name == "anny" and b.rig == "anny" and b.num_joints == len(b.parents) == 104
    assert b.num_output_joints == 49 and b.joint_mask.shape == (49,) and b.joint_mask.dtype == torch.bool
    assert b.parents[0] == -1 and all(0 <= p < j for j, p in enumerate(b.parents) if j > 0)
    assert b.num_betas == 6 and b.phenotype_labels[:2] == ["gender", "age"]
    assert b.faces.dtype == torch.int64 and b.faces.shape[1] == 3 and int(b.faces.max()) == b.num_vertices - 1
    chains = ancestors(b.parents)  # the KTD decoder gets one regressor per bone
    assert len(chains) == 104 and chains[b.bone_labels.index("head")][0] == 0


@slow
def test_anny_forward_is_finite_metric_and_smpl_oriented(anny_body):
    b = anny_body
    out = _rest(b, batch=2)
    assert out.verts.shape == (2, b.num_vertices, 3) and out.joints.shape == (2, 49, 3)
    assert out.bone_heads.shape == (2, 104, 3) and out["bone_heads"] is out.bone_heads
    assert torch.isfinite(out.verts).all() and torch.isfinite(out.joints).all()
    height = out.verts[0, :, 1].max() - out.verts[0, :, 1].min()
    assert 1.4 < height < 2.0  # metres, y up
    torch.testing.assert_close(out.bone_heads[0, 0], torch.zeros(3))  # root (pelvis) at the origin
    head, toe = b.bone_labels.index("head"), b.bone_labels.index("toe1-1.L")
    assert out.bone_heads[0, head, 1] > 0.4 and out.bone_heads[0, toe, 2] > 0.05  # head up, toes towards +z
    assert out.bone_heads[0, b.bone_labels.index("upperleg01.L"), 0] > 0  # the body's left on +x


@slow
def test_anny_rotations_are_world_aligned_about_bone_heads(anny_body):
    b = anny_body
    rest = _rest(b)
    R = torch.eye(3).repeat(1, 104, 1, 1)
    Rz = axis_angle_to_rotmat(torch.tensor([0.0, 0.0, 0.7]))
    arm = b.bone_labels.index("upperarm01.L")
    R[0, arm] = Rz
    posed = b(R, torch.zeros(1, 6))
    below = [j for j, chain in enumerate(ancestors(b.parents)) if arm in chain]
    head = rest.bone_heads[0, arm]
    expected = (rest.bone_heads[0, below] - head) @ Rz.T + head
    torch.testing.assert_close(posed.bone_heads[0, below], expected, atol=1e-5, rtol=0)
    others = [j for j in range(104) if j not in below]
    torch.testing.assert_close(posed.bone_heads[0, others], rest.bone_heads[0, others])
    wrist = JOINT_IDS["Left Wrist"]  # the output joints follow the bones
    torch.testing.assert_close(posed.joints[0, wrist], (rest.joints[0, wrist] - head) @ Rz.T + head, atol=1e-5, rtol=0)


@slow
def test_anny_betas_change_shape(anny_body):
    b = anny_body
    R = torch.eye(3).expand(2, 104, 3, 3)
    betas = torch.zeros(2, 6)
    betas[1, b.phenotype_labels.index("height")] = 0.5  # the tallest
    out = b(R, betas)
    heights = out.verts[..., 1].amax(1) - out.verts[..., 1].amin(1)
    assert heights[1] > heights[0] + 0.05


@slow
def test_rig_tables_match_anny(anny_rig):
    """The tables the data pipeline reads without building a model are the rigs' real bones."""
    assert list(ANNY_BONES[anny_rig.rig]) == anny_rig.bone_labels
    layout = pose_layout("anny", anny_rig.rig)
    assert layout.num_joints == anny_rig.num_joints and layout.num_betas == anny_rig.num_betas


@slow
def test_mapped_joints_sit_where_their_names_say(anny_rig):
    """Rest pose, y up, facing +z, the body's left on +x: every one of the 49 joints where its name says."""
    out = _rest(anny_rig)
    j = {name: out.joints[0, i].numpy() for i, name in enumerate(JOINT_NAMES)}
    mask = anny_rig.joint_mask.numpy()
    assert [n for n, m in zip(JOINT_NAMES, mask) if not m] == list(ANNY_MISSING_JOINTS) == ["Jaw (H36M)"]
    assert mask[J49_TO_J14].all() and mask[[27, 28]].all()  # the 14 LSP joints and the hips exist
    for side, sign in (("Left", 1.0), ("Right", -1.0)):
        for part in ("Hip", "Knee", "Ankle", "Shoulder", "Elbow", "Wrist", "Eye", "Ear"):
            assert sign * j[f"{side} {part}"][0] > 0.02, f"{side} {part} on the wrong side"
        op = "OP L" if side == "Left" else "OP R"
        for part in ("BigToe", "SmallToe", "Heel", "Hip", "Knee", "Ankle", "Shoulder", "Elbow", "Wrist"):
            assert sign * j[f"{op}{part}"][0] > 0.02, f"{op}{part} on the wrong side"
        np.testing.assert_allclose(j[f"{op}Ankle"], j[f"{side} Ankle"])  # OpenPose and LSP agree
        assert j[f"{op}BigToe"][2] > j[f"{op}Ankle"][2] > j[f"{op}Heel"][2]  # toes in front, heel behind
        assert j[f"{op}BigToe"][1] < j[f"{side} Ankle"][1] - 0.03
        assert j[f"{side} Knee"][1] < j[f"{side} Hip"][1] - 0.3 and j[f"{side} Ankle"][1] < j[f"{side} Knee"][1] - 0.3
        assert j[f"{side} Elbow"][1] < j[f"{side} Shoulder"][1] and j[f"{side} Wrist"][1] < j[f"{side} Elbow"][1]
        assert abs(j[f"{side} Wrist"][0]) > abs(j[f"{side} Shoulder"][0])  # rest is an A-pose
    for left, right in (("Left Hip", "Right Hip"), ("Left Wrist", "Right Wrist"), ("Left Ear", "Right Ear")):
        np.testing.assert_allclose(j[left] * [-1, 1, 1], j[right], atol=0.01)  # a symmetric rest body
    chain = ["Top of Head (LSP)", "Left Eye", "Nose", "Neck (LSP)", "OP Neck", "Spine (H36M)", "Pelvis (MPII)"]
    heights = [j[n][1] for n in chain]
    assert heights == sorted(heights, reverse=True), dict(zip(chain, heights))
    assert j["Pelvis (MPII)"][1] > j["Left Knee"][1] + 0.3
    assert j["Nose"][2] > j["Head (H36M)"][2] + 0.05 and j["Left Eye"][2] > j["Left Ear"][2]  # the face looks +z
    verts = out.verts[0].numpy()
    assert j["Top of Head (LSP)"][1] > verts[:, 1].max() - 0.01  # the crown
    for name, m in zip(JOINT_NAMES, mask):  # every joint inside or on the body
        if m:
            assert np.linalg.norm(verts - j[name], axis=1).min() < 0.12, name


@slow
def test_flipped_pose_drives_a_mirrored_body(anny_rig):
    """The data pipeline's flip (the rig's left/right permutation, y and z negated) mirrors the body."""
    from maed.data.transforms import flip_pose

    layout = pose_layout("anny", anny_rig.rig)
    perm = layout.flip_permutation
    rng = np.random.default_rng(0)
    pose = (rng.normal(size=(2, layout.pose_dim)) * 0.25).astype(np.float32)
    rot = axis_angle_to_rotmat(torch.from_numpy(pose).reshape(2, -1, 3))
    rot_f = axis_angle_to_rotmat(torch.from_numpy(flip_pose(pose, perm)).reshape(2, -1, 3))
    betas = torch.zeros(2, layout.num_betas)
    joints, joints_f = anny_rig(rot, betas).joints.numpy(), anny_rig(rot_f, betas).joints.numpy()
    mirrored = joints[:, mirror_permutation(JOINT_NAMES)] * np.array([-1.0, 1.0, 1.0])
    assert np.abs(joints_f - mirrored).max() < 0.015  # rest-pose asymmetry only
    assert np.abs(joints_f - joints).max() > 0.1


def test_pose_layouts_come_from_tables_without_building_a_model():
    smpl, cmu, default = pose_layout("smpl"), pose_layout("anny", "cmu_mb"), pose_layout("anny")
    assert (smpl.num_joints, smpl.num_betas, smpl.theta_dim) == (24, 10, 85)
    assert (cmu.num_joints, cmu.pose_dim, cmu.theta_dim) == (31, 93, 3 + 93 + 6)
    assert default.rig == "anny" and default.num_joints == 104
    names = cmu.joint_names
    pairs = {names[i]: names[p] for i, p in enumerate(cmu.flip_permutation)}
    assert pairs["LeftArm"] == "RightArm" and pairs["RThumb"] == "LThumb" and pairs["LHipJoint"] == "RHipJoint"
    assert pairs["LowerBack"] == "LowerBack" and pairs["Hips"] == "Hips"
    pairs = {default.joint_names[i]: default.joint_names[p] for i, p in enumerate(default.flip_permutation)}
    assert pairs["upperarm01.L"] == "upperarm01.R" and pairs["toe4-2.R"] == "toe4-2.L" and pairs["root"] == "root"
    from maed.data.keypoints import SMPL_FLIP_PERM

    assert smpl.flip_permutation == SMPL_FLIP_PERM  # SMPL's flip is unchanged
    with pytest.raises(ConfigError, match="BODY_RIG='t_pose'"):
        pose_layout("anny", "t_pose")
    with pytest.raises(ConfigError, match="SMPL has one rig"):
        build_body_model("smpl", rig="cmu_mb")
