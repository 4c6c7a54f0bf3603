import pytest
import torch

from maed.body import ancestors, build_body_model
from maed.body.geometry import axis_angle_to_rotmat

# The first build of Anny's data takes about two minutes on two cores (cached under ~/.cache/anny after).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def anny_body():
    return build_body_model("anny")


def test_anny_interface(anny_body):
    b = anny_body
    assert b.name == "anny" and b.num_joints == len(b.parents) == b.num_output_joints == 104
    assert b.parents[0] == -1 and all(0 <= p < j for j, p in enumerate(b.parents) if j > 0)
    assert b.num_betas == 6 and b.phenotype_labels[:2] == ["gender", "age"]
    assert b.faces.dtype == torch.int64 and b.faces.shape[1] == 3 and int(b.faces.max()) == b.num_vertices - 1
    chains = ancestors(b.parents)  # the KTD decoder gets one regressor per bone
    assert len(chains) == 104 and chains[b.bone_labels.index("head")][0] == 0


def test_anny_forward_is_finite_metric_and_smpl_oriented(anny_body):
    b = anny_body
    out = b(torch.eye(3).expand(2, 104, 3, 3), torch.zeros(2, 6))
    assert out.verts.shape == (2, b.num_vertices, 3) and out.joints.shape == (2, 104, 3)
    assert torch.isfinite(out.verts).all() and torch.isfinite(out.joints).all()
    height = out.verts[0, :, 1].max() - out.verts[0, :, 1].min()
    assert 1.4 < height < 2.0  # metres, y up
    torch.testing.assert_close(out.joints[0, 0], torch.zeros(3))  # root (pelvis) at the origin
    head, toe = b.bone_labels.index("head"), b.bone_labels.index("toe1-1.L")
    assert out.joints[0, head, 1] > 0.4 and out.joints[0, toe, 2] > 0.05  # head up, toes towards +z
    assert out.joints[0, b.bone_labels.index("upperleg01.L"), 0] > 0  # the body's left on +x


def test_anny_rotations_are_world_aligned_about_bone_heads(anny_body):
    b = anny_body
    rest = b(torch.eye(3).expand(1, 104, 3, 3), torch.zeros(1, 6))
    R = torch.eye(3).repeat(1, 104, 1, 1)
    Rz = axis_angle_to_rotmat(torch.tensor([0.0, 0.0, 0.7]))
    arm = b.bone_labels.index("upperarm01.L")
    R[0, arm] = Rz
    posed = b(R, torch.zeros(1, 6))
    below = [j for j, chain in enumerate(ancestors(b.parents)) if arm in chain]
    head = rest.joints[0, arm]
    torch.testing.assert_close(posed.joints[0, below], (rest.joints[0, below] - head) @ Rz.T + head, atol=1e-5, rtol=0)
    others = [j for j in range(104) if j not in below]
    torch.testing.assert_close(posed.joints[0, others], rest.joints[0, others])


def test_anny_betas_change_shape(anny_body):
    b = anny_body
    R = torch.eye(3).expand(2, 104, 3, 3)
    betas = torch.zeros(2, 6)
    betas[1, b.phenotype_labels.index("height")] = 0.5  # the tallest
    out = b(R, betas)
    heights = out.verts[..., 1].amax(1) - out.verts[..., 1].amin(1)
    assert heights[1] > heights[0] + 0.05
