"""A body model's skeleton and skin for one shape, in the form animation files need (glTF skins, BVH).

Terms used by the writers (``maed.export.gltf``, ``maed.export.bvh``):

- **Bind pose**: the pose the mesh is stored in (``Rig.rest_verts``, ``Rig.rest_joints``). For SMPL it is the
  shaped template (T-pose). Anny stores its mesh in its own rest pose, but its zero pose (identity rotations,
  what ``AnnyBody.forward`` returns for identity ``rotmat``) turns each bone by a fixed *reference rotation*
  (``Rig.bind_rotations``; identity for SMPL and for Anny rigs without reference orientations).
- **Zero pose**: identity rotations for every joint. A joint's offset from its parent in the zero pose is
  ``bind_rotations[parent] @ (rest_joints[j] - rest_joints[parent])`` (``Rig.joint_offsets``).
- **Animation**: each joint's local rotation is exactly the body model's ``rotmat[:, j]`` (root first), with
  the joint translated by its zero-pose offset; the root is also moved by ``root_trans``. Each joint's bind
  matrix is its bind-pose head turned by ``bind_rotations[j]^T``, so linear blend skinning of ``rest_verts``
  with these joints reproduces the body model (SMPL without its pose blend shapes, which no skinned file
  format can hold; Anny exactly, up to keeping four weights per vertex in glTF).

How AnnyBody's pose reads (anny's ``local-ref`` parameterisation, checked against anny's own forward pass in
``tests/export/test_rig.py`` and again each time a rig is built): bone ``c`` of parent ``p`` gets the world
rotation ``H_c = H_p @ rotmat[c]``, so the per-bone rotations ARE parent-relative and compose down the chain
exactly as SMPL's do; "world-aligned axes" means that each bone's frame in the zero pose is the world frame
(not the bone's own rest frame, which anny's ``local-bone`` would use), so a bone turned alone turns about
world axes. Bone heads follow ``head_c = head_p + H_p @ offset_c``.

Coordinate frames (shared by every writer, ``frame=`` argument):

- ``"camera"`` (default, what ``maed demo`` predicts): the root rotation and ``root_trans`` are in the camera
  frame (x right, y down, z away from the camera). The writers turn the whole sequence 180 degrees about x
  (``CAMERA_TO_FILE``), so the file is y up with the camera at the origin looking down -z, which is glTF's
  (and three.js's) camera convention: a viewer's default camera sees the person as the video's camera did.
  Blender's glTF and BVH importers turn y up into Blender's z up, so the person stands upright there too,
  in front of the origin. Only the root's rotation and translation change; every other joint's rotation is
  written as given.
- ``"model"``: written as given, the body model's own frame (SMPL's canonical frame: y up, the body facing +z
  in the zero pose), for sequences whose root is not in the camera frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maed.body.geometry import axis_angle_to_rotmat
from maed.body.joints import SMPL_JOINT_NAMES
from maed.errors import ConfigError, DataError, MaedError, OutputError

FILE_FRAMES = ("camera", "model")
#: 180 degrees about x: camera axes (x right, y down, z away) -> file axes (x right, y up, z towards the camera)
CAMERA_TO_FILE = np.diag([1.0, -1.0, -1.0])


@dataclass
class Rig:
    """A body model's skeleton and skin for one shape (metres, the body model's frame).

    joint_names: J names, unique. parents: J parent indices, -1 for the root (joint 0), parents listed before
    their children. rest_joints: J x 3 joint positions (bone heads) in the bind pose. rest_verts: V x 3 mesh
    in the bind pose. faces: F x 3 vertex indices. skin_weights: V x J, non-negative rows that sum to 1.
    bind_rotations: J x 3 x 3 rotation of each joint from the bind pose to the zero pose (None: identity).
    """

    joint_names: list[str]
    parents: list[int]
    rest_joints: np.ndarray
    rest_verts: np.ndarray
    faces: np.ndarray
    skin_weights: np.ndarray
    bind_rotations: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.joint_names = [str(n) for n in self.joint_names]
        self.parents = [int(p) for p in self.parents]
        self.rest_joints = np.asarray(self.rest_joints, dtype=np.float64)
        self.rest_verts = np.asarray(self.rest_verts, dtype=np.float64)
        self.faces = np.asarray(self.faces, dtype=np.int64)
        self.skin_weights = np.asarray(self.skin_weights, dtype=np.float64)
        J, V = len(self.parents), len(self.rest_verts)
        if self.bind_rotations is None:
            self.bind_rotations = np.tile(np.eye(3), (J, 1, 1))
        self.bind_rotations = np.asarray(self.bind_rotations, dtype=np.float64)
        expected = {
            "rest_joints": (self.rest_joints, (J, 3)),
            "rest_verts": (self.rest_verts, (V, 3)),
            "skin_weights": (self.skin_weights, (V, J)),
            "bind_rotations": (self.bind_rotations, (J, 3, 3)),
        }
        for key, (array, shape) in expected.items():
            if array.shape != shape:
                raise ValueError(f"Rig.{key}: shape {array.shape}, expected {shape}")
        if len(self.joint_names) != J or len(set(self.joint_names)) != J:
            raise ValueError(f"Rig.joint_names: expected {J} unique names, got {self.joint_names}")
        if J == 0 or self.parents[0] != -1 or any(not 0 <= p < j for j, p in enumerate(self.parents) if j > 0):
            raise ValueError(f"Rig.parents: the root first (-1), then parents before children; got {self.parents}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or (self.faces.size and not 0 <= self.faces.min()):
            raise ValueError(f"Rig.faces: expected F x 3 indices into {V} vertices, got shape {self.faces.shape}")
        if self.faces.size and self.faces.max() >= V:
            raise ValueError(f"Rig.faces: index {self.faces.max()} out of range for {V} vertices")
        sums = self.skin_weights.sum(axis=1)
        if (self.skin_weights < 0).any() or np.abs(sums - 1).max(initial=0) > 1e-4:
            raise ValueError(f"Rig.skin_weights: expected non-negative rows summing to 1 (sums {sums.min()}..)")

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def num_vertices(self) -> int:
        return len(self.rest_verts)

    def joint_offsets(self) -> np.ndarray:
        """J x 3 metres: each joint's offset from its parent in the zero pose; the root's is its position."""
        parents = np.array(self.parents)
        offsets = self.rest_joints.copy()
        child = parents >= 0
        bone = self.rest_joints[child] - self.rest_joints[parents[child]]  # (J-1, 3) bind-pose bones
        offsets[child] = np.einsum("jab,jb->ja", self.bind_rotations[parents[child]], bone)
        return offsets

    def inverse_bind_matrices(self) -> np.ndarray:
        """J x 4 x 4: bind-pose mesh -> each joint's frame, [A_j | -A_j h_j] with A = bind_rotations."""
        ibm = np.tile(np.eye(4), (self.num_joints, 1, 1))
        ibm[:, :3, :3] = self.bind_rotations
        ibm[:, :3, 3] = -np.einsum("jab,jb->ja", self.bind_rotations, self.rest_joints)
        return ibm

    def forward_kinematics(
        self, rotmats: np.ndarray, root_trans: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """rotmats T x J x 3 x 3 local rotations, root_trans T x 3 metres (None: zero).

        Returns the joints' world rotations T x J x 3 x 3 and positions T x J x 3 (metres).
        """
        rotmats = np.asarray(rotmats, dtype=np.float64)
        T, J = rotmats.shape[:2]
        offsets = self.joint_offsets()
        rot = np.empty((T, J, 3, 3))
        pos = np.empty((T, J, 3))
        rot[:, 0] = rotmats[:, 0]
        pos[:, 0] = offsets[0] + (0.0 if root_trans is None else np.asarray(root_trans, dtype=np.float64))
        for j in range(1, J):
            p = self.parents[j]
            rot[:, j] = rot[:, p] @ rotmats[:, j]
            pos[:, j] = pos[:, p] + np.einsum("tab,b->ta", rot[:, p], offsets[j])
        return rot, pos

    def skinning_transforms(
        self, rotmats: np.ndarray, root_trans: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-joint bind-pose -> posed transforms: rotations T x J x 3 x 3 and translations T x J x 3."""
        rot, pos = self.forward_kinematics(rotmats, root_trans)
        ibm = self.inverse_bind_matrices()
        skin_rot = rot @ ibm[:, :3, :3]  # (T, J, 3, 3)
        skin_trans = pos + np.einsum("tjab,jb->tja", rot, ibm[:, :3, 3])
        return skin_rot, skin_trans

    def top_weights(self, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
        """Each vertex's k largest skin weights, renormalised to sum to 1 (as glTF's JOINTS_0 / WEIGHTS_0).

        Returns joint indices V x k (int64; index 0 where a vertex has fewer than k joints, with weight 0)
        and weights V x k (float64, largest first).
        """
        k = min(k, self.num_joints)
        order = np.argsort(-self.skin_weights, axis=1, kind="stable")[:, :k]  # (V, k)
        weights = np.take_along_axis(self.skin_weights, order, axis=1)
        weights = weights / weights.sum(axis=1, keepdims=True)
        joints = np.where(weights > 0, order, 0)
        return joints, weights

    def skin(
        self, rotmats: np.ndarray, root_trans: np.ndarray | None = None, *, max_influences: int | None = None
    ) -> np.ndarray:
        """Linear blend skinning of the bind-pose mesh: T x V x 3 metres.

        ``max_influences``: keep only that many weights per vertex (renormalised), as a file format would.
        """
        skin_rot, skin_trans = self.skinning_transforms(rotmats, root_trans)
        if max_influences is None:
            weights = self.skin_weights
        else:
            idx, w = self.top_weights(max_influences)
            weights = np.zeros_like(self.skin_weights)
            for k in range(idx.shape[1]):  # accumulate: padded slots repeat joint 0 with weight 0
                np.add.at(weights, (np.arange(self.num_vertices), idx[:, k]), w[:, k])
        blend_rot = np.einsum("vj,tjab->tvab", weights, skin_rot)  # (T, V, 3, 3) per-vertex blended transforms
        blend_trans = np.einsum("vj,tja->tva", weights, skin_trans)
        return np.einsum("tvab,vb->tva", blend_rot, self.rest_verts) + blend_trans


def rig_from_body_model(body_model, betas=None) -> Rig:
    """The rig of ``body_model`` for one shape ``betas`` (S values or 1 x S, array or tensor; None = the mean
    shape, zeros).

    Body models: ``maed.body.smpl.SMPL``, and ``maed.body.anny_model.AnnyBody`` with any anny rig whose root
    bone is world-aligned, as AnnyBody's root rotation must be to act as a global orientation: the default
    104-bone rig, ``cmu_mb``, and by their configuration ``makehuman``, ``game_engine`` and ``mixamo``. Rigs
    whose root is not (``soma``, the ``-blender`` variants, hand/head subtrees) raise a ``MaedError``.

    Bind-pose arrays are in the body model's frame, metres. Skinning the rig with rotations ``R`` reproduces
    ``body_model(R, betas)``: SMPL up to its pose blend shapes, Anny exactly (its joints are checked against
    AnnyBody here on one pose, which costs a fraction of a second).
    """
    import torch

    name = getattr(body_model, "name", type(body_model).__name__)
    if name not in ("smpl", "anny"):
        raise ConfigError(f"rig_from_body_model: body model {name!r} is not supported (expected 'smpl' or 'anny')")
    S = body_model.num_betas
    if betas is None:
        betas = np.zeros(S)
    betas = as_array(betas, "rig_from_body_model: betas")
    if betas.size != S or not np.isfinite(betas).all():
        raise DataError(f"rig_from_body_model: betas has shape {betas.shape}, expected {S} finite values for {name}")
    with torch.no_grad():
        if name == "smpl":
            return _smpl_rig(body_model, betas.reshape(1, S))
        return _anny_rig(body_model, betas.reshape(1, S))


def _smpl_rig(body_model, betas: np.ndarray) -> Rig:
    import torch
    from smplx.lbs import blend_shapes, vertices2joints

    layer = body_model.layer
    b = torch.as_tensor(betas, dtype=layer.shapedirs.dtype, device=layer.shapedirs.device)
    v_shaped = layer.v_template + blend_shapes(b, layer.shapedirs)  # (1, V, 3)
    joints = vertices2joints(layer.J_regressor, v_shaped)  # (1, J, 3)
    J = body_model.num_joints
    names = SMPL_JOINT_NAMES if J == len(SMPL_JOINT_NAMES) else [f"joint_{j}" for j in range(J)]
    return Rig(
        joint_names=list(names),
        parents=list(body_model.parents),
        rest_joints=joints[0].double().cpu().numpy(),
        rest_verts=v_shaped[0].double().cpu().numpy(),
        faces=body_model.faces.cpu().numpy(),
        skin_weights=layer.lbs_weights.double().cpu().numpy(),
    )


def _anny_rig(body_model, betas: np.ndarray) -> Rig:
    import torch

    anny = body_model.anny
    J, dtype, device = body_model.num_joints, body_model.axes.dtype, body_model.axes.device
    identity = torch.eye(4, dtype=dtype, device=device).expand(1, J, 4, 4)
    phenotype = 0.5 + torch.as_tensor(betas, dtype=dtype, device=device)  # AnnyBody's betas convention
    out = anny(pose_parameters=identity, phenotype_kwargs=phenotype)
    rest_poses = out["rest_bone_poses"][0].double().cpu().numpy()  # (J, 4, 4) in anny's axes
    R, heads = rest_poses[:, :3, :3], rest_poses[:, :3, 3]
    U = anny.reference_bone_orientations
    U = R if U is None else U.double().cpu().numpy()
    # anny's local-ref forward kinematics: zero-pose bone frames are the rest frames turned by A = U R^T; the
    # root's world rotation is U_0^T D_0 U_0 R_0^T, so the root must be world-aligned for the root rotation
    # to act as SMPL's global orientation does (AnnyBody's contract).
    if np.abs(U[0] - np.eye(3)).max() > 1e-5 or np.abs(R[0] - np.eye(3)).max() > 1e-5:
        raise MaedError(
            "rig_from_body_model: this Anny rig's root bone is not world-aligned (its rest or reference "
            "orientation is not the identity), so its root rotation is not a global orientation; use a rig "
            "with an identity root orientation (the default rig, 'cmu_mb', or add '-rootidentity')"
        )
    A = U @ R.transpose(0, 2, 1)  # (J, 3, 3) rest -> zero-pose rotation of each bone, anny's axes
    C = body_model.axes.double().cpu().numpy()  # anny's axes -> SMPL-like axes
    weights = torch.zeros(anny.vertex_bone_indices.shape[0], J, dtype=torch.float64)
    weights.scatter_add_(1, anny.vertex_bone_indices.long().cpu(), anny.vertex_bone_weights.double().cpu())
    rig = Rig(
        joint_names=list(body_model.bone_labels),
        parents=list(body_model.parents),
        rest_joints=(heads - heads[0]) @ C.T,  # AnnyBody puts the root's head at the origin
        rest_verts=(out["rest_vertices"][0].double().cpu().numpy() - heads[0]) @ C.T,
        faces=body_model.faces.cpu().numpy(),
        skin_weights=weights.numpy(),
        bind_rotations=C @ A @ C.T,
    )
    _check_against(rig, body_model, betas)
    return rig


def _check_against(rig: Rig, body_model, betas: np.ndarray) -> None:
    """The rig's joints must follow the body model on a pose that bends every joint (guards the pose convention
    against a change in the body-model package)."""
    import torch

    J = rig.num_joints
    angles = 0.35 * np.stack([np.sin(np.arange(J) + k) for k in range(3)], axis=1)  # (J, 3) radians, all distinct
    rotmats = axis_angle_to_rotmat(torch.as_tensor(angles, dtype=torch.float64)).numpy()[None]
    kw = dict(dtype=body_model.axes.dtype, device=body_model.axes.device)
    out = body_model(torch.as_tensor(rotmats, **kw), torch.as_tensor(betas, **kw))
    _, ours = rig.forward_kinematics(rotmats)
    err = float(np.abs(ours[0] - out.bone_heads[0].double().cpu().numpy()).max())  # Anny: the posed bone heads
    if err > 1e-4:
        raise MaedError(
            f"rig_from_body_model: the {body_model.name} rig's joints differ from the body model's by {err:.2e} m "
            "on a test pose; the installed body-model package uses a pose convention this exporter does not know"
        )


def as_array(x, name: str) -> np.ndarray:
    """A float64 numpy copy of an array or tensor (DataError naming ``name`` when it is not numeric)."""
    if hasattr(x, "detach"):  # a torch tensor, any device and floating type (bfloat16 has no numpy dtype)
        x = x.detach().cpu().double().numpy()
    try:
        return np.array(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{name}: expected a numeric array ({e})") from None


def animation_tracks(
    rig: Rig, rotmats, root_trans, fps: float, frame: str, *, writer: str
) -> tuple[np.ndarray, np.ndarray]:
    """Check a sequence against ``rig`` and put it in the file's frame (see the module docstring).

    rotmats: T x J x 3 x 3 local rotations exactly as the body model takes them (root first).
    root_trans: T x 3 metres added to the root's position, or None (zero). fps: frames per second.
    Returns the joints' local rotations T x J x 3 x 3 and the root joint's position T x 3 (metres, the root's
    zero-pose position plus root_trans), both in the file's frame.
    """
    J = rig.num_joints
    rotmats = as_array(rotmats, f"{writer}: rotmats")
    if rotmats.ndim != 4 or rotmats.shape[0] < 1 or rotmats.shape[1:] != (J, 3, 3):
        raise DataError(
            f"{writer}: rotmats has shape {rotmats.shape}, expected T x {J} x 3 x 3 "
            f"(T >= 1 frames, the rig's {J} joints, root first)"
        )
    T = rotmats.shape[0]
    if not np.isfinite(rotmats).all():
        raise DataError(f"{writer}: rotmats holds non-finite values")
    gram_err = np.abs(rotmats.swapaxes(-1, -2) @ rotmats - np.eye(3)).max()
    if gram_err > 1e-3 or (np.linalg.det(rotmats) <= 0).any():
        raise DataError(f"{writer}: rotmats are not all rotation matrices (|R^T R - I| up to {gram_err:.2g})")
    if root_trans is None:
        root_trans = np.zeros((T, 3))
    root_trans = as_array(root_trans, f"{writer}: root_trans")
    if root_trans.shape != (T, 3) or not np.isfinite(root_trans).all():
        raise DataError(f"{writer}: root_trans has shape {root_trans.shape}, expected {T} x 3 finite metres")
    if not (isinstance(fps, (int, float, np.number)) and np.isfinite(fps) and fps > 0):
        raise ConfigError(f"{writer}: fps must be a positive number, got {fps!r}")
    if frame not in FILE_FRAMES:
        raise ConfigError(f"{writer}: frame {frame!r}: expected one of {FILE_FRAMES}")
    root_pos = rig.joint_offsets()[0] + root_trans
    if frame == "camera":
        rotmats = rotmats.copy()
        rotmats[:, 0] = CAMERA_TO_FILE @ rotmats[:, 0]
        root_pos = root_pos @ CAMERA_TO_FILE.T
    return rotmats, root_pos


def output_path(path: str | os.PathLike, writer: str) -> Path:
    """``path`` as a Path; OutputError naming ``writer`` when it is a folder or a file stands where its folder
    would be."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{writer}: output {path} is a folder, expected a file path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{writer}: cannot write {path}: {parent} is a file, not a folder")
            break
    return path
