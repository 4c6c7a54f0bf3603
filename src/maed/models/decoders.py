"""Decoders from per-frame features to body-model parameters (ORIGINAL.md §1.5, 1.6).

Both return ``(pose_6d (B, J*6), betas (B, S), cam (B, 3))``; turning these into a mesh, joints and a
projection is shared and lives in ``maed.models.maed``.
"""

from __future__ import annotations

import torch
from torch import nn

from maed.body.base import ancestors


def _small_xavier(layer: nn.Linear) -> nn.Linear:
    nn.init.xavier_uniform_(layer.weight, gain=0.01)
    return layer


class KTD(nn.Module):
    """Kinematic-tree decoder: each joint's 6D rotation is regressed from the shared feature and the
    6D outputs of all its ancestors (root first), walking the tree from the root.

    Args:
        feat_dim: encoder feature width (768 for ``ste``, 2048 for ``cnn``).
        parents: parent index of each kinematic joint (-1 for the root), from the body model.
        num_betas: shape-parameter count of the body model.
        hidden_dim: width of the two linear trunk layers (no nonlinearity between them, as SPIN/MAED).
        dropout: dropout probability after each trunk layer in training (the original's 0.5).

    The original initialises the regressors with tiny weights and leaves their outputs near 0, where the 6D
    to rotation map (Gram-Schmidt) is most sensitive. :meth:`start_at` moves a new decoder's starting output
    to a given pose, shape and camera instead (``MODEL.DECODER.INIT_MEAN_POSE``).
    """

    def __init__(
        self,
        feat_dim: int,
        parents: list[int],
        num_betas: int = 10,
        hidden_dim: int = 1024,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.ancestor_index = ancestors(parents)
        self.fc1 = nn.Linear(feat_dim, hidden_dim)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.drop2 = nn.Dropout(dropout)
        self.joint_regs = nn.ModuleList(
            _small_xavier(nn.Linear(hidden_dim + 6 * len(anc), 6)) for anc in self.ancestor_index
        )
        self.decshape = _small_xavier(nn.Linear(hidden_dim, num_betas))
        self.deccam = _small_xavier(nn.Linear(hidden_dim, 3))

    @torch.no_grad()
    def start_at(self, rotmat: torch.Tensor, betas: torch.Tensor, cam: torch.Tensor) -> None:
        """Set the output biases so that, before training moves the small weights, the decoder predicts
        ``rotmat`` (J x 3 x 3, root first), ``betas`` (S) and ``cam`` (3: s, tx, ty) for every input."""
        if rotmat.shape != (len(self.joint_regs), 3, 3):
            raise ValueError(f"start_at: expected {len(self.joint_regs)} x 3 x 3 rotations, got {tuple(rotmat.shape)}")
        six_d = rotmat[:, :, :2].reshape(len(self.joint_regs), 6)  # the 3 x 2 layout of rot6d_to_rotmat
        for reg, target in zip(self.joint_regs, six_d):
            reg.bias.copy_(target.to(reg.bias))
        self.decshape.bias.copy_(betas.to(self.decshape.bias))
        self.deccam.bias.copy_(cam.to(self.deccam.bias))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: B x feat_dim -> (pose_6d B x J*6, betas B x S, cam B x 3)."""
        x = self.drop2(self.fc2(self.drop1(self.fc1(x))))
        betas = self.decshape(x)
        cam = self.deccam(x)
        pose: list[torch.Tensor] = []
        for anc, reg in zip(self.ancestor_index, self.joint_regs):  # sequential by construction
            pose.append(reg(torch.cat([x] + [pose[i] for i in anc], dim=1)))
        return torch.cat(pose, dim=1), betas, cam


class IterativeRegressor(nn.Module):
    """SPIN/HMR regressor: three residual refinements starting from the mean parameters.

    Args:
        feat_dim: encoder feature width.
        mean_pose_6d: (J*6,) mean pose in 6D; mean_betas: (S,); mean_cam: (3,) — SPIN's
            ``smpl_mean_params.npz`` (keys ``pose``, ``shape``, ``cam``) for SMPL.
        n_iter: refinement steps (the original hard-codes 3).
    """

    def __init__(
        self,
        feat_dim: int,
        mean_pose_6d: torch.Tensor,
        mean_betas: torch.Tensor,
        mean_cam: torch.Tensor,
        hidden_dim: int = 1024,
        n_iter: int = 3,
        dropout: float = 0.5,
    ):
        super().__init__()
        npose, nshape = mean_pose_6d.numel(), mean_betas.numel()
        self.n_iter = n_iter
        self.fc1 = nn.Linear(feat_dim + npose + nshape + 3, hidden_dim)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.drop2 = nn.Dropout(dropout)
        self.decpose = _small_xavier(nn.Linear(hidden_dim, npose))
        self.decshape = _small_xavier(nn.Linear(hidden_dim, nshape))
        self.deccam = _small_xavier(nn.Linear(hidden_dim, 3))
        self.register_buffer("init_pose", mean_pose_6d.reshape(1, -1).float().clone())
        self.register_buffer("init_shape", mean_betas.reshape(1, -1).float().clone())
        self.register_buffer("init_cam", mean_cam.reshape(1, -1).float().clone())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: B x feat_dim -> (pose_6d B x J*6, betas B x S, cam B x 3)."""
        B = x.shape[0]
        pose = self.init_pose.expand(B, -1)
        betas = self.init_shape.expand(B, -1)
        cam = self.init_cam.expand(B, -1)
        for _ in range(self.n_iter):
            h = self.drop2(self.fc2(self.drop1(self.fc1(torch.cat([x, pose, betas, cam], dim=1)))))
            pose = self.decpose(h) + pose
            betas = self.decshape(h) + betas
            cam = self.deccam(h) + cam
        return pose, betas, cam
