import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from maed.body.base import ancestors
from maed.body.geometry import (
    axis_angle_to_rotmat,
    batch_rodrigues,
    convert_crop_cam_to_orig_img,
    rot6d_to_rotmat,
    rotmat_to_6d,
    rotmat_to_axis_angle,
    similarity_procrustes,
    weak_perspective_projection,
)
from maed.body.joints import SMPL_PARENTS

# KTD's ANCESTOR_INDEX in the original lib/models/ktd.py
ORIGINAL_ANCESTOR_INDEX = [
    [], [0], [0], [0], [0, 1], [0, 2], [0, 3], [0, 1, 4], [0, 2, 5], [0, 3, 6], [0, 1, 4, 7], [0, 2, 5, 8],
    [0, 3, 6, 9], [0, 3, 6, 9], [0, 3, 6, 9], [0, 3, 6, 9, 12], [0, 3, 6, 9, 13], [0, 3, 6, 9, 14],
    [0, 3, 6, 9, 13, 16], [0, 3, 6, 9, 14, 17], [0, 3, 6, 9, 13, 16, 18], [0, 3, 6, 9, 14, 17, 19],
    [0, 3, 6, 9, 13, 16, 18, 20], [0, 3, 6, 9, 14, 17, 19, 21],
]  # fmt: skip


def random_rotations(n, seed=0):
    return torch.from_numpy(Rotation.random(n, random_state=seed).as_matrix())


def test_ancestors_of_smpl_equal_original_ktd_lists():
    assert ancestors(SMPL_PARENTS) == ORIGINAL_ANCESTOR_INDEX
    widths = sorted({1024 + 6 * len(a) for a in ancestors(SMPL_PARENTS)})
    assert widths == [1024, 1030, 1036, 1042, 1048, 1054, 1060, 1066, 1072]


def test_ancestors_rejects_child_before_parent():
    with pytest.raises(ValueError, match="parent"):
        ancestors([-1, 2, 0])


def test_rot6d_layout_is_row_major_3x2():
    # elements (0, 2, 4) form the first column, (1, 3, 5) the second
    x = torch.tensor([[0.0, 1.0, 2.0, 0.0, 0.0, 0.0]])
    R = rot6d_to_rotmat(x)[0]
    expected = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    torch.testing.assert_close(R, expected)
    torch.testing.assert_close(rot6d_to_rotmat(torch.tensor([1.0, 0, 0, 1, 0, 0]))[0], torch.eye(3))


def test_rot6d_matches_reference_gram_schmidt_and_round_trips():
    x = torch.randn(64, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    R = rot6d_to_rotmat(x)
    a1, a2 = x[:, [0, 2, 4]], x[:, [1, 3, 5]]
    b1 = a1 / a1.norm(dim=1, keepdim=True)
    b2 = a2 - (b1 * a2).sum(1, keepdim=True) * b1
    b2 = b2 / b2.norm(dim=1, keepdim=True)
    torch.testing.assert_close(R[:, :, 0], b1)
    torch.testing.assert_close(R[:, :, 1], b2)
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(64, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(64, dtype=torch.float64))
    torch.testing.assert_close(rot6d_to_rotmat(rotmat_to_6d(R)), R)


def test_axis_angle_round_trip_generic_small_and_near_pi():
    rng = np.random.default_rng(0)
    axes = rng.normal(size=(8, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.array([0.0, 1e-9, 1e-5, 0.3, 2.0, math.pi - 1e-4, math.pi - 1e-7, math.pi])
    aa = torch.from_numpy(axes * angles[:, None])
    R = axis_angle_to_rotmat(aa)
    torch.testing.assert_close(R, torch.from_numpy(Rotation.from_rotvec(aa.numpy()).as_matrix()))
    back = rotmat_to_axis_angle(R)
    assert torch.isfinite(back).all()
    torch.testing.assert_close(axis_angle_to_rotmat(back), R, atol=1e-7, rtol=0)
    # away from pi the axis-angle itself comes back (at pi, -aa is the same rotation)
    torch.testing.assert_close(back[:5], aa[:5], atol=1e-9, rtol=0)
    torch.testing.assert_close(back[:, :].norm(dim=1), aa.norm(dim=1), atol=1e-6, rtol=0)


def test_rotmat_to_axis_angle_matches_scipy_in_float32_without_nan():
    R = random_rotations(500, seed=1).float()
    aa = rotmat_to_axis_angle(R)
    ref = torch.from_numpy(Rotation.from_matrix(R.double().numpy()).as_rotvec()).float()
    torch.testing.assert_close(aa, ref, atol=2e-5, rtol=0)
    flips = torch.diag_embed(torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, 1]]))
    out = rotmat_to_axis_angle(flips)
    torch.testing.assert_close(out.norm(dim=1), torch.tensor([math.pi, math.pi, math.pi, 0.0]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype):
    R = random_rotations(50, seed=6).float()
    aa = rotmat_to_axis_angle(R.to(dtype))
    assert aa.dtype == dtype and torch.isfinite(aa).all()
    torch.testing.assert_close(aa.float(), rotmat_to_axis_angle(R), atol=2e-2, rtol=0)
    identity = axis_angle_to_rotmat(torch.zeros(2, 3, dtype=dtype))
    assert identity.dtype == dtype and torch.equal(identity.float(), torch.eye(3).expand(2, 3, 3))


def test_axis_angle_gradients_finite_at_identity():
    aa = torch.zeros(2, 3, requires_grad=True)
    axis_angle_to_rotmat(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()
    R = torch.eye(3).repeat(2, 1, 1).requires_grad_(True)
    rotmat_to_axis_angle(R).sum().backward()
    assert torch.isfinite(R.grad).all()


def test_batch_rodrigues_matches_original_quaternion_route():
    from smplx.lbs import batch_rodrigues as smplx_rodrigues

    aa = torch.randn(100, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(batch_rodrigues(aa), axis_angle_to_rotmat(aa), atol=1e-7, rtol=0)
    torch.testing.assert_close(batch_rodrigues(aa), smplx_rodrigues(aa), atol=1e-7, rtol=0)
    assert torch.isfinite(batch_rodrigues(torch.zeros(1, 3))).all()


def test_procrustes_recovers_similarity_exactly():
    g = torch.Generator().manual_seed(3)
    S1 = torch.randn(3, 14, 3, dtype=torch.float64, generator=g)  # B == 3 broke the original's check
    R = random_rotations(3, seed=4)
    scale = torch.tensor([0.5, 1.0, 2.5], dtype=torch.float64)[:, None, None]
    t = torch.randn(3, 1, 3, dtype=torch.float64, generator=g)
    S2 = scale * S1 @ R.transpose(1, 2) + t
    torch.testing.assert_close(similarity_procrustes(S1, S2), S2)


def test_procrustes_never_reflects():
    S1 = torch.randn(2, 20, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    mirrored = S1 * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    aligned = similarity_procrustes(S1, mirrored)
    centred = aligned - aligned.mean(1, keepdim=True)
    src = S1 - S1.mean(1, keepdim=True)
    M = torch.linalg.lstsq(src, centred).solution  # the linear map that was applied
    assert (torch.linalg.det(M) > 0).all()
    assert (aligned - mirrored).abs().max() > 1e-3


def test_weak_perspective_projection_formula():
    points = torch.tensor([[[0.2, -0.1, 0.3], [0.0, 0.0, 0.0]]])
    cam = torch.tensor([[0.9, 0.05, -0.02]])
    depth = 2 * 5000 / (224 * 0.9 + 1e-9)
    x = 5000 * (0.2 + 0.05) / (0.3 + depth) / 112
    y = 5000 * (-0.1 - 0.02) / (0.3 + depth) / 112
    expected = torch.tensor([[[x, y], [0.9 * 0.05, 0.9 * -0.02]]])
    torch.testing.assert_close(weak_perspective_projection(points, cam), expected)


def test_convert_crop_cam_to_orig_img_numpy_and_torch():
    cam = np.array([[1.0, 0.1, -0.2], [0.8, 0.0, 0.0]])
    bbox = np.array([[960.0, 540.0, 1080.0, 1080.0], [1440.0, 270.0, 540.0, 540.0]])
    out = convert_crop_cam_to_orig_img(cam, bbox, img_width=1920, img_height=1080)
    sx, sy = 0.8 * 540 / 1920, 0.8 * 540 / 1080
    expected = np.array([[1080 / 1920, 1.0, 0.1, -0.2], [sx, sy, (1440 - 960) / 960 / sx, (270 - 540) / 540 / sy]])
    np.testing.assert_allclose(out, expected)
    out_t = convert_crop_cam_to_orig_img(torch.from_numpy(cam), torch.from_numpy(bbox), 1920, 1080)
    np.testing.assert_allclose(out_t.numpy(), expected)
