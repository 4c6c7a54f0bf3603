"""Anny (NAVER LABS, Apache-2.0, built on MakeHuman's CC0 assets) as a free stand-in for SMPL.

``anny.Anny()``'s default rig has 104 bones (root at the pelvis, legs with toes, spine, arms with fingers,
neck, head, eyes); ``rig="cmu_mb"`` has 31 (CMU names, body only). Both drive one 13,718-vertex mesh whose
shape is 6 phenotype values (gender, age, muscle, weight, height, proportions), each in [0, 1] with 0.5
the average. The first build of a rig takes one to two minutes on two cores; anny caches it under
``~/.cache/anny`` (``ANNY_CACHE_DIR``) and later builds take under a second.

Conventions, chosen to match SMPL so the rest of the pipeline is unchanged:
- Axes: anny is z-up with the body facing -y; this wrapper rotates everything into SMPL's frame (y up,
  facing +z, the body's left on +x). Units are metres.
- Pose: ``rotmat[:, j]`` rotates bone j (and everything below it) about its head, in world-aligned axes
  (anny's ``local-ref`` parameterisation). Identity rotations give the rest pose (an A-pose); the root
  bone's head (the pelvis centre, between the hips) is at the origin and the root rotates about it.
- Joints: the project's 49-joint layout (``maed.body.anny_joints``), so that losses, metrics and
  databases treat Anny like SMPL; ``joint_mask`` says which of the 49 Anny has.
- Shape: ``betas`` are offsets from the average phenotype, phenotype = 0.5 + betas, so betas = 0 (a
  zero-initialised shape head) is the average adult; anny clamps the result into its valid range.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from maed.body.anny_joints import anny_joint_weights, check_anny_rig
from maed.body.base import BodyModel, BodyOutput
from maed.errors import MaedError

#: p_maed = _ANNY_TO_SMPL_AXES @ p_anny: (x, y, z) -> (x, z, -y), a rotation of -90 degrees about x
_ANNY_TO_SMPL_AXES = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]


def import_anny():
    """The ``anny`` package, with NVIDIA Warp (its skinning kernels) kept from printing to stdout."""
    try:
        import warp

        warp.config.log_level = max(warp.config.log_level, warp.LOG_WARNING)
    except ImportError:  # anny then says what is missing
        pass
    try:
        import anny
    except ImportError as e:
        raise MaedError(
            f"the Anny body model needs the 'anny' package ({e}); install it with `pip install maed[anny]`"
        ) from None
    return anny


@dataclass
class AnnyOutput(BodyOutput):
    """``BodyOutput`` plus ``bone_heads`` B x J x 3, the posed head of every bone (metres)."""

    bone_heads: torch.Tensor | None = None


class AnnyBody(BodyModel):
    """Anny behind the ``BodyModel`` interface.

    Outputs (metres, SMPL-like axes): verts B x 13718 x 3; joints B x 49 x 3 in the project's layout
    (``maed.body.joints.JOINT_NAMES``; see ``maed.body.anny_joints`` for where each comes from), with the
    buffer ``joint_mask`` (49 bool) False where Anny has no counterpart; ``bone_heads`` B x J x 3.
    ``parents`` is the rig's bone hierarchy (root -1), ``bone_labels`` the bone names, ``num_betas`` the
    phenotype count (6) and ``phenotype_labels`` their names.

    Args:
        rig: ``"anny"`` (the default 104-bone rig) or ``"cmu_mb"`` (31 bones, CMU names, body only).
        skinning_method: ``"lbs"`` (dense, pure torch, any device) or ``"warp_lbs"`` (needs NVIDIA Warp).
        dtype: floating type of the model's buffers (anny builds in float64).
    """

    name = "anny"

    def __init__(self, rig: str = "anny", skinning_method: str = "lbs", dtype: torch.dtype = torch.float32):
        super().__init__()

        self.rig = check_anny_rig(rig)
        anny = import_anny()
        model = anny.Anny(rig=rig, skinning_method=skinning_method, pose_parameterization="local-ref")
        coco = anny.KeypointsRegressor.coco(model)
        coco_weights = dict(zip(coco.labels, coco.regression_weights))
        self.anny = model.to(dtype=dtype)
        self.parents = [int(p) if i > 0 else -1 for i, p in enumerate(model.bone_parents)]
        self.bone_labels = list(model.bone_labels)
        self.phenotype_labels = list(model.phenotype_labels)
        self.num_betas = len(self.phenotype_labels)
        faces = model.faces if model.faces.shape[-1] == 3 else model.get_triangular_faces()
        self.register_buffer("faces", faces.to(torch.int64).clone())
        self.register_buffer("axes", torch.tensor(_ANNY_TO_SMPL_AXES, dtype=dtype))
        rest = self.anny.template_vertices.to(torch.float64) @ self.axes.to(torch.float64).T
        bone_w, vertex_w, mask = anny_joint_weights(self.bone_labels, coco_weights, rest, dtype=dtype)
        self.num_output_joints = len(mask)
        self.register_buffer("joint_bone_weights", bone_w)  # (49, J)
        self.register_buffer("joint_vertex_weights", vertex_w)  # (49, V)
        self.register_buffer("joint_mask", mask)

    @property
    def num_vertices(self) -> int:
        return int(self.anny.template_vertices.shape[0])

    def vertex_bones(self) -> torch.Tensor:
        """V int64: the bone with the largest skinning weight at each vertex."""
        top = self.anny.vertex_bone_weights.argmax(dim=-1, keepdim=True)  # (V, 1) into the per-vertex slots
        return self.anny.vertex_bone_indices.gather(-1, top)[:, 0].to(torch.int64)

    def forward(self, rotmat: torch.Tensor, betas: torch.Tensor) -> AnnyOutput:
        """rotmat: B x J x 3 x 3 bone rotations (root first, world-aligned axes); betas: B x 6 offsets from
        the average phenotype. Returns verts B x V x 3, joints B x 49 x 3 and bone heads B x J x 3 (m)."""
        B, J = rotmat.shape[:2]
        if J != self.num_joints or betas.shape[-1] != self.num_betas:
            raise ValueError(
                f"Anny ({self.rig}): expected rotmat B x {self.num_joints} x 3 x 3 and betas B x {self.num_betas}, "
                f"got {tuple(rotmat.shape)} and {tuple(betas.shape)}"
            )
        dtype = self.axes.dtype
        C = self.axes
        delta = torch.zeros(B, J, 4, 4, dtype=dtype, device=rotmat.device)
        delta[..., :3, :3] = C.T @ rotmat.to(dtype) @ C  # rotation expressed in anny's axes
        delta[..., 3, 3] = 1.0
        out = self.anny(pose_parameters=delta, phenotype_kwargs=0.5 + betas.to(dtype))
        verts = out["vertices"] @ C.T  # (B, V, 3) in SMPL-like axes
        heads = out["bone_poses"][..., :3, 3] @ C.T  # posed bone heads, (B, J, 3)
        joints = self.joint_bone_weights @ heads + self.joint_vertex_weights @ verts  # (B, 49, 3)
        return AnnyOutput(verts=verts, joints=joints, bone_heads=heads)

    def extra_repr(self) -> str:
        return f"rig={self.rig}, bones={self.num_joints}, vertices={self.num_vertices}"
