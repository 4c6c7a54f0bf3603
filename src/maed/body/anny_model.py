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
from maed.body.geometry import axis_angle_to_rotmat
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


#: vertices read per vertex-defined joint by AnnyBody.joints_only
JOINT_VERTEX_SUBSET = 64


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

    def posed_points(
        self, rotmat: torch.Tensor, betas: torch.Tensor, point_weights: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same body as :meth:`forward` for one shape, computing only some points of the mesh (fast
        when a caller needs a few, as the synthetic keypoint data does).

        rotmat: B x J x 3 x 3 (as forward); betas: (S,) or 1 x S, one shape for the whole batch;
        point_weights: n x V, each point a weighted sum of vertices (a row of a one-hot matrix is a vertex).
        Returns the points B x n x 3 and the 49 joints B x 49 x 3 (metres, SMPL-like axes).

        Skinning is linear in the bone transforms, so a weighted sum of skinned vertices is
        ``sum_b T_b m_b`` with per-bone moments ``m_b = sum_v p_v s_vb [v_rest; 1]`` (s: skinning weights),
        computed once for the shape: the cost no longer grows with the vertices the points read.
        """
        B, J = rotmat.shape[:2]
        dtype, C = self.axes.dtype, self.axes
        rest, transforms, bone_poses = self._posed_bones(rotmat, betas.reshape(1, -1))
        v_rest = rest["rest_vertices"][0]  # (V, 3) in anny's axes
        homo = torch.cat([v_rest, torch.ones_like(v_rest[:, :1])], dim=-1)  # (V, 4)
        weights = torch.cat([point_weights.to(dtype), self.joint_vertex_weights.to(dtype)])  # (n + 49, V)
        skin = self._dense_skinning(J, dtype)  # (V, J)
        V = homo.shape[0]
        moments = (weights @ (skin[:, :, None] * homo[:, None, :]).reshape(V, J * 4)).reshape(-1, J, 4)  # (n+49, J, 4)
        points = torch.einsum("tbij,nbj->tni", transforms[..., :3, :], moments) @ C.T  # (B, n + 49, 3)
        n = point_weights.shape[0]
        heads = bone_poses[..., :3, 3] @ C.T
        joints = self.joint_bone_weights @ heads + points[:, n:]
        return points[:, :n], joints

    def joints_only(self, rotmat: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        """The 49 joints without the mesh, for training losses that read joints only (``MODEL.TRAIN_VERTICES:
        false``): several times faster than :meth:`forward` with its backward.

        Joints at bone heads are exact. The few joints read from vertices (face and feet points; some are means
        of thousands of vertices) read at most ``JOINT_VERTEX_SUBSET`` of them, evenly chosen, with the same
        total weight, skinned for the sample's own shape: within a few millimetres of :meth:`forward`'s.
        rotmat: B x J x 3 x 3; betas: B x S. Returns B x 49 x 3 metres.
        """
        dtype, C = self.axes.dtype, self.axes
        a = self.anny
        rest, transforms, bone_poses = self._posed_bones(rotmat, betas)
        ids, weights = self._joint_vertex_subset()
        v_rest = rest["rest_vertices"][:, ids]  # (B, m, 3)
        homo = torch.cat([v_rest, torch.ones_like(v_rest[..., :1])], dim=-1)
        w, b = a.vertex_bone_weights[ids].to(dtype), a.vertex_bone_indices[ids].long()  # (m, k)
        # linear blend skinning of the m vertices: sum_k w_k T_{b_k} [v; 1]
        per_bone = transforms[:, b, :3, :]  # (B, m, k, 3, 4)
        skinned = (w[None, ..., None] * (per_bone @ homo[:, :, None, :, None])[..., 0]).sum(2) @ C.T
        heads = bone_poses[..., :3, 3] @ C.T
        return self.joint_bone_weights @ heads + weights.to(dtype) @ skinned

    def _posed_bones(self, rotmat: torch.Tensor, betas: torch.Tensor) -> tuple[dict, torch.Tensor, torch.Tensor]:
        """Anny's rest model for ``betas`` (B x S, or 1 x S for the whole batch) and its bones posed by
        ``rotmat`` (B x J x 3 x 3): (rest model, bone transforms B x J x 4 x 4, bone poses B x J x 4 x 4)."""
        B, J = rotmat.shape[:2]
        dtype, C = self.axes.dtype, self.axes
        a = self.anny
        delta = torch.zeros(B, J, 4, 4, dtype=dtype, device=rotmat.device)
        delta[..., :3, :3] = C.T @ rotmat.to(dtype) @ C
        delta[..., 3, 3] = 1.0
        pose, phenotype, local, facial = a.get_tensor_inputs(delta, 0.5 + betas.to(dtype), None, None)
        rest = a.get_rest_model(a._get_phenotype_blendshape_coefficients(phenotype, local, facial))
        transforms, bone_poses = a.get_bone_transforms(pose, rest["rest_bone_poses"].expand(B, -1, -1, -1))
        return rest, transforms, bone_poses

    def _joint_vertex_subset(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (m,), weights (49, m)): each vertex-defined joint as at most JOINT_VERTEX_SUBSET vertices, the
        ones of largest weight, their weights refitted by least squares to give the joint of
        :meth:`forward` over a fixed set of random poses and shapes (so a broad regressor still holds)."""
        cached = getattr(self, "_joint_subset", None)
        if cached is not None:
            return cached
        full = self.joint_vertex_weights.to(torch.float64)
        g = torch.Generator().manual_seed(0)
        n_bodies = 48
        with torch.no_grad():
            angles = (torch.rand(n_bodies, self.num_joints, 3, generator=g) - 0.5) * 1.2

            R = axis_angle_to_rotmat(angles.reshape(-1, 3)).reshape(n_bodies, self.num_joints, 3, 3)
            betas = (torch.rand(n_bodies, self.num_betas, generator=g) - 0.5) * 1.0
            verts = self(R.to(self.axes.dtype), betas.to(self.axes.dtype)).verts.to(torch.float64)  # (n, V, 3)
        rows = torch.zeros_like(full)
        for j in range(full.shape[0]):
            nz = torch.nonzero(full[j])[:, 0]
            if len(nz) == 0:
                continue
            if len(nz) <= JOINT_VERTEX_SUBSET:
                rows[j, nz] = full[j, nz]
                continue
            keep = nz[torch.argsort(-full[j, nz].abs())[:JOINT_VERTEX_SUBSET]]
            target = torch.einsum("nvc,v->nc", verts, full[j]).reshape(-1)  # (n * 3,) the vertex part
            A = verts[:, keep].permute(0, 2, 1).reshape(-1, len(keep))  # (n * 3, m)
            rows[j, keep] = torch.linalg.lstsq(A, target[:, None]).solution[:, 0]
        ids = torch.nonzero(rows.abs().sum(0) > 0)[:, 0]
        cached = (ids, rows[:, ids].to(self.joint_vertex_weights.dtype))
        self._joint_subset = cached
        return cached

    def _dense_skinning(self, num_bones: int, dtype: torch.dtype) -> torch.Tensor:
        """V x J skinning weights (anny keeps them as per-vertex slots)."""
        a = self.anny
        skin = torch.zeros(a.vertex_bone_weights.shape[0], num_bones, dtype=dtype)
        skin.scatter_add_(1, a.vertex_bone_indices.long(), a.vertex_bone_weights.to(dtype))
        return skin

    def extra_repr(self) -> str:
        return f"rig={self.rig}, bones={self.num_joints}, vertices={self.num_vertices}"
