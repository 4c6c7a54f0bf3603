"""The mean-pose baseline: one body for every frame, the average of a training set, evaluated by the same
:class:`~maed.eval.evaluator.Evaluator` as a trained model.

The average pose is the chordal mean of each joint's rotation over the training rows (the rotation nearest
to the arithmetic mean of the rotation matrices), the root orientation included, in the camera frame as
the databases store it; the average shape is the arithmetic mean. :class:`MeanPoseModel` returns that body
for any clip, as a MAED would, so the metrics treat it exactly as they treat a model: joints centred at
the pelvis for MPJPE, Procrustes for PA-MPJPE, root-relative meshes for PVE. Any number it reaches is
what a model gets for knowing nothing but the training distribution's average.

    maed eval --baseline mean-pose --train-db data/synth/synth_train_db.pt --dataset synth --split test \\
              --db-dir data/synth --data-root data/synth --out results/baseline_synth
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from maed.body.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle, weak_perspective_projection
from maed.body.layout import pose_layout
from maed.data.database import load_database
from maed.errors import DataError
from maed.models.maed import MAEDOutput

BASELINES = ("mean-pose",)


def chordal_mean(rotmats: np.ndarray) -> np.ndarray:
    """The chordal L2 mean of rotations: N x ... x 3 x 3 -> ... x 3 x 3, the rotation nearest (in the
    Frobenius norm) to the arithmetic mean of the matrices, by SVD with the determinant kept at +1.

    For rotations about one axis by angles a_i it is the rotation by atan2(mean sin a_i, mean cos a_i).
    """
    mean = np.asarray(rotmats, dtype=np.float64).mean(axis=0)
    U, _, Vt = np.linalg.svd(mean)
    d = np.sign(np.linalg.det(U @ Vt))  # a reflection's sign moves to the smallest singular direction
    U[..., :, -1] *= d[..., None]
    return U @ Vt


def mean_parameters(database: dict, *, num_joints: int, num_betas: int, label: str = "database") -> tuple:
    """(rotmat J x 3 x 3, betas S), float64: the chordal mean rotation of each joint (root first) over the
    database's rows and their mean shape. ``pose`` is n x 3J axis-angle (or n x J x 3 x 3 matrices)."""
    if "pose" not in database or "shape" not in database:
        raise DataError(f"{label}: the mean-pose baseline needs 'pose' and 'shape' fields (a 3D training set)")
    pose = np.asarray(database["pose"], dtype=np.float64)
    rotmats = (
        pose
        if pose.ndim == 4
        else axis_angle_to_rotmat(torch.from_numpy(pose.reshape(len(pose), -1, 3))).numpy()  # (n, J, 3, 3)
    )
    shape = np.asarray(database["shape"], dtype=np.float64)
    if rotmats.shape[1] != num_joints or shape.shape[1] != num_betas:
        raise DataError(
            f"{label}: pose of {rotmats.shape[1]} joints and shape of {shape.shape[1]} values per row, but the body "
            f"model has {num_joints} joints and {num_betas} shape values"
        )
    if len(pose) == 0:
        raise DataError(f"{label}: no rows to average")
    return chordal_mean(rotmats), shape.mean(axis=0)


def training_layout(database: dict, label: str = "database"):
    """The :class:`maed.body.layout.PoseLayout` whose widths the database's ``pose`` and ``shape`` have (SMPL,
    Anny's ``cmu_mb`` or its default rig); ``DataError`` when none fits."""
    if "pose" not in database or "shape" not in database:
        raise DataError(f"{label}: the mean-pose baseline needs 'pose' and 'shape' fields (a 3D training set)")
    pose = np.asarray(database["pose"])
    joints = pose.shape[1] if pose.ndim == 4 else pose.shape[1] // 3
    betas = np.asarray(database["shape"]).shape[1]
    candidates = [pose_layout("smpl"), pose_layout("anny", "cmu_mb"), pose_layout("anny", "anny")]
    for layout in candidates:
        if (layout.num_joints, layout.num_betas) == (joints, betas):
            return layout
    known = ", ".join(
        f"{c.body_model} {c.rig}: {c.num_joints} joints and {c.num_betas} shape values" for c in candidates
    )
    raise DataError(f"{label}: pose of {joints} joints and {betas} shape values fit no body model ({known})")


class MeanPoseModel(nn.Module):
    """A "model" that predicts one body for every frame: ``rotmat`` (J x 3 x 3) and ``betas`` (S) through
    ``body_model``, with the weak-perspective camera ``cam`` (s, tx, ty) for its 2D joints.

    ``forward(images N x T x 3 x H x W, J_regressor=None)`` returns a :class:`maed.models.MAEDOutput` of the
    same fields and shapes as MAED's (the images are not looked at).
    """

    def __init__(self, body_model: nn.Module, rotmat: torch.Tensor, betas: torch.Tensor, cam=(1.0, 0.0, 0.0)):
        super().__init__()
        self.body_model = body_model
        self.register_buffer("rotmat", torch.as_tensor(rotmat, dtype=torch.float32).reshape(-1, 3, 3))
        self.register_buffer("betas", torch.as_tensor(betas, dtype=torch.float32).reshape(-1))
        self.register_buffer("cam", torch.as_tensor(cam, dtype=torch.float32).reshape(3))

    @classmethod
    def from_database(cls, path: str | os.PathLike, body_model: nn.Module) -> MeanPoseModel:
        """The baseline of a training database (``*_db.pt``) for ``body_model``."""
        rotmat, betas = mean_parameters(
            load_database(path),
            num_joints=body_model.num_joints,
            num_betas=body_model.num_betas,
            label=str(path),
        )
        return cls(body_model, torch.from_numpy(rotmat), torch.from_numpy(betas))

    def forward(self, images: torch.Tensor, J_regressor: torch.Tensor | None = None):
        N, T = images.shape[:2]
        body = self.body_model(self.rotmat[None], self.betas[None])
        verts, joints = body.verts, body.joints  # (1, V, 3), (1, K, 3)
        if J_regressor is not None:
            joints = torch.matmul(J_regressor.to(verts), verts)  # (K', V) @ (1, V, 3) -> (1, K', 3)
        cam = self.cam[None]
        kp_2d = weak_perspective_projection(joints, cam)
        theta = torch.cat([cam, rotmat_to_axis_angle(self.rotmat).reshape(1, -1), self.betas[None]], dim=1)

        def every_frame(x: torch.Tensor) -> torch.Tensor:
            return x.expand(N * T, *x.shape[1:]).reshape(N, T, *x.shape[1:])

        return MAEDOutput(
            theta=every_frame(theta),
            verts=every_frame(verts),
            kp_3d=every_frame(joints),
            kp_2d=every_frame(kp_2d),
            rotmat=every_frame(self.rotmat[None]),
        )
