"""Rotations, Procrustes alignment and weak-perspective cameras (ORIGINAL.md §1.5, 1.7, 7, 8).

All functions are batched torch functions unless stated; shapes are in the docstrings.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

FOCAL_LENGTH = 5000.0
CROP_SIZE = 224.0


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """6D rotation representation -> rotation matrix (Zhou et al. 2019), the original MAED convention.

    x: B x 6 (any shape whose element count is a multiple of 6 is read as -1 x 6).
    Each 6-vector is read as a 3 x 2 matrix in row-major order, so the two raw columns are
    elements (0, 2, 4) and (1, 3, 5). Returns B x 3 x 3 with columns (b1, b2, b1 x b2).
    """
    x = x.reshape(-1, 3, 2)
    b1 = F.normalize(x[:, :, 0], dim=1, eps=1e-6)
    dot = torch.sum(b1 * x[:, :, 1], dim=1, keepdim=True)
    b2 = F.normalize(x[:, :, 1] - dot * b1, dim=-1, eps=1e-6)
    b3 = torch.cross(b1, b2, dim=1)
    return torch.stack([b1, b2, b3], dim=-1)


def rotmat_to_6d(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ... x 3 x 3 -> ... x 6, the inverse of ``rot6d_to_rotmat`` for rotations.

    Keeps the first two columns in the row-major 3 x 2 layout: (R00, R01, R10, R11, R20, R21).
    """
    return R[..., :, :2].reshape(*R.shape[:-2], 6)


def rotmat_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ... x 3 x 3 -> unit quaternion ... x 4 as (w, x, y, z) with w >= 0.

    Uses the branch with the largest pivot (Shepperd), so it is accurate for every angle, and never
    takes the square root of a negative number.
    """
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    # 4w^2, 4x^2, 4y^2, 4z^2 for a proper rotation
    t = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1)
    candidates = torch.stack(
        [
            torch.stack([t[..., 0], m21 - m12, m02 - m20, m10 - m01], dim=-1),
            torch.stack([m21 - m12, t[..., 1], m10 + m01, m02 + m20], dim=-1),
            torch.stack([m02 - m20, m10 + m01, t[..., 2], m21 + m12], dim=-1),
            torch.stack([m10 - m01, m02 + m20, m21 + m12, t[..., 3]], dim=-1),
        ],
        dim=-2,
    )  # (..., 4 branches, 4)
    best = t.argmax(dim=-1, keepdim=True)  # (..., 1)
    q = torch.gather(candidates, -2, best[..., None].expand(*best.shape, 4)).squeeze(-2)
    q = q / (2.0 * torch.sqrt(torch.gather(t, -1, best).clamp_min(1e-12)))
    q = F.normalize(q, dim=-1, eps=1e-12)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternion ... x 4 (w, x, y, z) -> axis-angle ... x 3 (radians), angle in [0, pi].

    Finite values and gradients everywhere, including the identity.
    """
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., 0], q[..., 1:]
    sin_half = torch.sqrt((v * v).sum(dim=-1) + 1e-20)
    angle = 2.0 * torch.atan2(sin_half, w)
    small = sin_half < 1e-6
    # angle / sin(angle / 2) -> 2 / w as the angle goes to 0
    factor = torch.where(small, 2.0 / w.clamp_min(1e-6), angle / torch.where(small, 1.0, sin_half))
    return v * factor[..., None]


def rotmat_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ... x 3 x 3 -> axis-angle ... x 3 (radians, angle in [0, pi]).

    Goes through a quaternion like the original (kornia's matrix -> quaternion -> axis-angle), so it
    agrees with it wherever the original is well defined, but is stable near 0 and pi and never NaN.
    At exactly pi the sign of the axis is arbitrary (both represent the same rotation). Half-precision
    input is computed in float32 and returned in its own dtype.
    """
    return quaternion_to_axis_angle(rotmat_to_quaternion(_at_least_float32(R))).to(R.dtype)


def axis_angle_to_rotmat(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: axis-angle ... x 3 (radians) -> rotation matrix ... x 3 x 3.

    Uses series expansions for tiny angles, so it is exact to float precision and differentiable at 0.
    Half-precision input is computed in float32 and returned in its own dtype.
    """
    in_dtype, aa = aa.dtype, _at_least_float32(aa)
    theta2 = (aa * aa).sum(dim=-1, keepdim=True)[..., None]  # (..., 1, 1)
    theta = torch.sqrt(theta2 + 1e-20)
    small = theta2 < 1e-8
    safe_theta = torch.where(small, torch.ones_like(theta), theta)
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(safe_theta) / safe_theta)  # sin(t) / t
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(safe_theta)) / safe_theta**2)  # (1-cos t)/t^2
    x, y, z = aa[..., 0], aa[..., 1], aa[..., 2]
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*aa.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(K)
    return (eye + a * K + b * (K @ K)).to(in_dtype)


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def quat_to_rotmat(quat: torch.Tensor) -> torch.Tensor:
    """Quaternion N x 4 (w, x, y, z), normalised here -> rotation matrix N x 3 x 3."""
    q = quat / quat.norm(p=2, dim=1, keepdim=True)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    w2, x2, y2, z2 = w.pow(2), x.pow(2), y.pow(2), z.pow(2)
    wx, wy, wz = w * x, w * y, w * z
    xy, xz, yz = x * y, x * z, y * z
    R = torch.stack(
        [
            w2 + x2 - y2 - z2,
            2 * xy - 2 * wz,
            2 * wy + 2 * xz,
            2 * wz + 2 * xy,
            w2 - x2 + y2 - z2,
            2 * yz - 2 * wx,
            2 * xz - 2 * wy,
            2 * wx + 2 * yz,
            w2 - x2 - y2 + z2,
        ],
        dim=1,
    )
    return R.reshape(-1, 3, 3)


def batch_rodrigues(axisang: torch.Tensor) -> torch.Tensor:
    """The original loss's axis-angle -> rotation matrix (HMR's quaternion route), reproduced exactly.

    axisang: N x 3 -> N x 3 x 3 (the original returned N x 9; reshape if needed). The 1e-8 added before
    the norm keeps a zero vector finite, at the price of a tiny bias for small angles.
    """
    angle = torch.norm(axisang + 1e-8, p=2, dim=1).unsqueeze(-1)
    axis = axisang / angle
    half = angle * 0.5
    quat = torch.cat([torch.cos(half), torch.sin(half) * axis], dim=1)
    return quat_to_rotmat(quat)


def similarity_procrustes(S1: torch.Tensor, S2: torch.Tensor) -> torch.Tensor:
    """Align S1 to S2 with the best similarity transform (scale, rotation, translation) per batch item.

    S1, S2: B x K x 3. Returns S1 aligned, B x K x 3. Same algorithm as the original's
    ``batch_compute_similarity_transform_torch`` (SVD of the cross-covariance, reflection fixed through the
    determinant, scale = trace(R K) / var(S1)), without its quirk of not transposing when B == 3.
    """
    X1 = S1.transpose(1, 2)  # (B, 3, K)
    X2 = S2.transpose(1, 2)
    mu1 = X1.mean(dim=-1, keepdim=True)
    mu2 = X2.mean(dim=-1, keepdim=True)
    X1c, X2c = X1 - mu1, X2 - mu2
    var1 = (X1c**2).sum(dim=(1, 2))  # (B,)
    K = X1c @ X2c.transpose(1, 2)  # (B, 3, 3)
    U, _, Vh = torch.linalg.svd(K)
    V = Vh.transpose(1, 2)
    Z = torch.eye(3, dtype=S1.dtype, device=S1.device).repeat(S1.shape[0], 1, 1)
    Z[:, -1, -1] = torch.sign(torch.linalg.det(U @ Vh))
    R = V @ Z @ U.transpose(1, 2)
    scale = torch.diagonal(R @ K, dim1=-2, dim2=-1).sum(-1) / var1  # (B,)
    t = mu2 - scale[:, None, None] * (R @ mu1)
    aligned = scale[:, None, None] * (R @ X1) + t
    return aligned.transpose(1, 2)


def weak_perspective_projection(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """Project 3D points with the crop camera (ORIGINAL.md §1.7).

    points: B x K x 3 metres; cam: B x 3 = (s, tx, ty). The camera sits at depth 2 * 5000 / (224 s + 1e-9)
    with focal length 5000 and principal point 0, so the result, divided by 112, is in [-1, 1] of the 224
    crop (approximately s * (X + tx)). Returns B x K x 2. No clamp on s, as in the original.
    """
    cam_t = torch.stack([cam[:, 1], cam[:, 2], 2 * FOCAL_LENGTH / (CROP_SIZE * cam[:, 0] + 1e-9)], dim=-1)
    p = points + cam_t[:, None, :]
    projected = p / p[:, :, -1:]
    return FOCAL_LENGTH * projected[:, :, :2] / (CROP_SIZE / 2.0)


def convert_crop_cam_to_orig_img(cam, bbox, img_width: float, img_height: float):
    """Crop camera -> camera of the whole frame (ORIGINAL.md §8), numpy or torch.

    cam: N x 3 = (s, tx, ty) of the square crop; bbox: N x 4 (or N x 3) = (cx, cy, w, h) pixels of the
    square box the crop was cut from (column 2, the box side, is used for both axes as in the original).
    Returns N x 4 = (sx, sy, tx, ty) for a weak-perspective renderer over the img_width x img_height frame.
    """
    cx, cy, side = bbox[:, 0], bbox[:, 1], bbox[:, 2]
    hw, hh = img_width / 2.0, img_height / 2.0
    sx = cam[:, 0] * side / img_width
    sy = cam[:, 0] * side / img_height
    tx = (cx - hw) / hw / sx + cam[:, 1]
    ty = (cy - hh) / hh / sy + cam[:, 2]
    if isinstance(cam, torch.Tensor):
        return torch.stack([sx, sy, tx, ty], dim=-1)
    return np.stack([sx, sy, tx, ty], axis=-1)
