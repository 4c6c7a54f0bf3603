"""Anny (NAVER LABS, Apache-2.0, built on MakeHuman's CC0 assets) as a free stand-in for SMPL.

``anny.Anny()``'s default rig has 104 bones (root at the pelvis, legs with toes, spine, arms with fingers,
neck, head, eyes) and a 13,718-vertex mesh; its shape is 6 phenotype values (gender, age, muscle, weight,
height, proportions), each in [0, 1] with 0.5 the average. The first build takes about two minutes on two
cores; anny caches it under ``~/.cache/anny`` (``ANNY_CACHE_DIR``) and later builds take under a second.

Conventions, chosen to match SMPL so the rest of the pipeline is unchanged:
- Axes: anny is z-up with the body facing -y; this wrapper rotates everything into SMPL's frame (y up,
  facing +z, the body's left on +x). Units are metres.
- Pose: ``rotmat[:, j]`` rotates bone j (and everything below it) about its head, in world-aligned axes
  (anny's ``local-ref`` parameterisation). Identity rotations give the rest pose; the root bone's head
  is placed at the origin, as SMPL's pelvis is without translation.
- Shape: ``betas`` are offsets from the average phenotype, phenotype = 0.5 + betas, so betas = 0 (a
  zero-initialised shape head) is the average adult; anny clamps the result into its valid range.
"""

from __future__ import annotations

import torch

from maed.body.base import BodyModel, BodyOutput
from maed.errors import MaedError

#: p_maed = _ANNY_TO_SMPL_AXES @ p_anny: (x, y, z) -> (x, z, -y), a rotation of -90 degrees about x
_ANNY_TO_SMPL_AXES = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]


def import_anny():
    try:
        import anny
    except ImportError as e:
        raise MaedError(
            f"the Anny body model needs the 'anny' package ({e}); install it with `pip install maed[anny]`"
        ) from None
    return anny


class AnnyBody(BodyModel):
    """Anny behind the ``BodyModel`` interface.

    Outputs (metres, SMPL-like axes): verts B x 13718 x 3, joints B x 104 x 3 = the posed bone heads.
    ``parents`` is anny's bone hierarchy (104 entries, root -1), ``num_betas`` its phenotype count (6),
    ``phenotype_labels`` their names, ``bone_labels`` the bone names.

    Args:
        rig: anny rig name (``"anny"``, the default 104-bone rig; ``"cmu_mb"`` gives 31 bones).
        skinning_method: ``"lbs"`` (dense, pure torch, any device) or ``"warp_lbs"`` (needs NVIDIA Warp).
        dtype: floating type of the model's buffers (anny builds in float64).
    """

    name = "anny"

    def __init__(self, rig: str = "anny", skinning_method: str = "lbs", dtype: torch.dtype = torch.float32):
        super().__init__()
        anny = import_anny()
        model = anny.Anny(rig=rig, skinning_method=skinning_method, pose_parameterization="local-ref")
        self.anny = model.to(dtype=dtype)
        self.parents = [int(p) if i > 0 else -1 for i, p in enumerate(model.bone_parents)]
        self.bone_labels = list(model.bone_labels)
        self.phenotype_labels = list(model.phenotype_labels)
        self.num_betas = len(self.phenotype_labels)
        self.num_output_joints = len(self.parents)
        faces = model.faces if model.faces.shape[-1] == 3 else model.get_triangular_faces()
        self.register_buffer("faces", faces.to(torch.int64).clone())
        self.register_buffer("axes", torch.tensor(_ANNY_TO_SMPL_AXES, dtype=dtype))

    @property
    def num_vertices(self) -> int:
        return int(self.anny.template_vertices.shape[0])

    def forward(self, rotmat: torch.Tensor, betas: torch.Tensor) -> BodyOutput:
        """rotmat: B x 104 x 3 x 3 bone rotations (root first, world-aligned axes); betas: B x 6 offsets
        from the average phenotype. Returns verts B x V x 3 and bone heads B x 104 x 3 in metres."""
        B, J = rotmat.shape[:2]
        if J != self.num_joints or betas.shape[-1] != self.num_betas:
            raise ValueError(
                f"Anny: expected rotmat B x {self.num_joints} x 3 x 3 and betas B x {self.num_betas}, "
                f"got {tuple(rotmat.shape)} and {tuple(betas.shape)}"
            )
        dtype = self.axes.dtype
        C = self.axes
        delta = torch.zeros(B, J, 4, 4, dtype=dtype, device=rotmat.device)
        delta[..., :3, :3] = C.T @ rotmat.to(dtype) @ C  # rotation expressed in anny's axes
        delta[..., 3, 3] = 1.0
        out = self.anny(pose_parameters=delta, phenotype_kwargs=0.5 + betas.to(dtype))
        verts = out["vertices"] @ C.T  # (B, V, 3) in SMPL-like axes
        joints = out["bone_poses"][..., :3, 3] @ C.T  # posed bone heads, (B, J, 3)
        return BodyOutput(verts=verts, joints=joints)
