"""MAED: encoder -> decoder -> body model -> weak-perspective projection (ORIGINAL.md §1.1, 1.7)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import torch
from torch import nn

from maed.body.base import BodyModel
from maed.body.geometry import rot6d_to_rotmat, rotmat_to_axis_angle, weak_perspective_projection


@dataclass
class MAEDOutput:
    """Per-frame predictions, all N x T x ...:

    theta (N, T, 3 + 3J + S): camera (s, tx, ty), pose as axis-angle, shape; verts (N, T, V, 3) metres;
    kp_3d (N, T, K, 3) metres (the body model's joints, or J_regressor's when one is given);
    kp_2d (N, T, K, 2) normalised to [-1, 1] of the crop; rotmat (N, T, J, 3, 3);
    kp_2d_heatmap (N, T, 49, 2), the same coordinates: the encoder's auxiliary heatmap joints, present only in
    training when the encoder has that head (``MODEL.ENCODER.JOINT_HEATMAP``), else None.
    Mapping access (``out["verts"]``) works as with the original's dict; keys are the fields that are set.
    """

    theta: torch.Tensor
    verts: torch.Tensor
    kp_3d: torch.Tensor
    kp_2d: torch.Tensor
    rotmat: torch.Tensor
    kp_2d_heatmap: torch.Tensor | None = None

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def keys(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        return ((k, getattr(self, k)) for k in self.keys())

    def values(self) -> Iterator[torch.Tensor]:
        return (getattr(self, k) for k in self.keys())

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def get(self, key: str, default=None):
        return getattr(self, key) if key in self.keys() else default


class MAED(nn.Module):
    """The MAED network.

    Args:
        encoder: per-frame feature extractor with ``feat_dim``, ``uses_seqlen``, ``check_seqlen(T)`` and
            ``input_kind`` (``SpatioTemporalEncoder`` or ``ResNet50Encoder`` on images,
            ``KeypointEncoder`` on body landmarks).
        decoder: maps (B, feat_dim) features to (pose_6d, betas, cam) (``KTD`` or ``IterativeRegressor``).
        body_model: turns rotations and shape into vertices and joints. Its buffers are kept out of
            ``state_dict`` on purpose: checkpoints must never carry licence-gated body-model data.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, body_model: BodyModel, *, train_vertices: bool = True):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.body_model = body_model
        # False: in training mode the body model gives joints only (``joints_only``, where it has one) and
        # ``verts`` is empty (N x T x 0 x 3): the losses read joints; eval mode always builds the mesh
        self.train_vertices = train_vertices
        for m in body_model.modules():
            m._non_persistent_buffers_set.update(m._buffers.keys())
        self.body_model.requires_grad_(False)

    def forward(self, inputs: torch.Tensor, J_regressor: torch.Tensor | None = None) -> MAEDOutput:
        """inputs: what the encoder takes (its ``input_kind``), T frames of one clip each:

        - ``images``: N x T x 3 x S x S ImageNet-normalised RGB crops (S = 224 for the original's size, the
          encoder's ``img_size`` in general);
        - ``keypoints``: N x T x K x C landmarks (``KeypointEncoder``: x, y in [-1, 1] of the crop box,
          visibility in [0, 1], optionally the metric world position).

        J_regressor: optional K' x V regressor (e.g. H36M, 17 joints) replacing the body model's joints in
        ``kp_3d`` and ``kp_2d``.
        """
        N, T = self._check_input(inputs)
        self.encoder.check_seqlen(T)
        frames = inputs.reshape(N * T, *inputs.shape[2:])
        heatmap_kp = None
        if self.training and getattr(self.encoder, "has_joint_heatmap", False):
            feats, heatmap_kp = self.encoder(frames, seqlen=T, joints=True)
        else:
            feats = self.encoder(frames, seqlen=T)  # (N*T, feat_dim)
        # the encoder may run in bfloat16 (maed.models.fast); the decoder's precision is its own
        pose_6d, betas, cam = self.decoder(feats.to(self.decoder.fc1.weight.dtype))
        # the body model, projection and rotation conversions stay in float32 under autocast: they are
        # cheap, and bf16 (about 3 significant digits) would blur millimetre-scale geometry
        with torch.autocast(inputs.device.type, enabled=False):
            out = self.decode(pose_6d.float(), betas.float(), cam.float(), batch_shape=(N, T), J_regressor=J_regressor)
        if heatmap_kp is not None:
            out.kp_2d_heatmap = heatmap_kp.float().reshape(N, T, *heatmap_kp.shape[1:])
        return out

    @property
    def input_kind(self) -> str:
        """``"images"`` or ``"keypoints"``: what :meth:`forward` takes (the encoder's choice)."""
        return getattr(self.encoder, "input_kind", "images")

    def _check_input(self, x: torch.Tensor) -> tuple[int, int]:
        """(N, T) of a clip batch in the encoder's input layout; ValueError naming that layout otherwise."""
        kind = self.input_kind
        if kind == "keypoints":
            K, C = self.encoder.num_keypoints, self.encoder.in_channels
            if x.ndim != 4 or tuple(x.shape[2:]) != (K, C):
                raise ValueError(
                    f"keypoints: expected N x T x {K} x {C} ({', '.join(self.encoder.channel_names)} of each of "
                    f"{K} landmarks), got {tuple(x.shape)}"
                    + (" (this model takes keypoints, not images)" if x.ndim == 5 else "")
                )
        elif x.ndim != 5 or x.shape[2] != 3:
            raise ValueError(
                f"images: expected N x T x 3 x H x W, got {tuple(x.shape)}"
                + (" (this model takes images, not keypoints)" if x.ndim == 4 else "")
            )
        return x.shape[0], x.shape[1]

    def decode(
        self,
        pose_6d: torch.Tensor,
        betas: torch.Tensor,
        cam: torch.Tensor,
        batch_shape: tuple[int, ...],
        J_regressor: torch.Tensor | None = None,
    ) -> MAEDOutput:
        """Decoder parameters (B x J*6, B x S, B x 3) -> mesh, joints, projection, reshaped to batch_shape."""
        B = pose_6d.shape[0]
        rotmat = rot6d_to_rotmat(pose_6d.reshape(-1, 6)).reshape(B, -1, 3, 3)
        if (
            self.training
            and not self.train_vertices
            and J_regressor is None
            and hasattr(self.body_model, "joints_only")
        ):
            joints = self.body_model.joints_only(rotmat, betas).to(rotmat.dtype)
            verts = joints.new_zeros(B, 0, 3)
        else:
            body = self.body_model(rotmat, betas)
            verts, joints = body.verts, body.joints
        if J_regressor is not None:
            joints = torch.matmul(J_regressor.to(verts), verts)  # (K', V) @ (B, V, 3) -> (B, K', 3)
        kp_2d = weak_perspective_projection(joints, cam)
        aa = rotmat_to_axis_angle(rotmat.reshape(-1, 3, 3)).reshape(B, -1)
        theta = torch.cat([cam, torch.nan_to_num(aa, nan=0.0), betas], dim=1)
        return MAEDOutput(
            theta=theta.reshape(*batch_shape, -1),
            verts=verts.reshape(*batch_shape, -1, 3),
            kp_3d=joints.reshape(*batch_shape, -1, 3),
            kp_2d=kp_2d.reshape(*batch_shape, -1, 2),
            rotmat=rotmat.reshape(*batch_shape, -1, 3, 3),
        )
